"""Auth, CORS, security headers, body limits and path handling, on the app in this process.

None of this needs the model, so the app runs without its lifespan: routes that need
the model answer 503, which is neither the 401 nor the 413 these tests look for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.types import Message

import service.security
from service.app import create_app
from service.limits import FORM_OVERHEAD_BYTES
from service.settings import Settings

KEY = "s3cret-" + "x" * 24
ORIGIN = "https://explorer.example"
PAGE_CSP_MARK = "frame-ancestors"  # the page's own, stricter policy (service/routers/page.py)


class AppClient:
    """A blocking client that calls the app in this process (no sockets, no lifespan)."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                return await http.request(method, path, **options)

        return asyncio.run(call())

    def get(self, path: str, **options: Any) -> httpx.Response:
        return self.request("GET", path, **options)

    def post(self, path: str, **options: Any) -> httpx.Response:
        return self.request("POST", path, **options)

    def options(self, path: str, **options: Any) -> httpx.Response:
        return self.request("OPTIONS", path, **options)


def make_settings(**values: Any) -> Settings:
    if "api_key" in values:
        values["api_key"] = SecretStr(values["api_key"])
    return Settings(**values)


def client(**settings: Any) -> AppClient:
    return AppClient(make_settings(**settings))


@pytest.fixture(scope="module")
def guarded() -> Iterator[AppClient]:
    yield client(api_key=KEY)


OPEN = ["/health/live", "/v2/health/live", "/metrics", "/", "/static/js/app.js"]
OPEN_NOT_READY = ["/health/ready", "/v2/health/ready"]  # open, but 503 without a model
GUARDED = ["/v1/presets", "/v1/model", "/v1/samples", "/openapi.json", "/docs", "/v2"]


def test_without_a_key_configured_nothing_asks_for_one() -> None:
    assert client().get("/v1/presets").status_code == 200


@pytest.mark.parametrize("path", OPEN + OPEN_NOT_READY)
def test_probes_metrics_and_the_page_need_no_key(guarded: AppClient, path: str) -> None:
    expected = 503 if path in OPEN_NOT_READY else 200
    assert guarded.get(path).status_code == expected


@pytest.mark.parametrize("path", GUARDED)
def test_everything_else_needs_the_key(guarded: AppClient, path: str) -> None:
    response = guarded.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="alexnet"'
    authorised = guarded.get(path, headers={"Authorization": f"Bearer {KEY}"})
    assert authorised.status_code == (503 if path == "/v1/model" else 200)  # no model here


@pytest.mark.parametrize(
    "path",
    [
        "/v2/repository/index",
        "/v2/repository/models/alexnet/load",
        "/v2/repository/models/alexnet/unload",
        "/v1/models/alexnet:predict",
    ],
)
def test_repository_and_kserve_routes_need_the_key(guarded: AppClient, path: str) -> None:
    refused = guarded.post(path, content=b"{}")
    assert refused.status_code == 401
    assert isinstance(refused.json()["error"], str)  # the protocols' own error form
    authorised = guarded.post(path, content=b"{}", headers={"Authorization": f"Bearer {KEY}"})
    assert authorised.status_code == 503  # past the key; no model in this app


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (f"Bearer {KEY}", 200),
        (f"bearer {KEY}", 200),  # the scheme is case-insensitive (RFC 7235)
        (f"Bearer   {KEY}  ", 200),
        ("Bearer wrong", 401),
        (f"Bearer {KEY[:-1]}", 401),
        (f"Bearer {KEY}x", 401),
        (f"Bearer {KEY.upper()}", 401),
        ("Bearer", 401),
        ("Bearer ", 401),
        (f"Basic {KEY}", 401),
        (KEY, 401),
    ],
)
def test_only_the_exact_bearer_token_passes(guarded: AppClient, header: str, status: int) -> None:
    response = guarded.get("/v1/presets", headers={"Authorization": header})
    assert response.status_code == status, header
    if status == 401:
        assert response.json()["error"]["code"] == "unauthorized"


