"""The model repository extension on a server of its own: unload, load (a reload of the
artifacts folder, swapped in while requests keep coming), and refusals.

The server serves a copy of the exported artifacts whose manifest the tests rewrite;
the .onnx files are hard links and never written.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import schemathesis
import tritonclient.http as triton
from hypothesis import HealthCheck, settings
from schemathesis import checks as st_checks
from tritonclient.utils import InferenceServerException

from service.app import create_app
from service.settings import Settings
from tests.support import RunningServer, running_server, scrape

VIEWS = ["alexnet", "alexnet_image", "alexnet_logits"]


@pytest.fixture(scope="module")
def folder(exported_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("repository") / "artifacts"
    copy.mkdir()
    for path in exported_artifacts.iterdir():
        if path.suffix == ".onnx":
            os.link(path, copy / path.name)
        else:
            shutil.copyfile(path, copy / path.name)
    return copy


@pytest.fixture(scope="module")
def repo_server(folder: Path, artefact_dir: Path) -> Iterator[RunningServer]:
    with running_server(
        folder, artefact_dir / "logs", max_batch_size="8", max_batch_wait_ms="5"
    ) as running:
        yield running


@pytest.fixture(scope="module")
def client(repo_server: RunningServer) -> Iterator[triton.InferenceServerClient]:
    url = repo_server.url.removeprefix("http://")
    client = triton.InferenceServerClient(url, network_timeout=120.0)
    yield client
    client.close()


@pytest.fixture
def manifest(folder: Path) -> Iterator[Callable[..., None]]:
    """Rewrite fields of the served folder's manifest; the original comes back afterwards."""
    path = folder / "manifest.json"
    original = path.read_text()

    def rewrite(**changes: Any) -> None:
        document = json.loads(original)
        for dotted, value in changes.items():
            *parents, leaf = dotted.split("__")
            target = document
            for part in parents:
                target = target[part]
            target[leaf] = value
        path.write_text(json.dumps(document))

    yield rewrite
    path.write_text(original)


def _fp32(size: int = 1) -> triton.InferInput:
    given = triton.InferInput("input", [size, 3, 227, 227], "FP32")
    return given.set_data_from_numpy(np.full((size, 3, 227, 227), 0.25, np.float32))


def _jpeg(blob: bytes) -> triton.InferInput:
    given = triton.InferInput("input", [1, 1], "BYTES")
    return given.set_data_from_numpy(np.array([[blob]], dtype=object))


def _index(client: triton.InferenceServerClient) -> dict[str, dict[str, str]]:
    return {entry["name"]: entry for entry in client.get_model_repository_index()}


def test_unload_takes_one_view_out_of_service_and_load_brings_it_back(
    client: triton.InferenceServerClient, repo_server: RunningServer
) -> None:
    client.unload_model("alexnet_logits")
    assert not client.is_model_ready("alexnet_logits")
    with pytest.raises(InferenceServerException, match="unavailable") as refused:
        client.infer("alexnet_logits", [_fp32()])
    assert refused.value.status() == "503"
    assert _index(client)["alexnet_logits"] == {
        "name": "alexnet_logits",
        "version": "1",
        "state": "UNAVAILABLE",
        "reason": "unloaded",
    }
    status = httpx.get(f"{repo_server.url}/v1/models/alexnet_logits")
    assert (status.status_code, status.json()["ready"]) == (503, False)
    unavailable = httpx.post(
        f"{repo_server.url}/v2/repository/index", json={"ready": True}, timeout=30
    ).json()
    assert [entry["name"] for entry in unavailable] == ["alexnet", "alexnet_image"]
    # The other views and /v1 share the engine and keep serving.
    assert client.infer("alexnet", [_fp32()]).as_numpy("logits").shape == (1, 10)
    client.unload_model("alexnet_logits")  # again: nothing to do, still 200

    client.load_model("alexnet_logits")
    assert client.is_model_ready("alexnet_logits")
    assert client.infer("alexnet_logits", [_fp32(2)]).as_numpy("logits").shape == (2, 10)
    assert all(entry["state"] == "READY" for entry in _index(client).values())


def test_load_and_unload_answer_200_with_an_empty_body(repo_server: RunningServer) -> None:
    for action, body in (("unload", {"parameters": {"unload_dependents": False}}), ("load", {})):
        response = httpx.post(
            f"{repo_server.url}/v2/repository/models/alexnet_image/{action}", json=body, timeout=120
        )
        assert (response.status_code, response.content) == (200, b"")


@pytest.mark.parametrize(
    ("action", "body", "message"),
    [
        ("load", {"parameters": {"config": "{}"}}, "artifacts folder"),
        ("load", {"parameters": {"file:1/model.onnx": "AAAA"}}, "artifacts folder"),
        ("load", {"parameters": {"polling": True}}, "unknown load parameter"),
        ("load", {"parameters": "config"}, "'parameters' must be a JSON object"),
        ("load", {"config": "{}"}, "unknown field"),
        ("unload", {"parameters": {"unload_dependents": "yes"}}, "true or false"),
        ("unload", {"parameters": {"force": True}}, "unknown unload parameter"),
        ("load", "not json", "not valid JSON"),
        ("load", [1], "JSON object"),
        ("index", {"ready": "yes"}, "true or false"),
        ("index", {"ready": True, "all": 1}, "unknown field"),
    ],
)
def test_refusals_say_why(repo_server: RunningServer, action: str, body: Any, message: str) -> None:
    path = "index" if action == "index" else f"models/alexnet/{action}"
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    response = httpx.post(f"{repo_server.url}/v2/repository/{path}", content=content, timeout=60)
    assert response.status_code == 400, response.text
    assert list(response.json()) == ["error"] and message in response.json()["error"]


