"""Property: whatever paths, methods, query strings and headers a client sends, camd never answers 5xx.

Hypothesis builds raw HTTP/1.1 requests for every route (and for routes that do
not exist) and sends them to a real daemon over a socket, so nothing in a
client library tidies them up first. Credentials are right, wrong, malformed or
missing; wrong ones come from other loopback addresses so that the login
throttle does not lock the right ones out.
"""

from __future__ import annotations

import base64
import collections
import random
import socket
import time
from collections.abc import Callable
from urllib.parse import quote

import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import wait_until
from tests.support.daemon import FAST_WARMUP, PASSWORD, USER, Daemon

EXAMPLES = 1000

# Printable latin-1 without the bytes that end a header line.
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60)
TOKEN = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"),
                min_size=1, max_size=12)  # fmt: skip
ANY_TEXT = st.text(max_size=40)
NUMBERISH = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "nan", "inf", "-0", "1e999", "0x10", "1_0", " 5", "5 ", "\u0661", "%00", "1" * 400]),
)
DAYS = st.one_of(
    st.dates().map(lambda day: day.isoformat()),
    st.sampled_from(["9999-99-99", "..", ".", "%2e%2e", "0000-00-00", "2024-02-30"]),
    ANY_TEXT.map(lambda text: quote(text, safe="")),
)
NAMES = st.one_of(
    st.builds(lambda day, n: f"{day.strftime('%Y%m%d')}-{n:06d}.jpg", st.dates(), st.integers(0, 999999)),
    st.sampled_from(["..%2f..%2fusers.jpg", "x.jpg", ".jpg", "a" * 300 + ".jpg", "%00.jpg", "index"]),
    ANY_TEXT.map(lambda text: quote(text, safe="") + ".jpg"),
)


def segment() -> st.SearchStrategy[str]:
    return st.one_of(ANY_TEXT.map(lambda text: quote(text, safe="")), st.sampled_from(["..", ".", "%2e%2e", "%ff", ""]))


def paths(known: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(
            [
                "/",
                "/live",
                "/healthz",
                "/api/status",
                "/stream.mjpg",
                "/snapshot.jpg",
                "/stills/",
                "/api/stills",
                "/metrics",
                "/static/style.css",
                "/static/live.js",
                "/favicon.ico",
                "//",
                "/api/",
                "/stills",
            ]
        ),
        st.sampled_from(known) if known else st.just("/stills/"),
        st.builds(lambda day, name: f"/stills/{day}/{name}", DAYS, NAMES),
        st.builds(lambda day: f"/stills/{day}.zip", DAYS),
        st.builds(lambda day, name: f"/stills/{day}/{name}", DAYS, segment()),
        st.builds(lambda parts: "/" + "/".join(parts), st.lists(segment(), max_size=4)),
        st.builds(lambda name: f"/static/{name}", segment()),
    )


QUERY_KEYS = st.one_of(
    st.sampled_from(["fps", "page", "per_page", "download", "thumb", "day", "q", ""]),
    ANY_TEXT.map(lambda text: quote(text, safe="")),
)
QUOTED = st.one_of(NUMBERISH.map(lambda t: quote(t, safe="")), ANY_TEXT.map(lambda t: quote(t, safe="")))
QUERIES = st.lists(st.tuples(QUERY_KEYS, st.one_of(QUOTED, QUOTED, QUOTED, NUMBERISH)), max_size=4)