def test_a_wrong_token_is_told_apart_and_compared_in_constant_time(
    guarded: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = service.security.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(service.security.hmac, "compare_digest", spy)
    response = guarded.get("/v1/presets", headers={"Authorization": "Bearer guess"})
    assert response.headers["www-authenticate"] == 'Bearer realm="alexnet", error="invalid_token"'
    assert calls == [(b"guess", KEY.encode())]


def test_401_bodies_follow_each_protocol_and_carry_the_request_id(guarded: AppClient) -> None:
    v1 = guarded.get("/v1/model", headers={"X-Request-ID": "req-401"})
    assert v1.json()["error"]["request_id"] == "req-401"
    assert v1.headers["x-request-id"] == "req-401"
    v2 = guarded.post("/v2/models/alexnet/infer", content=b"{}")
    assert v2.status_code == 401 and isinstance(v2.json()["error"], str)


# --- headers ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/presets", "/v1/nothing", "/health/live", "/metrics"])
def test_every_response_has_the_security_headers(path: str) -> None:
    response = client().get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["content-security-policy"] == (
        "default-src 'self'; img-src 'self' data: blob:"
    )


def test_refusals_have_them_too(guarded: AppClient) -> None:
    response = guarded.get("/v1/model")
    assert response.status_code == 401
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_page_keeps_its_own_stricter_policy_once() -> None:
    response = client().get("/", headers={"Accept": "text/html"})  # a browser's request
    policies = response.headers.get_list("content-security-policy")
    assert len(policies) == 1 and PAGE_CSP_MARK in policies[0]
    assert len(response.headers.get_list("x-content-type-options")) == 1


def test_the_docs_page_may_load_swagger_ui() -> None:
    response = client().get("/docs")
    assert response.status_code == 200
    assert "content-security-policy" not in response.headers  # Swagger UI comes from a CDN
    assert response.headers["x-content-type-options"] == "nosniff"


# --- CORS ---------------------------------------------------------------------------------


def _preflight(test_client: AppClient, origin: str) -> Any:
    return test_client.options(
        "/v1/predict",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )


def test_cors_is_off_by_default() -> None:
    test_client = client()
    assert "access-control-allow-origin" not in _preflight(test_client, ORIGIN).headers
    simple = test_client.get("/v1/presets", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in simple.headers


def test_cors_allows_exactly_the_configured_origins_even_with_auth_on() -> None:
    test_client = client(cors_origins=[ORIGIN], api_key=KEY)
    allowed = _preflight(test_client, ORIGIN)
    assert allowed.status_code == 200  # a preflight carries no credentials: not a 401
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    denied = _preflight(test_client, "https://elsewhere.example")
    assert denied.status_code == 400
    assert "access-control-allow-origin" not in denied.headers
    simple = test_client.get(
        "/v1/presets", headers={"Origin": ORIGIN, "Authorization": f"Bearer {KEY}"}
    )
    assert simple.status_code == 200 and simple.headers["access-control-allow-origin"] == ORIGIN


# --- body limits --------------------------------------------------------------------------


def _call(settings: Settings, path: str, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    """Call the whole app with a receive that fails the test if the body is ever read."""
    app = create_app(settings)
    sent: list[Message] = []

    async def receive() -> Message:
        raise AssertionError("the body was read")

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    asyncio.run(app(scope, receive, send))
    return sent


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("/v1/predict", 2 * 1000 + FORM_OVERHEAD_BYTES),
        ("/v1/convolve", 2 * 1000 + FORM_OVERHEAD_BYTES),
        ("/v2/models/alexnet/infer", 5000),
    ],
)
def test_a_declared_length_over_the_limit_is_refused_unread(path: str, limit: int) -> None:
    settings = make_settings(max_files=2, max_upload_bytes=1000, max_v2_body_bytes=5000)
    headers = [(b"content-length", str(limit + 1).encode()), (b"content-type", b"x/y")]
    start, body = _call(settings, path, headers)
    assert start["status"] == 413
    assert (b"connection", b"close") in start["headers"]
    assert b"too_large" in body["body"] or path.startswith("/v2")


def test_a_chunked_body_is_cut_off_at_the_limit() -> None:
    test_client = client(max_files=1, max_upload_bytes=1000)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: sent chunked
        yield b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
        for _ in range(2000):
            yield b"x" * 1000

    response = test_client.post(
        "/v1/predict", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert response.status_code == 413
    assert str(1000 + FORM_OVERHEAD_BYTES) in response.json()["error"]["message"]


# --- paths and secrets --------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/static/../service/settings.py",
        "/static/%2e%2e/%2e%2e/pyproject.toml",
        "/static/..%2f..%2fpyproject.toml",
        "/static//etc/passwd",
        "/static/js/../../../pyproject.toml",
        "/v1/layers/..%2f..%2fetc%2fpasswd/filters.png",
    ],
)
def test_no_request_path_reaches_a_file_outside_the_static_folder(path: str) -> None:
    response = client().get(path)
    assert response.status_code in (404, 503), (path, response.status_code)
    assert "BaseSettings" not in response.text and "root:" not in response.text
    assert "[project]" not in response.text


def test_the_key_never_reaches_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    test_client = client(api_key=KEY)
    with caplog.at_level(logging.DEBUG):
        test_client.get("/v1/presets", headers={"Authorization": f"Bearer {KEY}"})
        test_client.get("/v1/presets", headers={"Authorization": "Bearer not-the-key"})
        test_client.get("/v1/model", headers={"Authorization": f"Bearer {KEY}"})  # 503, logged
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert KEY not in logged and "not-the-key" not in logged
    settings = make_settings(api_key=KEY)
    assert KEY not in repr(settings) and KEY not in settings.model_dump_json()