def test_a_folder_that_does_not_verify_leaves_the_old_model_serving(
    client: triton.InferenceServerClient, manifest: Callable[..., None]
) -> None:
    manifest(files__int8__sha256="0" * 64)
    with pytest.raises(InferenceServerException, match="sha256") as refused:
        client.load_model("alexnet")
    assert refused.value.status() == "400"
    assert "serves on" in refused.value.message()
    assert client.is_model_ready("alexnet")
    assert client.infer("alexnet", [_fp32()]).as_numpy("logits").shape == (1, 10)


def test_a_reload_serves_the_new_manifest_everywhere(
    client: triton.InferenceServerClient,
    repo_server: RunningServer,
    manifest: Callable[..., None],
    photos: dict[str, bytes],
) -> None:
    before = client.get_inference_statistics("alexnet")["model_stats"][0]
    manifest(version="2", training__dataset="reloaded")
    client.load_model("alexnet")
    try:
        info = httpx.get(f"{repo_server.url}/v1/model").json()
        assert (info["version"], info["training"]["dataset"]) == ("2", "reloaded")
        assert client.get_model_metadata("alexnet")["versions"] == ["2"]
        assert client.get_model_config("alexnet_image", "2")["name"] == "alexnet_image"
        result = client.infer("alexnet", [_fp32()], model_version="2")
        assert result.get_response()["model_version"] == "2"
        with pytest.raises(InferenceServerException, match="unknown version '1'"):
            client.infer("alexnet", [_fp32()], model_version="1")
        (stats,) = client.get_inference_statistics("alexnet")["model_stats"]
        assert stats["version"] == "2" and stats["inference_stats"]["success"]["count"] == 1
        (labels,) = scrape(repo_server.url).label_sets("alexnet_model_info")
        assert labels["version"] == "2"
        # Convolution keeps its sessions and runs on.
        convolved = httpx.post(
            f"{repo_server.url}/v1/convolve",
            files={"image": ("c.jpg", photos["camera"])},
            data={"preset": "edge"},
            timeout=60,
        )
        assert convolved.status_code == 200, convolved.text
        # The explainer came with the new folder: Grad-CAM runs on its gradient graph.
        explained = httpx.post(
            f"{repo_server.url}/v1/explain/gradcam",
            files={"image": ("c.jpg", photos["chelsea"])},
            timeout=120,
        )
        assert explained.status_code == 200, explained.text
    finally:
        manifest()  # the original manifest, version 1
        client.load_model("alexnet")
    # Version 1's counters were kept, not reset: they only ever grow.
    (again,) = client.get_inference_statistics("alexnet")["model_stats"]
    assert again["version"] == "1"
    assert again["inference_stats"]["success"] == before["inference_stats"]["success"]


def test_no_request_fails_while_the_model_is_reloaded(
    client: triton.InferenceServerClient, repo_server: RunningServer, photos: dict[str, bytes]
) -> None:
    url = repo_server.url.removeprefix("http://")
    stop = threading.Event()
    answers: list[tuple[str, int | str]] = []
    counts_before = {
        name: client.get_inference_statistics(name)["model_stats"][0]["inference_stats"]
        for name in VIEWS
    }

    def v2_load(view: str, inputs: Callable[[], triton.InferInput]) -> None:
        own = triton.InferenceServerClient(url, network_timeout=120.0)
        try:
            while not stop.is_set():
                try:
                    own.infer(view, [inputs()])
                    answers.append((view, 200))
                except InferenceServerException as exc:
                    answers.append((view, exc.status() or str(exc)))
        finally:
            own.close()

    def v1_load() -> None:
        with httpx.Client(base_url=repo_server.url, timeout=120) as http:
            while not stop.is_set():
                image = {"image": ("c.jpg", photos["coffee"])}
                answers.append(("/v1/predict", http.post("/v1/predict", files=image).status_code))

    workers = [
        threading.Thread(target=v2_load, args=("alexnet_logits", lambda: _fp32(2))),
        threading.Thread(target=v2_load, args=("alexnet_image", lambda: _jpeg(photos["rocket"]))),
        threading.Thread(target=v2_load, args=("alexnet", _fp32)),
        threading.Thread(target=v1_load),
    ]
    for worker in workers:
        worker.start()
    try:
        for _ in range(3):
            client.load_model("alexnet")
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=120)
    failures = [answer for answer in answers if answer[1] != 200]
    assert not failures, failures
    served = {name: sum(1 for view, _ in answers if view == name) for name in VIEWS}
    assert all(count > 0 for count in served.values()), served
    for name in VIEWS:  # every answered request counted once, across the swaps
        stats = client.get_inference_statistics(name)["model_stats"][0]["inference_stats"]
        success = stats["success"]["count"] - counts_before[name]["success"]["count"]
        assert success == served[name], name
        assert stats["fail"] == counts_before[name]["fail"], name


# Generated requests, valid and not, to every repository route: never a 5xx, only
# documented answers. Last in this module: a lucky name could unload a view.
schema = schemathesis.openapi.from_dict(create_app(Settings.model_validate({})).openapi())


@schema.include(path_regex=r"^/v2/repository/").parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_repository_routes_survive_generated_requests(
    repo_server: RunningServer, case: schemathesis.Case
) -> None:
    checks = [
        st_checks.not_a_server_error,
        st_checks.status_code_conformance,
        st_checks.content_type_conformance,
        st_checks.negative_data_rejection,
    ]
    case.call_and_validate(base_url=repo_server.url, checks=checks, timeout=120)
