"""A hostile-input corpus, made here (nothing downloaded), thrown at the real server.

Every item gets a 4xx JSON error or a correct answer; odd but valid images (CMYK,
16-bit, palette, RGBA, one pixel, animations, multi-page files, huge EXIF) get the
same probabilities as the plain RGB picture they show. Never a 5xx, a hang or a
crash, and the server log has no traceback afterwards. test_bad_input.py covers the
plain cases (empty file, text, truncated JPEG, limits, bad kernels); this file the
nastier ones.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.service.hostile_corpus import (
    EITHER,
    FORMS,
    JPEG,
    KERNELS,
    PIXELS,
    PNG,
    V2_BODIES,
    fp32_body,
    refused_files,
    save,
    valid_odd_images,
)
from tests.support import RunningServer, running_server

INFER = "/v2/models/alexnet/infer"
STRIP = 65535


@pytest.fixture(scope="module")
def hostile_server(exported_artifacts: Path, artefact_dir: Path) -> Iterator[RunningServer]:
    """A server with the default limits, of its own, so its log holds only what this file did."""
    with running_server(exported_artifacts, artefact_dir / "logs", max_batch_size="4") as running:
        yield running


# --- checks -------------------------------------------------------------------------------


def check_error(response: httpx.Response, v2: bool = False) -> None:
    """A 4xx in the route's JSON error form."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    error = response.json()["error"]
    if v2:
        assert isinstance(error, str) and error
    else:
        assert error["code"] and error["message"] and error["request_id"]


def probabilities(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text[:300]
    (result,) = response.json()["results"]
    out = np.zeros(len(result["predictions"]))
    for prediction in result["predictions"]:
        out[prediction["index"]] = prediction["probability"]
    return out


def predict(server: RunningServer, blob: bytes, name: str = "upload.jpg") -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/predict",
        files={"image": (name, blob)},
        data={"top_k": "10"},  # all classes: ranks of near-equal scores may swap
        timeout=120,
    )


@pytest.mark.parametrize(("name", "blob", "shows"), valid_odd_images(), ids=lambda v: str(v)[:40])
def test_odd_but_valid_images_get_the_answer_for_what_they_show(
    hostile_server: RunningServer, name: str, blob: bytes, shows: np.ndarray
) -> None:
    got = probabilities(predict(hostile_server, blob))
    expected = probabilities(predict(hostile_server, save(Image.fromarray(shows), "PNG"), "a.png"))
    # Pixel-identical pictures agree to float noise; composited or converted ones to a level.
    np.testing.assert_allclose(got, expected, atol=2e-3)


@pytest.mark.parametrize(("name", "blob", "shows"), refused_files(), ids=lambda v: str(v)[:40])
@pytest.mark.parametrize("route", ["/v1/predict", "/v1/activations", "/v1/convolve", "/v1/pool"])
def test_undecodable_or_oversized_files_are_refused_on_every_route(
    hostile_server: RunningServer, name: str, blob: bytes, shows: None, route: str
) -> None:
    form = {"preset": "edge"} if route == "/v1/convolve" else {}
    response = httpx.post(
        f"{hostile_server.url}{route}", files={"image": ("x.jpg", blob)}, data=form, timeout=60
    )
    check_error(response)


@pytest.mark.parametrize(("name", "blob", "shows"), refused_files()[:6], ids=lambda v: str(v)[:40])
def test_undecodable_images_as_v2_bytes_are_refused(
    hostile_server: RunningServer, name: str, blob: bytes, shows: None
) -> None:
    body = {
        "inputs": [
            {
                "name": "input",
                "datatype": "BYTES",
                "shape": [1],
                "data": [base64.b64encode(blob).decode()],
            }
        ]
    }
    check_error(httpx.post(f"{hostile_server.url}{INFER}", json=body, timeout=60), v2=True)


@pytest.mark.parametrize(("name", "blob"), EITHER, ids=[e[0] for e in EITHER])
def test_damaged_but_parseable_files_get_an_answer_or_a_4xx(
    hostile_server: RunningServer, name: str, blob: bytes
) -> None:
    response = predict(hostile_server, blob)
    if response.status_code != 200:
        check_error(response)