VALID = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
AUTHS = st.one_of(
    st.just(("valid", VALID)),
    st.just(("valid", VALID)),
    st.just(("valid", VALID)),
    st.just(("none", None)),
    st.builds(lambda u, p: ("wrong", "Basic " + base64.b64encode(f"{u}:{p}".encode()).decode()), ANY_TEXT, ANY_TEXT),
    st.builds(lambda raw: ("wrong", "Basic " + base64.b64encode(raw).decode()), st.binary(max_size=60)),
    st.builds(lambda text: ("wrong", text), HEADER_TEXT),
)
EXTRA_HEADERS = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from(
                [
                    "Range",
                    "If-None-Match",
                    "If-Modified-Since",
                    "If-Range",
                    "Sec-Fetch-Site",
                    "Origin",
                    "Referer",
                    "Accept",
                    "Content-Type",
                    "Cookie",
                    "X-Forwarded-For",
                    "Accept-Encoding",
                    "Expect",
                    "Connection",
                    "Upgrade",
                ]
            ),
            HEADER_TEXT,
        ),
        st.tuples(TOKEN, HEADER_TEXT),
    ),
    max_size=5,
)
REAL_METHODS = st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
METHODS = st.one_of(REAL_METHODS, REAL_METHODS, REAL_METHODS, TOKEN.map(str.upper), TOKEN)


def build(method: str, path: str, query: list[tuple[str, str]], auth: str | None, headers: list[tuple[str, str]],
          body: bytes) -> bytes:  # fmt: skip
    target = path + ("?" + "&".join(f"{key}={value}" for key, value in query) if query else "")
    lines = [f"{method} {target} HTTP/1.1", "Host: camd.test", "Connection: close"]
    if auth is not None:
        lines.append(f"Authorization: {auth}")
    lines += [f"{name}: {value}" for name, value in headers if name.lower() not in ("content-length", "host")]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body  # raw non-ASCII bytes as well


def status_of(port: int, source: str, data: bytes) -> int:
    """The status code of the response to ``data``; 0 when the connection closed without one."""
    with socket.create_connection(("127.0.0.1", port), timeout=15, source_address=(source, 0)) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    while received.startswith(b"HTTP/1.1 100 "):  # Expect: 100-continue
        received = received.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in received else b""
    line = received.split(b"\r\n", 1)[0]
    return int(line.split()[1]) if line.startswith(b"HTTP/") and len(line.split()) > 1 else 0


def test_no_request_gets_a_5xx(daemon_factory: Callable[..., Daemon]) -> None:
    daemon = daemon_factory("--source", "test", "--width", "320", "--height", "240", "--stills-interval", "1s",
                            *FAST_WARMUP)  # fmt: skip
    listing = wait_until(lambda: daemon.get("/api/stills").json()["stills"], 20, what="a still")
    known = [item["url"] for item in listing]  # type: ignore[union-attr]
    known += [url.rsplit("/", 1)[0] + ".zip" for url in known]
    statuses: collections.Counter[int] = collections.Counter()
    server_errors: list[tuple[int, bytes]] = []
    rng = random.Random(6)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(
        method=METHODS, path=paths(known), query=QUERIES, auth=AUTHS, headers=EXTRA_HEADERS,
        body=st.one_of(st.just(b""), st.binary(max_size=200)),
    )  # fmt: skip
    def probe(method: str, path: str, query: list[tuple[str, str]], auth: tuple[str, str | None],
              headers: list[tuple[str, str]], body: bytes) -> None:  # fmt: skip
        kind, value = auth
        # Wrong credentials from addresses of their own: the throttle would otherwise lock out the right ones.
        source = "127.0.0.1" if kind != "wrong" else f"127.0.{rng.randint(1, 254)}.{rng.randint(1, 254)}"
        data = build(method, path, query, value, headers, body)
        status = status_of(daemon.port, source, data)
        statuses[status] += 1
        if status >= 500:
            server_errors.append((status, data[:300]))
        assert status < 500, data[:300]

    started = time.monotonic()
    probe()
    elapsed = time.monotonic() - started
    total = sum(statuses.values())
    print(f"\nfuzz: {total} requests in {elapsed:.1f}s, statuses {dict(sorted(statuses.items()))}, "
          f"5xx: {len(server_errors)}")  # fmt: skip
    assert not server_errors
    assert requests.get(daemon.url("/healthz"), timeout=5).status_code == 200
    assert "Traceback" not in daemon.log, daemon.log[-3000:]
