"""handofflab._core http bindings: the incremental request-head parser."""
from __future__ import annotations

import pytest

from handofflab import _core as core

# What curl 7.88 sends for `curl http://10.0.0.100/index.html`.
CURL = (
    b"GET /index.html HTTP/1.1\r\n"
    b"Host: 10.0.0.100\r\n"
    b"User-Agent: curl/7.88.1\r\n"
    b"Accept: */*\r\n"
    b"\r\n"
)


def _check_curl_head(head: core.RequestHead) -> None:
    assert head.method == "GET" and head.method_kind == core.Method.Get
    assert head.target == "/index.html" and head.path == "/index.html" and head.query == ""
    assert head.version == core.HttpVersion.Http11
    assert head.host == "10.0.0.100" and head.port is None
    assert head.keep_alive and head.content_length is None and not head.transfer_encoding
    assert head.header_count == 3


@pytest.mark.parametrize("split", range(1, len(CURL)))
def test_curl_request_split_in_two(split: int) -> None:
    parser = core.RequestHeadParser()
    assert parser.feed(CURL[:split]) == core.ParseStatus.Incomplete
    assert parser.status == core.ParseStatus.Incomplete
    assert parser.feed(CURL[split:]) == core.ParseStatus.Complete
    assert parser.error == core.HttpError.None_
    assert parser.head_length == len(CURL)
    _check_curl_head(parser.head)


def test_curl_request_byte_by_byte_then_pipelined() -> None:
    parser = core.RequestHeadParser()
    for i in range(len(CURL) - 1):
        assert parser.feed(CURL[i : i + 1]) == core.ParseStatus.Incomplete
    assert parser.feed(CURL[-1:] + b"GET /next") == core.ParseStatus.Complete
    assert parser.last_consumed == 1  # the rest belongs to the next request
    head = parser.head
    _check_curl_head(head)
    parser.reset()
    assert parser.status == core.ParseStatus.Incomplete
    _check_curl_head(head)  # a copy: survives reset()


def test_query_cookie_and_port() -> None:
    parser = core.RequestHeadParser()
    status = parser.feed(
        b"GET /shop/cart.html?item=42 HTTP/1.0\r\nHost: WWW.Example.COM:8080\r\n"
        b"Cookie: session=abc; HLBACKEND=\"be2\"\r\nContent-Length: 0\r\n\r\n"
    )
    assert status == core.ParseStatus.Complete
    h = parser.head
    assert (h.path, h.query, h.host, h.port) == ("/shop/cart.html", "item=42", "www.example.com", 8080)
    assert h.version == core.HttpVersion.Http10 and not h.keep_alive
    assert h.content_length == 0
    assert h.cookie_value("HLBACKEND") == "be2" and h.cookie_value("nope") is None


@pytest.mark.parametrize(
    "request_bytes, error, status",
    [
        (b"GET /index.html HTTP/1.1\r\n\r\n", "MissingHost", 400),
        (b"GET  /index.html HTTP/1.1\r\nHost: a\r\n\r\n", "BadRequestLine", 400),
        (b"\x16\x03\x01\x02\x00", "NonHttp", 400),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", "BadVersion", 505),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "DuplicateHost", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", "BadHeaderLine", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", "BadContentLength", 400),
    ],
)
def test_malformed_requests(request_bytes: bytes, error: str, status: int) -> None:
    parser = core.RequestHeadParser()
    assert parser.feed(request_bytes) == core.ParseStatus.Error
    assert parser.error == getattr(core.HttpError, error)
    assert core.status_code(parser.error) == status
    # After an error the parser consumes nothing more.
    assert parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n") == core.ParseStatus.Error
    assert parser.last_consumed == 0


def test_limits() -> None:
    limits = core.Limits(max_target=8)
    assert limits.max_head_bytes == 8192 and limits.max_headers == 100 and limits.max_target == 8
    parser = core.RequestHeadParser(limits)
    assert parser.limits.max_target == 8
    assert parser.feed(b"GET /0123456789 HTTP/1.1\r\n") == core.ParseStatus.Error
    assert parser.error == core.HttpError.TargetTooLong
    assert core.status_code(parser.error) == 414

    parser = core.RequestHeadParser(core.Limits(max_headers=1))
    assert parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n") == core.ParseStatus.Error
    assert core.status_code(parser.error) == 431
    assert core.status_code(core.HttpError.None_) == 0
