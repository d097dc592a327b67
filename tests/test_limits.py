"""Global input limits: body size (also chunked), bad UTF-8, NUL, surrogates,
nesting, NUL in the path and query, and the per-resource helpers. All answers
are problem+json; one test goes through a real uvicorn socket so the chunked
case is the HTTP/1.1 wire format, not only the ASGI transport."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
import uvicorn
from auth_helpers import admin_headers, api_client
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from api.auth import CurrentPrincipal
from api.limits import check_note_text, page_size
from api.main import create_app
from api.problems import Problem
from peerlearn.settings import Settings

PROBLEM = "application/problem+json"
LIMIT = 4096


class Echo(BaseModel):
    text: str = ""
    items: list[object] = []


def _probe_router() -> APIRouter:
    r = APIRouter(prefix="/v1/probe-limits")

    @r.post("/echo")
    async def echo(body: Echo, principal: CurrentPrincipal) -> dict[str, int]:
        return {"chars": len(body.text), "items": len(body.items)}

    @r.get("/items/{item_id}")
    async def item(item_id: str, principal: CurrentPrincipal, q: str = "") -> dict[str, str]:
        return {"id": item_id, "q": q}

    return r


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        temporal_address="127.0.0.1:1",
        max_body_bytes=LIMIT,
        max_note_chars=100,
        max_statements_per_note=3,
        max_page_size=50,
    )


@pytest.fixture(scope="module")
def app(settings: Settings) -> FastAPI:
    a = create_app(settings)
    a.include_router(_probe_router())
    return a


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def client(app: FastAPI, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app, admin_headers(database_url)) as c:
        yield c


def _problem(r: httpx.Response, status: int, needle: str = "") -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    body = r.json()
    assert body["status"] == status
    assert needle.lower() in body["detail"].lower(), body


JSON = {"Content-Type": "application/json"}


async def test_valid_body_passes(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/probe-limits/echo", json={"text": "zażółć gęślą jaźń ✓", "items": [1]}
    )
    assert r.status_code == 200 and r.json() == {"chars": 19, "items": 1}


async def test_body_over_limit_is_413(client: httpx.AsyncClient) -> None:
    big = json.dumps({"text": "x" * LIMIT})
    _problem(await client.post("/v1/probe-limits/echo", content=big, headers=JSON), 413, str(LIMIT))
    # without a key too: size is checked before anything else
    r = await client.post(
        "/v1/probe-limits/echo", content=big, headers={**JSON, "Authorization": ""}
    )
    _problem(r, 413)


async def test_chunked_body_over_limit_is_413(client: httpx.AsyncClient) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"text": "'
        for _ in range(1000):  # would be 1 MB; the server stops reading at the limit
            sent += 1
            yield b"y" * 1024
        yield b'"}'

    r = await client.post("/v1/probe-limits/echo", content=chunks(), headers=JSON)
    _problem(r, 413)
    assert sent < 1000


async def test_bad_content_length_is_400(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/probe-limits/echo", content=b"{}", headers={**JSON, "Content-Length": "-1"}
    )
    _problem(r, 400, "Content-Length")


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b'{"text": "caf\xe9"}', 400, "UTF-8"),  # latin-1, not UTF-8
        (b'{"text": "\xff\xfe"}', 400, "UTF-8"),
        (b'{"text": "a\x00b"}', 400, "NUL"),
        (b'{"text": "a\\u0000b"}', 422, "NUL"),
        (b'{"te\\u0000xt": "a"}', 422, "NUL"),
        (b'{"text": "\\ud800"}', 422, "surrogate"),
        (b'{"items": ' + b"[" * 40 + b"]" * 40 + b"}", 422, "nested"),
        (b"[" * 4000, 422, "nested"),
        (b'{"items": ' + b'{"a":' * 50 + b"1" + b"}" * 50 + b"}", 422, "nested"),
    ],
)
async def test_bad_json_is_refused(
    client: httpx.AsyncClient, body: bytes, status: int, needle: str
) -> None:
    _problem(await client.post("/v1/probe-limits/echo", content=body, headers=JSON), status, needle)


async def test_brackets_inside_strings_do_not_count(client: httpx.AsyncClient) -> None:
    text = "[[[[{{{{" * 20 + '\\"[[[['
    r = await client.post("/v1/probe-limits/echo", content=json.dumps({"text": text}), headers=JSON)
    assert r.status_code == 200, r.text


async def test_malformed_json_is_422_problem(client: httpx.AsyncClient) -> None:
    _problem(await client.post("/v1/probe-limits/echo", content=b'{"text": ', headers=JSON), 422)


async def test_nul_in_path_and_query_is_400(client: httpx.AsyncClient) -> None:
    _problem(await client.get("/v1/probe-limits/items/a%00b"), 400, "NUL")
    _problem(await client.get("/v1/probe-limits/items/a?q=x%00y"), 400, "NUL")
    _problem(await client.get("/v1/probe-limits/items/a?q=%ff%fe"), 400, "UTF-8")
    r = await client.get("/v1/probe-limits/items/' OR 1=1; --?q=%27%3B DROP TABLE api_keys; --")
    assert r.status_code == 200 and r.json()["q"] == "'; DROP TABLE api_keys; --"


def test_note_and_page_limits(settings: Settings) -> None:
    check_note_text("One lesson. Another one.", settings)
    for bad, needle in [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("x" * 101, "longer"),
        ("A. B. C. D.", "statements"),
        ("a\nb\nc\nd", "statements"),
    ]:
        with pytest.raises(Problem) as info:
            check_note_text(bad, settings)
        assert info.value.status == 422 and needle in info.value.detail
    assert page_size(None, settings) == 50 and page_size(7, settings) == 7
    for too_many in (0, -1, 51, 10**12):
        with pytest.raises(Problem):
            page_size(too_many, settings)


# --- the same limits on a real socket ------------------------------------------------


@pytest.fixture(scope="module")
def live_server(app: FastAPI) -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield port
    server.should_exit = True
    thread.join(10)


def _raw(port: int, request: bytes, send_more: Iterator[bytes] = iter(())) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        try:
            for part in send_more:
                s.sendall(part)
        except OSError:
            pass  # the server answered and closed while we were still sending
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (TimeoutError, OSError):
                break
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data and b'"status"' in data:
                break
        return data


async def test_chunked_over_limit_on_the_wire(live_server: int, database_url: str) -> None:
    auth = admin_headers(database_url)["Authorization"]
    head = (
        "POST /v1/probe-limits/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {auth}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()

    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b"400\r\n" + b"z" * 1024 + b"\r\n"
        yield b"0\r\n\r\n"

    data = await asyncio.to_thread(_raw, live_server, head, chunks())
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    assert b"application/problem+json" in data


async def test_invalid_utf8_on_the_wire(live_server: int, database_url: str) -> None:
    auth = admin_headers(database_url)["Authorization"]
    body = b'{"text": "\xc3\x28"}'
    req = (
        "POST /v1/probe-limits/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {auth}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    data = await asyncio.to_thread(_raw, live_server, req)
    assert data.startswith(b"HTTP/1.1 400"), data[:200]
    assert b"application/problem+json" in data
