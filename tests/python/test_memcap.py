"""handofflab.memcap (per-back-end memory caps) and the locality experiment's
disk-read figures."""
from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

from handofflab import documents, memcap

ROOT = Path(__file__).resolve().parents[2]


def _locality_module():
    spec = importlib.util.spec_from_file_location("locality_exp", ROOT / "experiments/locality/experiment.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_disk_read_figures() -> None:
    mod = _locality_module()
    before = {"be1": 0, "be2": 2 << 20, "be3": 5 << 20}
    after = {"be1": 3 << 20, "be2": 2 << 20, "be3": 1 << 20}  # be3 restarted: counts 0
    assert mod.disk_read_figures(before, after) == {
        "disk_read_mb_be1": 3.0, "disk_read_mb_be2": 0.0, "disk_read_mb_be3": 0.0, "disk_read_mb": 3.0}


def test_disk_read_bytes_reads_proc_io() -> None:
    assert memcap.disk_read_bytes([os.getpid()]) >= 0
    assert memcap.disk_read_bytes([2**22 + 12345]) == 0  # no such process: 0, no error


def test_copies_are_separate_files(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    doc = documents.Document(path="/docs/a.bin", size=4, sha256="x", owners=("be1", "be2"))
    (source / "a.bin").write_bytes(b"abcd")
    roots = documents.populate_docroots([doc], source, tmp_path / "www", ["be1", "be2"], copy=True)
    a, b = (roots[n] / "docs/a.bin" for n in ("be1", "be2"))
    assert a.read_bytes() == b.read_bytes() == b"abcd"
    assert a.stat().st_ino != b.stat().st_ino != (source / "a.bin").stat().st_ino
    linked = documents.populate_docroots([doc], source, tmp_path / "www2", ["be1", "be2"])
    assert (linked["be1"] / "docs/a.bin").stat().st_ino == (source / "a.bin").stat().st_ino


@pytest.mark.skipif(os.geteuid() != 0 or memcap.cgroup_root()[0] is None, reason="needs root and a memory cgroup")
def test_a_cap_holds_its_processes_and_is_removed() -> None:
    cap = memcap.MemoryCap("pytest", f"cap{os.getpid()}", 64 << 20)
    proc = subprocess.Popen(["sleep", "30"])
    try:
        cap.add([proc.pid])
        assert cap.pids() == [proc.pid]
        limit = "memory.limit_in_bytes" if cap.version == "v1" else "memory.max"
        assert int((cap.path / limit).read_text()) == 64 << 20
        cap.remove()  # moves the still-running process out first
        assert not cap.path.exists()
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
        cap.remove()
