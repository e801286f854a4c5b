"""GET /v1/channels/{layer}/{channel}/top(.png) against the real server.

The windows are checked against hand-derived numbers and the pixels against crops cut
here, with numpy, from the photos the export ran (the test export uses five photos, so
every channel keeps at most five patches).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from core.errors import ArtifactError
from core.manifest import read_manifest, sha256_file, verify_files
from core.preprocess import PreprocessSpec, resize_and_crop
from service.artifacts import load_artifacts
from service.engine import Engine
from tests.service.inprocess import serve_in_thread
from tests.support import RunningServer

SPEC = PreprocessSpec.for_input(227)  # as the export writes it (crop-region resampling)
# start, jump, size of each conv layer's windows, worked out by hand from the paper's
# paddings: conv2 pads 2 at jump 8 (-16), conv3, conv4, conv5 pad 1 each at jump 16.
WINDOWS = {
    "conv1": (0, 4, 11),
    "conv2": (-16, 8, 51),
    "conv3": (-32, 16, 99),
    "conv4": (-48, 16, 131),
    "conv5": (-64, 16, 163),
}
GREY = 128


@pytest.fixture(scope="module")
def stored(exported_artifacts: Path) -> dict[str, np.ndarray]:
    with np.load(exported_artifacts / "channel_patches.npz", allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def get(server_url: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{server_url}/v1/channels/{path}", params=params, timeout=60)


def crop_of(photo_folder: Path, name: str) -> np.ndarray:
    with Image.open(photo_folder / name) as photo:
        return np.asarray(resize_and_crop(photo.convert("RGB"), SPEC))


def window_of(crop: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    """The window cut from the crop padded with grey on every side (numpy, not the service)."""
    padded = np.pad(crop, ((size, size), (size, size), (0, 0)), constant_values=GREY)
    return padded[top + size : top + 2 * size, left + size : left + 2 * size]


def png(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)))


@pytest.mark.parametrize("layer", list(WINDOWS))
def test_json_says_which_units_of_which_photos_and_their_windows(
    server: RunningServer, stored: dict[str, np.ndarray], layer: str
) -> None:
    channel = int(np.argmax(stored[f"{layer}.firing"]))  # one that fired on many photos
    response = get(server.url, f"{layer}/{channel}/top")
    assert response.status_code == 200, response.text
    body = response.json()
    start, jump, size = WINDOWS[layer]
    assert (body["layer"], body["channel"], body["receptive_field"], body["jump"]) == (
        layer,
        channel,
        size,
        jump,
    )
    assert (body["images"], body["top_k"], body["input_size"]) == (5, 5, 227)
    assert body["source"].startswith("folder ")
    assert body["png"] == f"/v1/channels/{layer}/{channel}/top.png"
    patches = body["patches"]
    assert len(patches) == body["firing_images"] == stored[f"{layer}.firing"][channel]
    assert [p["rank"] for p in patches] == list(range(1, len(patches) + 1))
    for slot, patch in enumerate(patches):
        row, col = patch["unit"]["row"], patch["unit"]["col"]
        kept = stored[f"{layer}.image"][channel, slot]
        assert (row, col) == (
            stored[f"{layer}.row"][channel, slot],
            stored[f"{layer}.col"][channel, slot],
        )
        assert patch["activation"] == pytest.approx(stored[f"{layer}.activation"][channel, slot])
        assert patch["image_name"] == stored["image_names"][kept]
        assert patch["image"] == stored["image_numbers"][kept]
        top, left = start + row * jump, start + col * jump
        assert patch["window"] == {"top": top, "left": left, "size": size}
        assert patch["inside"] == {
            "top": max(top, 0),
            "left": max(left, 0),
            "bottom": min(top + size, 227),
            "right": min(left + size, 227),
        }


@pytest.mark.parametrize("layer", ["conv1", "conv3", "conv5"])
def test_each_patch_is_its_window_of_the_photo_grey_outside(
    server: RunningServer, stored: dict[str, np.ndarray], photo_folder: Path, layer: str
) -> None:
    channel = int(np.argmax(stored[f"{layer}.firing"]))
    patches = get(server.url, f"{layer}/{channel}/top").json()["patches"]
    for patch in patches:
        window = patch["window"]
        expected = window_of(crop_of(photo_folder, patch["image_name"]), **window)
        got = png(get(server.url, f"{layer}/{channel}/top.png", rank=patch["rank"]))
        np.testing.assert_array_equal(got, expected)


def test_a_window_past_the_edge_is_grey_there(server: RunningServer) -> None:
    """conv5's windows are 163 px in a 227 px crop: most reach past an edge."""
    for channel in range(256):
        body = get(server.url, f"conv5/{channel}/top").json()
        edge = [p for p in body["patches"] if p["inside"]["top"] > p["window"]["top"]]
        if edge:
            break
    else:
        pytest.fail("no conv5 patch reaches past the top edge")
    patch = edge[0]
    got = png(get(server.url, f"conv5/{channel}/top.png", rank=patch["rank"]))
    window, inside = patch["window"], patch["inside"]
    rows = slice(inside["top"] - window["top"], inside["bottom"] - window["top"])
    cols = slice(inside["left"] - window["left"], inside["right"] - window["left"])
    outside = np.ones(got.shape[:2], bool)
    outside[rows, cols] = False
    assert outside[0].all() and np.all(got[outside] == GREY)
    assert not np.all(got[rows, cols] == GREY)


