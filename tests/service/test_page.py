"""The page at / and its routes; the page in Debian's headless Chromium (marker `browser`),
checked against the API and hand-checked numbers, with screenshots for people and the README."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from core.preprocess import PreprocessSpec, decode_image, resize_and_crop
from tests.support import RunningServer, encode, running_server

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips every test that would need it
    expect = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from playwright.sync_api import Browser, FilePayload, Page, Route

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-gpu",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
BAD_REQUEST = "the server responded with a status of 400"


def test_page_is_served_with_security_headers(server: RunningServer) -> None:
    response = httpx.get(f"{server.url}/", headers={"Accept": "text/html"})  # as browsers ask
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    # Everything the page loads is local: no http(s) URL in the page or its scripts.
    script = httpx.get(f"{server.url}/static/js/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "https://" not in response.text + script.text


def test_samples_are_listed_and_served(server: RunningServer) -> None:
    samples = httpx.get(f"{server.url}/v1/samples").json()["samples"]
    assert {s["name"] for s in samples} >= {"astronaut", "coffee", "chelsea", "rocket"}
    for sample in samples:
        picture = httpx.get(f"{server.url}{sample['url']}")
        assert picture.status_code == 200
        width, height = Image.open(io.BytesIO(picture.content)).size
        assert max(width, height) == 320


def test_conv1_filters_png_shows_the_onnx_weights_and_only_conv1_has_them(
    server: RunningServer, exported_artifacts: Path
) -> None:
    response = httpx.get(f"{server.url}/v1/layers/conv1/filters.png", timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    grid = np.asarray(Image.open(io.BytesIO(response.content)))
    graph = onnx.load(str(exported_artifacts / "alexnet.onnx")).graph
    weights = numpy_helper.to_array(next(t for t in graph.initializer if t.name == "conv1.weight"))
    assert weights.shape == (96, 3, 11, 11)
    # 16 columns x 6 rows of 44-px tiles (11 px x 4) with 2-px gaps; tile k is filter k.
    assert grid.shape == (6 * 46 + 2, 16 * 46 + 2, 3)
    for k in (0, 17, 95):
        row, column = divmod(k, 16)
        top, left = 2 + row * 46, 2 + column * 46
        tile = grid[top : top + 44 : 4, left : left + 44 : 4]
        w = weights[k].transpose(1, 2, 0)
        expected = np.rint((w - w.min()) / (w.max() - w.min()) * 255)
        np.testing.assert_allclose(tile, expected, atol=1)
    for layer, status, words in [("conv2", 400, "only a convolution"), ("conv9", 404, "unknown")]:
        response = httpx.get(f"{server.url}/v1/layers/{layer}/filters.png")
        assert response.status_code == status
        assert words in response.json()["error"]["message"]


def leaves_machine(url: str) -> bool:
    """True for a URL that is neither this machine's nor the page's own blob/data."""
    return not url.startswith(("blob:", "data:")) and urlsplit(url).hostname not in LOCAL_HOSTS


@dataclass
class Visit:
    """A page on the served site, with what it logged and everything it asked for."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def assert_clean(self, *, allow: str | None = None) -> None:
        """No console errors (but `allow`ed ones) and no request that left this machine."""
        errors = [e for e in self.console_errors if allow is None or allow not in e]
        assert not errors, errors
        remote = [u for u in self.requests if leaves_machine(u)]
        assert not remote, remote

    def screenshot(self, artefact_dir: Path, name: str) -> None:
        """Save a full-page screenshot for people, and a smaller copy for the README."""
        path = artefact_dir / name
        self.page.screenshot(path=str(path), full_page=True)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        # 256 colours: a third of the size, and the page's flat colours barely change.
        with Image.open(path) as shot:
            small = shot.convert("RGB").quantize(256, dither=Image.Dither.NONE)
            small.save(SCREENSHOTS / name, optimize=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium (no downloaded browser)."""
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing: `apt-get install chromium` (make system-deps)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@contextmanager
def visit(
    browser: Browser, server: RunningServer, phone: bool = False, classified: bool = True
) -> Iterator[Visit]:
    """The page in a fresh browser context (desktop or phone-sized) that records and blocks."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844} if phone else {"width": 1280, "height": 900}
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    seen = Visit(page)

    def only_local(route: Route) -> None:
        # Recorded by the request listener either way; refused so nothing really leaves.
        route.abort() if leaves_machine(route.request.url) else route.continue_()

    context.route("**/*", only_local)
    page.on("console", lambda m: seen.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: seen.console_errors.append(str(error)))
    page.on("request", lambda request: seen.requests.append(request.url))
    page.goto(f"{server.url}/")
    try:
        if classified:  # the first sample photo is chosen and classified at once
            page.wait_for_selector("#predictions li")
        yield seen
    finally:
        context.close()


@pytest.fixture
def desk(browser: Browser, server: RunningServer) -> Iterator[Visit]:
    """The page on a desktop-sized window."""
    with visit(browser, server) as seen:
        yield seen


def upload(seen: Visit, name: str, data: bytes, mime: str) -> None:
    """Choose a file in the page's file input and wait until the page uses it."""
    payload: FilePayload = {"name": name, "mimeType": mime, "buffer": data}
    seen.page.set_input_files("#file", files=[payload])
    expect(seen.page.locator("#current")).to_contain_text(f"Using {name}")


def activation_requests(server: RunningServer) -> float:
    """POST /v1/activations answered so far, from the server's own metrics."""
    text = httpx.get(f"{server.url}/metrics").text
    samples = (s for f in text_string_to_metric_families(text) for s in f.samples)
    return sum(
        s.value
        for s in samples
        if s.name == "alexnet_http_requests_total" and s.labels["route"] == "/v1/activations"
    )


def api(server: RunningServer, path: str, data: bytes, name: str, **form: str) -> Any:
    response = httpx.post(
        f"{server.url}{path}", files={"image": (name, data)}, data=form, timeout=60
    )
    return response.json()


@pytest.mark.browser
def test_predict_shows_the_crop_and_the_api_ranking(
    desk: Visit, server: RunningServer, photos: dict[str, bytes], artefact_dir: Path
) -> None:
    page = desk.page
    upload(desk, "chelsea.jpg", photos["chelsea"], "image/jpeg")
    expected = api(server, "/v1/predict", photos["chelsea"], "chelsea.jpg", top_k="5")
    predictions = expected["results"][0]["predictions"]
    expect(page.locator("#predictions .label")).to_have_text([p["label"] for p in predictions])
    expect(page.locator("#predictions .percent")).to_have_text(
        [f"{p['probability'] * 100:.1f} %" for p in predictions]
    )
    # The canvas is the manifest's crop of the photo, as the service's own preprocessing cuts it.
    model = httpx.get(f"{server.url}/v1/model").json()
    spec = PreprocessSpec.model_validate(model["preprocess"])
    reference = np.asarray(resize_and_crop(decode_image(photos["chelsea"]), spec), np.float64)
    pixels = page.evaluate("""(c => [c.width, c.height, Array.from(c.getContext('2d')
        .getImageData(0, 0, c.width, c.height).data)])(document.getElementById('network-view'))""")
    assert pixels[:2] == [spec.crop, spec.crop]
    drawn = np.array(pixels[2], np.float64).reshape(spec.crop, spec.crop, 4)[..., :3]
    # Browsers resample a little differently from Pillow; a misplaced crop differs by far more.
    assert np.abs(drawn - reference).mean() < 6
    for unused in ("#key-form", "#page-error", "#source-error", "#predict-error"):
        expect(page.locator(unused)).to_be_hidden()
    desk.screenshot(artefact_dir, "predict.png")
    desk.assert_clean()


@pytest.mark.browser
def test_explorer_shows_conv1_maps_and_receptive_fields(
    desk: Visit, server: RunningServer, artefact_dir: Path
) -> None:
    page = desk.page
    model = httpx.get(f"{server.url}/v1/model").json()
    conv1 = next(layer for layer in model["layers"] if layer["name"] == "conv1")
    runs_before = activation_requests(server)
    page.click("#tab-explore")
    expect(page.locator("#layers button.layer")).to_have_count(len(model["layers"]))
    expect(page.locator("#layers button.layer").first).to_contain_text("sees 11 px, jump 4")
    page.click("#layers button.layer >> text=conv1")
    expect(page.locator("#grid-caption")).to_contain_text(f"{conv1['channels']} feature maps")
    expect(page.locator("#map-grid .map")).to_have_count(conv1["channels"])
    # The most active channels are the API's, for the photo on the page (the first sample).
    sample = httpx.get(f"{server.url}/static/samples/astronaut.jpg").content
    stats = api(server, "/v1/activations", sample, "astronaut.jpg", layers="conv1")
    top_channels = [str(t["channel"]) for t in stats["layers"]["conv1"]["top_channels"]]
    chips = [re.compile(rf"^#{channel} \(") for channel in top_channels]
    expect(page.locator("#top-channels .chip")).to_have_text(chips)
    # The page computes the statistics from the raw maps it fetched: the API's figures.
    sparsity = stats["layers"]["conv1"]["sparsity"]
    expect(page.locator("#layer-stats")).to_contain_text(f"{sparsity * 100:.1f} %")
    page.locator("#map-grid .map").nth(7).click()
    expect(page.locator("#unit-title")).to_have_text("conv1, channel 7")
    # What the channel looks for: the API's top patches, and conv1's own filter beside them.
    top = httpx.get(f"{server.url}/v1/channels/conv1/7/top").json()
    expect(page.locator("#channel-gallery")).to_be_visible()
    expect(page.locator("#channel-gallery-caption")).to_contain_text(
        f"The {len(top['patches'])} images (of {top['images']} the export ran)"
    )
    expect(page.locator("#channel-gallery-caption")).to_contain_text("11 px square")
    for image in ("#channel-patches", "#channel-filter"):
        expect(page.locator(image)).to_have_js_property("complete", True)
        assert page.evaluate(f"document.querySelector('{image}').naturalWidth") > 0

    def choose_unit(row: int, col: int, rows: int, cols: int) -> None:
        box = page.locator("#unit-map").bounding_box()
        assert box is not None
        page.mouse.click(
            box["x"] + (col + 0.5) / cols * box["width"],
            box["y"] + (row + 0.5) / rows * box["height"],
        )

    # conv1 (11x11, stride 4, no padding): unit (10, 20) sees rows 40-50, columns 80-90.
    choose_unit(10, 20, 55, 55)
    expect(page.locator("#unit-text")).to_have_attribute("data-window", "40,80,11")
    expect(page.locator("#unit-text")).to_contain_text("rows 40–50 and columns 80–90")
    page.focus("#unit-map")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#unit-text")).to_have_attribute("data-window", "40,84,11")
    expect(page.locator("#filters-img")).to_have_js_property("complete", True)
    assert page.evaluate("document.getElementById('filters-img').naturalWidth") > 0
    page.locator("#top-channels .chip").first.click()  # the most active channel, for the picture
    expect(page.locator("#unit-title")).to_have_text(f"conv1, channel {top_channels[0]}")
    desk.screenshot(artefact_dir, "explorer.png")
    # conv2 pads by 2 pool1 units, 8 px apart: its first unit starts 16 px before the image.
    page.click("#layers button.layer >> text=conv2")
    expect(page.locator("#grid-caption")).to_contain_text("256 feature maps")
    page.locator("#map-grid .map").nth(0).click()
    choose_unit(0, 0, 27, 27)
    expect(page.locator("#unit-text")).to_have_attribute("data-window", "-16,-16,51")
    expect(page.locator("#unit-text")).to_contain_text("outside the image")
    page.click("#layers button.layer >> text=fc6")
    expect(page.locator("#grid-caption")).to_contain_text("4096 units")
    # One model run per layer shown (conv1, conv2, fc6), as the server counted them, besides
    # the test's own request for conv1's statistics.
    assert activation_requests(server) - runs_before == 3 + 1
    desk.assert_clean()


@pytest.mark.browser
def test_playground_edge_kernel_pooling_and_errors(
    desk: Visit, server: RunningServer, photo_arrays: dict[str, np.ndarray], artefact_dir: Path
) -> None:
    page = desk.page
    # The book's example: a 320-wide, 280-high grey photo and the [1, -1] kernel, valid.
    photo = encode(photo_arrays["camera"][:280, :320], "PNG")
    upload(desk, "camera.png", photo, "image/png")
    page.click("#tab-playground")
    expect(page.locator("#kernel-preset")).to_have_value("edge")
    expect(page.locator("#kernel-grid input")).to_have_count(2)
    page.click("#convolve-run")
    expect(page.locator("#play-input-shape")).to_contain_text("280 × 320")
    expect(page.locator("#conv-output-shape")).to_have_text("280 × 319")  # one column fewer
    rows = page.locator("#efficiency-rows tr")
    expect(rows.nth(0).locator("td")).to_have_text(["2", "267,960"])
    expect(rows.nth(1).locator("td").first).to_have_text(f"{319 * 280 * 320 * 280:,}")
    expect(rows.nth(2).locator("td")).to_have_text(["178,640", "267,960"])
    page.fill("#pool-size", "2")
    page.click("#pool-run")
    expect(page.locator("#pool-output-shape")).to_have_text("140 × 160")
    desk.screenshot(artefact_dir, "playground.png")

    page.check('input[name="color"][value="rgb"]')
    page.click("#convolve-run")
    expect(page.locator("#conv-output-shape")).to_have_text("3 × 280 × 319")
    # A kernel that is not numbers: the page shows the service's own message.
    page.locator("#kernel-grid input").first.fill("abc")
    page.click("#convolve-run")
    refusal = api(server, "/v1/convolve", photo, "x.png", kernel='[["abc", -1]]', color="rgb")
    message = refusal["error"]["message"]
    expect(page.locator("#play-error")).to_be_visible()
    expect(page.locator("#play-error")).to_have_text(message)
    desk.assert_clean(allow=BAD_REQUEST)


@pytest.mark.browser
def test_explain_shows_occlusion_and_gradcam_for_a_chosen_class(
    desk: Visit, server: RunningServer, artefact_dir: Path
) -> None:
    page = desk.page
    page.click("#tab-explain")
    page.select_option("#explain-class", "3")
    page.fill("#occlusion-stride", "32")
    page.click("#explain-run")
    # The page's numbers are the API's, for the same photo, class and settings.
    sample = httpx.get(f"{server.url}/static/samples/astronaut.jpg").content
    occlusion = api(server, "/v1/explain/occlusion", sample, "a.jpg", **{"class": "3"}, stride="32")
    label = occlusion["class"]["label"]
    expect(page.locator("#explain-status")).to_contain_text(f"Explaining “{label}” (class 3")
    drop = max(max(row) for row in occlusion["heatmap"]) * 100
    expect(page.locator("#occlusion-caption")).to_contain_text(f"{occlusion['forward_passes']} ")
    expect(page.locator("#occlusion-caption")).to_contain_text(f"{drop:.4g} points")  # 4 digits
    expect(page.locator("#gradcam-caption")).to_contain_text("conv5 (13 × 13 units")
    # Both maps were drawn over the crop: the canvases are not blank.
    for canvas in ("#occlusion-view", "#gradcam-view"):
        painted = page.evaluate(
            "(id) => document.querySelector(id).getContext('2d')"
            ".getImageData(0, 0, 227, 227).data.some((v, i) => i % 4 !== 3 && v > 0)",
            canvas,
        )
        assert painted, canvas
    page.select_option("#gradcam-layer", "conv2")
    page.select_option("#gradcam-method", "gradcam++")
    page.click("#explain-run")
    expect(page.locator("#gradcam-caption")).to_contain_text("Grad-CAM++ at conv2 (27 × 27")
    desk.screenshot(artefact_dir, "explain.png")
    desk.assert_clean()


@pytest.mark.browser
def test_keyboard_phone_screen_and_unreadable_files(
    browser: Browser, server: RunningServer
) -> None:
    with visit(browser, server, phone=True) as seen:
        page = seen.page
        page.focus("#tab-predict")
        page.keyboard.press("ArrowRight")
        expect(page.locator("#panel-explore")).to_be_visible()
        expect(page.locator("#tab-explore")).to_be_focused()
        # The first layer opens by itself; Tab into the panel, past it, to the second.
        expect(page.locator("#grid-caption")).to_contain_text("96 feature maps")
        for _ in range(3):
            page.keyboard.press("Tab")
        expect(page.locator("#layers button.layer").nth(1)).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("#layer-title")).to_contain_text("pool1")
        expect(page.locator("#grid-caption")).to_contain_text("96 feature maps, 27 × 27")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
        junk: FilePayload = {"name": "notes.png", "mimeType": "image/png", "buffer": b"not a pic"}
        page.set_input_files("#file", files=[junk])
        expect(page.locator("#source-error")).to_contain_text("not an image this browser can read")
        seen.assert_clean()


@pytest.mark.browser
def test_page_asks_for_the_api_key_when_the_server_wants_one(
    browser: Browser, exported_artifacts: Path, artefact_dir: Path
) -> None:
    with (
        running_server(exported_artifacts, artefact_dir / "logs", api_key="page-key") as secured,
        visit(browser, secured, classified=False) as seen,
    ):
        page = seen.page
        expect(page.locator("#page-error")).to_contain_text("needs an API key")
        page.fill("#api-key", "a wrong guess")
        page.click("#key-form button")
        expect(page.locator("#page-error")).to_contain_text("the API key is not valid")
        page.fill("#api-key", "page-key")
        page.click("#key-form button")
        expect(page.locator("#predictions li").first).to_be_visible()
        expect(page.locator("#page-error")).to_be_hidden()
        seen.assert_clean(allow="status of 401")
