"""Request traces (issue 16 item 2): Common and Combined Log Format lines, bad
lines counted and skipped, documents and per-client streams from the log."""
from __future__ import annotations

from pathlib import Path

import pytest

from handofflab import trace
from handofflab.cli import main

LOG = """\
10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /index.html HTTP/1.0" 200 2326
10.0.0.2 - frank [10/Oct/2000:13:55:37 -0700] "GET /img/a.png HTTP/1.1" 200 10240 "http://x/" "Mozilla/5.0 (X11)"
10.0.0.1 - - [10/Oct/2000:13:55:38 -0700] "GET /index.html?utm=1 HTTP/1.1" 304 -
this is not a log line
10.0.0.3 - - [99/Foo/2000:13:55:39 -0700] "GET /index.html HTTP/1.1" 200 2326
10.0.0.2 - - [10/Oct/2000:13:55:40 -0700] "POST /form HTTP/1.1" 200 12
10.0.0.3 - - [10/Oct/2000:13:55:41 -0700] "GET /missing HTTP/1.1" 404 153
10.0.0.3 - - [10/Oct/2000:13:55:42 -0700] "GET /img/b.png HTTP/1.1" 200 10240

10.0.0.1 - - [10/Oct/2000:13:55:43 -0700] "GET /img/a.png HTTP/1.1" 200 10000
10.0.0.4 - - [10/Oct/2000:13:55:44 -0700] "GET /index.html HTTP/1.1" 200 2326 "-" "curl/7.88"
"""


def test_good_lines_give_documents_and_requests_bad_ones_are_counted() -> None:
    t = trace.parse(LOG.splitlines())
    assert t.lines == 10
    assert t.bad_lines == 2
    assert t.bad_examples[0].startswith("line 4: not Common or Combined Log Format")
    assert t.bad_examples[1].startswith("line 5: bad time")
    assert t.sizes == {"/index.html": 2326, "/img/a.png": 10240, "/img/b.png": 10240}
    assert [r.path for r in t.requests] == ["/index.html", "/img/a.png", "/index.html", "/img/b.png",
                                            "/img/a.png", "/index.html"]
    assert t.requests[2].status == 304  # the query string dropped, a size known from a 200
    assert t.requests[1].time - t.requests[0].time == pytest.approx(1.0)
    assert t.skipped == {"method POST": 1, "a path never answered 200 with a body (its size is unknown)": 1}
    assert "2 bad line(s) skipped" in t.summary()
    assert t.cluster_sizes() == (("2326", 1), ("10240", 2))


def test_streams_keep_each_clients_requests_together_in_order() -> None:
    t = trace.parse(LOG.splitlines())
    two = t.streams(2)
    # clients by first appearance: .1 -> 0, .2 -> 1, .3 -> 0, .4 -> 1
    assert two[0] == ["/index.html", "/index.html", "/img/b.png", "/img/a.png"]
    assert two[1] == ["/img/a.png", "/index.html"]
    assert sum(map(len, t.streams(5))) == len(t.requests)
    with pytest.raises(ValueError):
        t.streams(0)


def test_mapping_pairs_paths_with_documents_of_the_same_size() -> None:
    t = trace.parse(LOG.splitlines())
    m = t.mapping({"/docs/2326-0.bin": 2326, "/docs/10240-0.bin": 10240, "/docs/10240-1.bin": 10240})
    assert m == {"/index.html": "/docs/2326-0.bin", "/img/a.png": "/docs/10240-0.bin",
                 "/img/b.png": "/docs/10240-1.bin"}
    with pytest.raises(ValueError, match="2 trace path"):
        t.mapping({"/docs/2326-0.bin": 2326, "/docs/10240-0.bin": 10240})


def test_garbage_never_raises_and_an_empty_trace_is_a_clear_error(tmp_path: Path) -> None:
    junk = ["\x00\xff" * 40, '1.2.3.4 - - [x] "GET', "-" * 5000, '" " " "', "1.2.3.4 - - [] \"\" 200 1"]
    t = trace.parse(junk)
    assert t.bad_lines == len(junk) and not t.requests
    f = tmp_path / "junk.log"
    f.write_bytes(b"\xff\xfe garbage\n" + "\n".join(junk).encode())
    with pytest.raises(ValueError, match="no request to replay"):
        trace.load(f)


def test_run_refuses_a_trace_it_cannot_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "junk.log"
    f.write_text("nothing here\n")
    monkeypatch.setattr("os.geteuid", lambda: 0)
    with pytest.raises(SystemExit, match="no request to replay"):
        main(["run", "always-vs-rare", "--trace", str(f)])
    with pytest.raises(SystemExit, match="--trace"):
        main(["run", "always-vs-rare", "--trace", str(tmp_path / "absent.log")])
