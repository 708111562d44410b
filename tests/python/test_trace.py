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


def test_schedule_keeps_the_logs_timing() -> None:
    t = trace.parse(LOG.splitlines())
    # Requests at 13:55:36, :37, :38, :42, :43, :44 (the others skipped).
    assert t.schedule() == [(0.0, "/index.html"), (1.0, "/img/a.png"), (2.0, "/index.html"),
                            (6.0, "/img/b.png"), (7.0, "/img/a.png"), (8.0, "/index.html")]
    assert [o for o, _ in t.schedule(speed=4)] == [0.0, 0.25, 0.5, 1.5, 1.75, 2.0]
    # Three requests logged in one second start a third of it apart.
    same = trace.parse([f'10.0.0.{i} - - [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 5' for i in range(3)]
                       + ['10.0.0.9 - - [10/Oct/2000:13:55:37 -0700] "GET /a HTTP/1.1" 200 5'])
    assert [round(o, 3) for o, _ in same.schedule()] == [0.0, 0.333, 0.667, 1.0]
    with pytest.raises(ValueError, match="speed"):
        t.schedule(speed=0)


def test_the_probe_follows_a_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from handofflab import workload

    started: list[tuple[str, float, float]] = []  # (target, when called, scheduled for)

    def fake_one(target: str, sched: float, timeout: float) -> workload.ProbeResult:
        started.append((target, time.perf_counter(), sched))
        return workload.ProbeResult(target)

    monkeypatch.setattr(workload, "_one", fake_one)
    workload.probe(["h/a", "h/b", "h/c"], rate=0, offsets=[0.0, 0.3, 0.6])
    assert [t for t, _, _ in started] == ["h/a", "h/b", "h/c"]
    scheduled = [s - started[0][2] for _, _, s in started]
    assert scheduled == pytest.approx([0.0, 0.3, 0.6])
    assert all(0 <= called - s < 0.1 for _, called, s in started), started  # on time, open loop
    with pytest.raises(ValueError, match="2 offsets for 3 targets"):
        workload.probe(["a", "b", "c"], rate=0, offsets=[0.0, 1.0])


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
    with pytest.raises(SystemExit, match="need --trace"):
        main(["run", "latency", "--trace-timing", "log"])
    good = tmp_path / "good.log"
    good.write_text(LOG)
    with pytest.raises(SystemExit, match="--trace-speed must be > 0"):
        main(["run", "latency", "--trace", str(good), "--trace-timing", "log", "--trace-speed", "0"])
