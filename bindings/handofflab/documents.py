"""The generated document set: deterministic content, on-disk cache, partition over back-ends.

Content depends only on (seed, sizes); it is written once under
``/tmp/handofflab/docs/<key>/`` and reused. Ownership depends on (seed,
back-end names, replicate). A back-end's document root holds only what it owns.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

log = logging.getLogger(__name__)

CACHE_ROOT = Path(os.environ.get("HANDOFFLAB_CACHE", "/tmp/handofflab")) / "docs"
URL_PREFIX = "/docs/"
_FORMAT_VERSION = 1
_UNITS = {"K": 1024, "M": 1024 * 1024}

# (size label, how many documents of that size): 1 KB .. 10 MB, 16 documents.
DEFAULT_SIZES: tuple[tuple[str, int], ...] = (
    ("1K", 4), ("2K", 2), ("4K", 2), ("10K", 2), ("32K", 1), ("100K", 1),
    ("300K", 1), ("1M", 1), ("3M", 1), ("10M", 1),
)


@dataclass(frozen=True)
class Document:
    """One document: URL path (e.g. /docs/1K-0.bin), size in bytes, sha256 (hex)
    of its content, and the names of the back-ends that own (serve) it."""

    path: str
    size: int
    sha256: str
    owners: tuple[str, ...] = ()

    @property
    def filename(self) -> str:
        """The file name under the document root's docs/ folder."""
        return self.path.rsplit("/", 1)[-1]


def parse_size(label: str) -> int:
    """'10K' -> 10240, '3M' -> 3145728, '512' -> 512."""
    label = label.strip().upper()
    if label and label[-1] in _UNITS:
        return int(label[:-1]) * _UNITS[label[-1]]
    return int(label)


def _cache_key(seed: int, sizes: Sequence[tuple[str, int]]) -> str:
    spec = json.dumps({"v": _FORMAT_VERSION, "seed": seed, "sizes": list(sizes)})
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


def generate(seed: int = 0, sizes: Sequence[tuple[str, int]] = DEFAULT_SIZES,
             cache_root: Path = CACHE_ROOT) -> tuple[Path, list[Document]]:
    """Return (folder holding the files, documents without owners), generating
    the files on first use. Safe against concurrent generators (atomic rename)."""
    sizes = tuple((str(label), int(count)) for label, count in sizes)
    folder = cache_root / _cache_key(seed, sizes)
    manifest = folder / "manifest.json"
    if manifest.exists():
        entries = json.loads(manifest.read_text())
        docs = [Document(e["path"], e["size"], e["sha256"]) for e in entries]
        if all((folder / d.filename).stat().st_size == d.size for d in docs):
            return folder, docs
        log.warning("document cache %s is damaged; regenerating", folder)
        shutil.rmtree(folder, ignore_errors=True)

    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".gen-", dir=cache_root))
    try:
        docs = []
        for label, count in sizes:
            size = parse_size(label)
            for i in range(count):
                name = f"{label}-{i}.bin"
                data = random.Random(f"{seed}:{name}").randbytes(size)
                (staging / name).write_bytes(data)
                docs.append(Document(URL_PREFIX + name, size,
                                     hashlib.sha256(data).hexdigest()))
        (staging / "manifest.json").write_text(json.dumps(
            [{"path": d.path, "size": d.size, "sha256": d.sha256} for d in docs], indent=1))
        try:
            staging.rename(folder)
        except OSError:  # another process won the race: use its copy
            shutil.rmtree(staging, ignore_errors=True)
            return generate(seed, sizes, cache_root)
        log.info("generated %d documents in %s", len(docs), folder)
        return folder, docs
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def partition(docs: Sequence[Document], backends: Sequence[str], seed: int = 0,
              replicate: float = 0.0) -> list[Document]:
    """Give each document owners, deterministically from the seed: one owner each,
    balanced (round-robin over a seeded shuffle); a share ``replicate`` (0..1) of
    the documents gets a second owner (when there are 2+ back-ends)."""
    if not backends:
        raise ValueError("need at least one back-end")
    if not 0.0 <= replicate <= 1.0:
        raise ValueError("replicate must be within 0..1")
    rng = random.Random(f"partition:{seed}")
    order = list(range(len(docs)))
    rng.shuffle(order)
    first = rng.randrange(len(backends))
    owners: dict[int, list[str]] = {}
    for rank, idx in enumerate(order):
        owners[idx] = [backends[(first + rank) % len(backends)]]
    if len(backends) > 1:
        n_repl = round(replicate * len(docs))
        for idx in rng.sample(range(len(docs)), n_repl):
            others = [b for b in backends if b not in owners[idx]]
            owners[idx].append(rng.choice(others))
    return [replace(d, owners=tuple(owners[i])) for i, d in enumerate(docs)]


def write_content_map(docs: Iterable[Document], path: Path) -> Path:
    """Write the partition map: '<path> <owner1>[,<owner2>...]' per line, '#' comments."""
    lines = ["# handofflab content map: <url path> <owner>[,<owner>...]"]
    lines += [f"{d.path} {','.join(d.owners)}" for d in docs]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_content_map(path: Path) -> dict[str, tuple[str, ...]]:
    """Parse a content map written by write_content_map."""
    result: dict[str, tuple[str, ...]] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            url, owners = line.split()
            result[url] = tuple(owners.split(","))
    return result


def populate_docroots(docs: Iterable[Document], source: Path, root: Path,
                      backends: Sequence[str]) -> dict[str, Path]:
    """Create root/<backend>/ with docs/<file> for each document it owns (hard
    links from the cache, copies across file systems). Returns backend -> docroot."""
    roots = {b: root / b for b in backends}
    for r in roots.values():
        (r / URL_PREFIX.strip("/")).mkdir(parents=True, exist_ok=True)
    for d in docs:
        for owner in d.owners:
            target = roots[owner] / d.path.lstrip("/")
            try:
                os.link(source / d.filename, target)
            except OSError:
                shutil.copyfile(source / d.filename, target)
    return roots
