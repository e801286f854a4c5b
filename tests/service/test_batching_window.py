"""The batching window over HTTP: a lone request skips it, concurrent ones still share batches.

The window is set to 3 s so that "waited it out" and "did not" cannot be confused
on a busy machine; nothing here measures speed.
"""

from __future__ import annotations

import httpx

from service.engine import Engine
from tests.service.inprocess import in_thread, serve_in_thread, wait_for

WINDOW_MS = 3000


def _predict(url: str, image: bytes) -> httpx.Response:
    return httpx.post(f"{url}/v1/predict", files={"image": ("x.jpg", image)}, timeout=60)


def test_a_lone_request_does_not_wait_out_the_window(
    model_engine: Engine, photos: dict[str, bytes]
) -> None:
    with serve_in_thread(model_engine, max_batch_size=8, max_batch_wait_ms=WINDOW_MS) as (url, *_):
        for _ in range(3):  # sequential: each is alone in the server
            response = _predict(url, photos["coffee"])
            assert response.status_code == 200
        metrics = httpx.get(f"{url}/metrics").text
    waited = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("alexnet_queue_wait_seconds_sum")
    )
    assert waited < 0.5 * WINDOW_MS / 1000 * 3, metrics


def test_requests_that_arrive_together_still_share_a_batch(
    model_engine: Engine, photos: dict[str, bytes]
) -> None:
    image = photos["astronaut"]
    with serve_in_thread(model_engine, max_batch_size=8, max_batch_wait_ms=WINDOW_MS) as (
        url,
        state,
        model,
        _,
    ):
        batcher = state.require_batcher()
        model.gate.clear()  # the first request holds the model...
        first, first_box = in_thread(lambda: _predict(url, image))
        assert model.entered.wait(timeout=30)
        # ... while two more arrive and queue behind it.
        others = [in_thread(lambda: _predict(url, image)) for _ in range(2)]
        wait_for(lambda: batcher.depth == 2)
        model.gate.set()
        for thread, _ in [(first, first_box), *others]:
            thread.join(timeout=60)
        assert [box["result"].status_code for _, box in [(first, first_box), *others]] == [200] * 3
    assert model.batches == [1, 2]