def _strip_preprocess_is_bounded(width: int, height: int) -> None:
    """Preprocess a strip in a child process capped at 2 GiB of address space."""
    script = (
        "import io, resource, numpy as np\n"
        "from PIL import Image\n"
        "from core.preprocess import PreprocessSpec, preprocess_bytes\n"
        "blob = io.BytesIO()\n"
        f"Image.new('RGB', ({width}, {height}), (9, 99, 199)).save(blob, 'PNG')\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))\n"
        "print(preprocess_bytes(blob.getvalue(), PreprocessSpec()).shape)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    scale = 256 / min(width, height)
    resized = f"{round(width * scale)}x{round(height * scale)}"
    assert done.returncode == 0 and "(3, 227, 227)" in done.stdout, (
        f"preprocessing a {width}x{height} image does not fit in 2 GiB: resizing the shorter "
        f"side to 256 before the crop makes a {resized} image; "
        f"{done.stderr.strip().splitlines()[-1:]}"
    )


@pytest.mark.parametrize(("width", "height"), [(STRIP, 1), (1, STRIP), (STRIP, 3)])
def test_extreme_strips_are_answered_in_bounded_memory(
    hostile_server: RunningServer, width: int, height: int
) -> None:
    # Checked in a capped child first: the server itself has no cap, and the machine is shared.
    _strip_preprocess_is_bounded(width, height)
    colour = (9, 99, 199)
    strip = save(Image.new("RGB", (width, height), colour), "PNG")
    got = probabilities(predict(hostile_server, strip, "strip.png"))
    flat = save(Image.new("RGB", (300, 300), colour), "PNG")
    np.testing.assert_allclose(
        got, probabilities(predict(hostile_server, flat, "flat.png")), atol=1e-5
    )
    convolved = httpx.post(
        f"{hostile_server.url}/v1/convolve",
        files={"image": ("strip.png", strip)},
        data={"kernel": "[[1, -1]]", "padding": "same", "format": "json"},
        timeout=60,
    )
    assert convolved.status_code == 200, convolved.text
    assert convolved.json()["shape"] == [height, width]


# --- hostile bodies: JSON, numbers, compression --------------------------------------------


@pytest.mark.parametrize(("name", "kernel"), KERNELS, ids=[k[0] for k in KERNELS])
def test_hostile_kernels_are_refused(hostile_server: RunningServer, name: str, kernel: str) -> None:
    response = httpx.post(
        f"{hostile_server.url}/v1/convolve",
        files={"image": ("a.png", PNG)},
        data={"kernel": kernel, "format": "json"},
        timeout=60,
    )
    check_error(response)


@pytest.mark.parametrize(("name", "route", "form"), FORMS, ids=[f[0] for f in FORMS])
def test_hostile_form_values_are_refused(
    hostile_server: RunningServer, name: str, route: str, form: dict[str, str]
) -> None:
    response = httpx.post(
        f"{hostile_server.url}{route}", files={"image": ("a.png", PNG)}, data=form, timeout=60
    )
    check_error(response)


@pytest.mark.parametrize(("name", "body", "headers"), V2_BODIES, ids=[b[0] for b in V2_BODIES])
def test_hostile_v2_bodies_are_refused(
    hostile_server: RunningServer, name: str, body: Callable[[], bytes], headers: dict[str, str]
) -> None:
    response = httpx.post(
        f"{hostile_server.url}{INFER}", content=body(), headers=headers, timeout=60
    )
    check_error(response, v2=True)


def test_values_that_overflow_the_model_do_not_make_invalid_json(
    hostile_server: RunningServer,
) -> None:
    huge = fp32_body([3e38] * PIXELS)  # finite float32, but the network overflows on it
    response = httpx.post(f"{hostile_server.url}{INFER}", json=huge, timeout=60)
    if response.status_code == 200:
        # Strict JSON: NaN and Infinity are not JSON, and clients' parsers reject them.
        json.loads(response.text, parse_constant=lambda c: pytest.fail(f"{c} in the answer"))
    else:
        check_error(response, v2=True)


def test_the_server_survived_all_of_it_without_a_traceback(hostile_server: RunningServer) -> None:
    assert hostile_server.process.poll() is None
    assert probabilities(predict(hostile_server, JPEG)).sum() == pytest.approx(1, abs=1e-6)
    log = hostile_server.log()
    assert "Traceback" not in log and "Exception in ASGI" not in log
