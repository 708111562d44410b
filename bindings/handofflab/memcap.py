"""Per-back-end memory caps (Cluster(backend_memory_mb=N)): each back-end's
nginx runs in its own memory cgroup, so the page cache that holds its documents
is bounded as on a separate machine and evicted when its working set is larger.
On one machine the back-ends would otherwise share one page cache, where a
document read by any back-end is cached for all: a dispatch policy's locality
(LARD, hash-path) would then change nothing.

What a cap needs from the cluster: the back-ends' documents are copies, not hard
links (a page cached for one inode is shared by every link to it), dropped from
the page cache after copying (documents.populate_docroots(copy=True)); and the
nginx master and workers moved into the group once started (their reads are
charged to it from then on).

cgroup v1's memory controller (``/sys/fs/cgroup/memory``) or cgroup v2
(``memory.max``). The figure that shows locality, disk_read_bytes(), comes from
/proc/<pid>/io (the bytes the processes made the kernel read from storage),
the same on both.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, Optional

log = logging.getLogger(__name__)

__all__ = ["MemoryCap", "cgroup_root", "disk_read_bytes"]

V1 = Path("/sys/fs/cgroup/memory")
V2 = Path("/sys/fs/cgroup")
PREFIX = "handofflab-"


def cgroup_root() -> tuple[Optional[Path], str]:
    """(the folder memory groups are made in, "v1" | "v2"), or (None, why not)."""
    if (V1 / "memory.limit_in_bytes").exists():
        return V1, "v1"
    controllers = V2 / "cgroup.controllers"
    if controllers.exists() and "memory" in controllers.read_text().split():
        return V2, "v2"
    return None, "no memory cgroup controller (cgroup v1 memory or v2 with memory)"


class MemoryCap:
    """One memory cgroup, ``handofflab-<tag>-<name>``, capped at ``limit_bytes``."""

    def __init__(self, tag: str, name: str, limit_bytes: int) -> None:
        root, version = cgroup_root()
        if root is None:
            raise RuntimeError(f"backend_memory_mb: {version}")
        self.version = version
        self.path = root / f"{PREFIX}{tag}-{name}"
        self.path.mkdir(exist_ok=True)
        limit = "memory.limit_in_bytes" if version == "v1" else "memory.max"
        (self.path / limit).write_text(str(limit_bytes))
        self.limit_bytes = limit_bytes

    def add(self, pids: Iterable[int]) -> None:
        """Moves the processes in (what they read is charged here from now on)."""
        for pid in pids:
            try:
                (self.path / "cgroup.procs").write_text(str(pid))
            except ProcessLookupError:
                continue

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            return []

    def usage_bytes(self) -> int:
        name = "memory.usage_in_bytes" if self.version == "v1" else "memory.current"
        try:
            return int((self.path / name).read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def remove(self) -> None:
        """Moves what still runs in it back to the root group and removes it."""
        if not self.path.exists():
            return
        for pid in self.pids():
            try:
                (self.path.parent / "cgroup.procs").write_text(str(pid))
            except OSError:
                pass
        try:
            self.path.rmdir()
        except OSError as exc:
            log.warning("memory cgroup %s not removed: %s", self.path, exc)


def remove_leftovers() -> int:
    """Removes every handofflab memory group a crashed run left (empty ones);
    returns how many."""
    root, _ = cgroup_root()
    if root is None:
        return 0
    n = 0
    for path in root.glob(PREFIX + "*"):
        try:
            path.rmdir()
            n += 1
        except OSError:
            pass
    return n


def disk_read_bytes(pids: Iterable[int]) -> int:
    """Bytes the processes caused to be read from storage (/proc/<pid>/io's
    read_bytes: page cache misses, not hits); gone processes count 0."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/io").read_text().splitlines():
                if line.startswith("read_bytes:"):
                    total += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def drop_cached(path: Path) -> None:
    """Writes path's dirty pages and drops them from the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