def test_the_grid_shows_every_patch_labelled_and_context_outlines_one(
    server: RunningServer, stored: dict[str, np.ndarray], photo_folder: Path
) -> None:
    channel = int(np.argmax(stored["conv1.firing"]))
    patches = get(server.url, f"conv1/{channel}/top").json()["patches"]
    grid = png(get(server.url, f"conv1/{channel}/top.png"))
    # 5 patches: 3 columns, 2 rows of 66-px cells (11 px enlarged 6 times), 12-px labels,
    # 2-px gaps (service/pictures.py's tile_grid).
    assert grid.shape == (2 + 2 * (12 + 66 + 2), 2 + 3 * (66 + 2), 3)
    for index, patch in enumerate(patches):
        row, column = divmod(index, 3)
        top, left = 2 + row * 80 + 12, 2 + column * 68
        expected = window_of(crop_of(photo_folder, patch["image_name"]), **patch["window"])
        np.testing.assert_array_equal(grid[top : top + 66 : 6, left : left + 66 : 6], expected)
    context = png(get(server.url, f"conv1/{channel}/top.png", rank=1, context="true"))
    crop = crop_of(photo_folder, patches[0]["image_name"])
    assert context.shape == crop.shape
    box = patches[0]["inside"]
    changed = np.argwhere(np.any(context != crop, axis=2))
    assert len(changed) > 0  # the outline, drawn on the window's in-image border
    assert changed[:, 0].min() >= box["top"] and changed[:, 0].max() < box["bottom"]
    assert changed[:, 1].min() >= box["left"] and changed[:, 1].max() < box["right"]


def test_a_channel_that_never_fired_has_no_patches(
    server: RunningServer, stored: dict[str, np.ndarray]
) -> None:
    silent = np.flatnonzero(stored["conv3.firing"] == 0)
    assert len(silent), "the seeded test model has silent conv3 channels on the five photos"
    body = get(server.url, f"conv3/{silent[0]}/top").json()
    assert (body["firing_images"], body["patches"]) == (0, [])
    response = get(server.url, f"conv3/{silent[0]}/top.png")
    assert response.status_code == 404
    assert "fired on none of the 5 images" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "params", "status", "words"),
    [
        ("conv9/1/top", {}, 404, "unknown layer conv9"),
        ("pool1/1/top", {}, 400, "only conv layers have channel patches"),
        ("fc6/0/top.png", {}, 400, "only conv layers"),
        ("conv3/384/top", {}, 404, "conv3 has channels 0..383, not 384"),
        ("conv3/-1/top", {}, 422, "greater than or equal to 0"),
        ("conv3/x/top.png", {}, 422, "valid integer"),
        ("conv2/0/top.png", {"rank": 6}, 404, "patches, not 6"),
        ("conv2/0/top.png", {"rank": 0}, 422, "rank"),
        ("conv2/0/top.png", {"context": "true"}, 400, "give its rank too"),
    ],
)
def test_bad_requests_get_one_line_reasons(
    server: RunningServer, path: str, params: dict[str, Any], status: int, words: str
) -> None:
    response = get(server.url, path, **params)
    assert response.status_code == status, response.text
    message = response.json()["error"]["message"]
    assert words in message and "\n" not in message


def test_the_model_route_tells_the_page_there_are_patches(
    server: RunningServer, exported_artifacts: Path
) -> None:
    listed = httpx.get(f"{server.url}/v1/model", timeout=60).json()["channel_patches"]
    on_disk = json.loads((exported_artifacts / "manifest.json").read_text())["channel_patches"]
    assert listed == on_disk and listed["layers"] == list(WINDOWS)


def test_openapi_describes_every_field(server: RunningServer) -> None:
    document = httpx.get(f"{server.url}/openapi.json").json()
    operation = document["paths"]["/v1/channels/{layer}/{channel}/top"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ChannelTop"}
    schemas = document["components"]["schemas"]
    for name in ("ChannelTop", "Patch", "Unit", "InputWindow", "InputBox"):
        properties = schemas[name]["properties"]
        undocumented = [p for p, spec in properties.items() if "description" not in spec]
        assert not undocumented, (name, undocumented)
    png_operation = document["paths"]["/v1/channels/{layer}/{channel}/top.png"]["get"]
    assert "image/png" in png_operation["responses"]["200"]["content"]


def _linked_copy(source: Path, target: Path) -> Path:
    """The artifacts with the models linked, not copied (they are hundreds of MB)."""
    target.mkdir()
    for path in source.iterdir():
        if path.suffix == ".onnx":
            os.symlink(path, target / path.name)
        else:
            shutil.copy(path, target / path.name)
    return target


def test_a_wrong_or_missing_patches_file_stops_start_up(
    exported_artifacts: Path, tmp_path: Path
) -> None:
    folder = _linked_copy(exported_artifacts, tmp_path / "artifacts")
    patches = folder / "channel_patches.npz"
    data = bytearray(patches.read_bytes())
    data[len(data) // 2] ^= 0xFF
    patches.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"channel_patches\.npz does not match its sha256"):
        load_artifacts(folder)
    patches.unlink()
    with pytest.raises(
        ArtifactError, match=r"\(channel patches\) listed in the manifest is missing"
    ):
        verify_files(folder, read_manifest(folder))


class ServedFrom:
    """The shared engine, reporting another artifacts folder (no second model load)."""

    def __init__(self, engine: Engine, folder: Path) -> None:
        self._engine = engine
        self.artifacts = load_artifacts(folder)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def test_an_export_without_patches_still_serves_and_says_to_re_export(
    model_engine: Engine, exported_artifacts: Path, tmp_path: Path, photos: dict[str, bytes]
) -> None:
    folder = _linked_copy(exported_artifacts, tmp_path / "older")
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["channel_patches"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "channel_patches.npz").unlink()
    engine: Any = ServedFrom(model_engine, folder)
    with serve_in_thread(engine) as (url, _, _, _):
        for path in ("conv3/17/top", "conv3/17/top.png"):
            response = get(url, path)
            assert response.status_code == 404
            message = response.json()["error"]["message"]
            assert "no channel patches" in message and "re-export" in message
        predicted = httpx.post(
            f"{url}/v1/predict", files={"image": ("cat.jpg", photos["chelsea"])}, timeout=60
        )
        assert predicted.status_code == 200, predicted.text


def test_a_malformed_patches_file_is_a_one_line_500(
    model_engine: Engine, exported_artifacts: Path, tmp_path: Path
) -> None:
    """A file that matches its checksum but not the manifest (a bug, not a user's error)."""
    folder = _linked_copy(exported_artifacts, tmp_path / "odd")
    with np.load(folder / "channel_patches.npz") as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["conv3.row"] = arrays["conv3.row"][:10]
    np.savez(folder / "channel_patches.npz", **arrays)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["channel_patches"]["sha256"] = sha256_file(folder / "channel_patches.npz")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    engine: Any = ServedFrom(model_engine, folder)
    with serve_in_thread(engine) as (url, _, _, _):
        response = get(url, "conv1/0/top")
    assert response.status_code == 500
    message = response.json()["error"]["message"]
    assert "conv3's arrays are not [384, 5]" in message and "re-export" in message
