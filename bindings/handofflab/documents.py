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
import struct
import tempfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

log = logging.getLogger(__name__)

CACHE_ROOT = Path(os.environ.get("HANDOFFLAB_CACHE", "/tmp/handofflab")) / "docs"
URL_PREFIX = "/docs/"
_FORMAT_VERSION = 1
_UNITS = {"K": 1024, "M": 1024 * 1024}

# Two labels of ``sizes`` make a web page instead of random bytes (the browser
# tests): WEB_IMAGE, PNG images png-<i>.png (image i is PNG_MIN_WIDTH + i pixels
# wide: naturalWidth names it), and WEB_PAGE, an HTML page page-<i>.html that
# shows every image of the set and, on load, writes each one's naturalWidth into
# its <pre id="hl-result"> (a headless browser's --dump-dom then proves them
# loaded). Partitioned like any other document, so the images live on every
# back-end. nginx serves them as application/octet-stream unless its types map
# html and png (a browser sniffs images, not pages).
WEB_IMAGE = "png"
WEB_PAGE = "page"
PNG_MIN_WIDTH = 16
PNG_HEIGHT = 160
WEB_RESULT_ID = "hl-result"

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
    """'10K' -> 10240, '3M' -> 3145728, '512' -> 512 (not WEB_IMAGE, WEB_PAGE)."""
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
        images = [URL_PREFIX + image_name(i)
                  for label, count in sizes if label == WEB_IMAGE for i in range(count)]
        for label, count in sizes:
            for i in range(count):
                name, data = _content(seed, label, i, images)
                (staging / name).write_bytes(data)
                docs.append(Document(URL_PREFIX + name, len(data),
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


def _content(seed: int, label: str, i: int, images: Sequence[str]) -> tuple[str, bytes]:
    """(file name, content) of document i of a size label."""
    if label == WEB_IMAGE:
        name = image_name(i)
        return name, png_image(PNG_MIN_WIDTH + i, PNG_HEIGHT, f"{seed}:{name}")
    if label == WEB_PAGE:
        return f"{WEB_PAGE}-{i}.html", web_page(images, title=f"handofflab page {i}")
    name = f"{label}-{i}.bin"
    return name, random.Random(f"{seed}:{name}").randbytes(parse_size(label))


# --- the web page (browser tests) ------------------------------------------------
def image_name(i: int) -> str:
    """The file name of WEB_IMAGE image i."""
    return f"{WEB_IMAGE}-{i}.png"


def image_width(path: str) -> int:
    """The width in pixels of a WEB_IMAGE document, from its path (/docs/png-3.png: 19)."""
    stem = path.rsplit("/", 1)[-1]
    if not (stem.startswith(WEB_IMAGE + "-") and stem.endswith(".png")):
        raise ValueError(f"{path!r} is not an image of the web page")
    return PNG_MIN_WIDTH + int(stem[len(WEB_IMAGE) + 1:-4])


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_image(width: int, height: int, seed_text: str) -> bytes:
    """A valid RGB PNG of width x height pixels of seeded noise (incompressible:
    a few KB that cross several segments)."""
    rng = random.Random(f"png:{seed_text}")
    raw = b"".join(b"\0" + rng.randbytes(3 * width) for _ in range(height))  # filter 0 rows
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(raw, 9)) + _png_chunk(b"IEND", b""))


def web_page(images: Sequence[str], title: str = "handofflab page") -> bytes:
    """An HTML page showing ``images`` (URL paths); on load its script writes
    "loaded N" and one "<path> <naturalWidth>" line per image into
    <pre id="WEB_RESULT_ID"> (0: not loaded)."""
    imgs = "\n".join(f'<img src="{p}" alt="{p}">' for p in images)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body>
{imgs}
<pre id="{WEB_RESULT_ID}">pending</pre>
<script>
window.addEventListener("load", function () {{
  var lines = [], imgs = document.querySelectorAll("img");
  for (var i = 0; i < imgs.length; i++)
    lines.push(imgs[i].getAttribute("src") + " " + imgs[i].naturalWidth);
  document.getElementById("{WEB_RESULT_ID}").textContent =
    "loaded " + imgs.length + "\\n" + lines.join("\\n");
}});
</script>
</body></html>
""".encode()


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


def all_replicated_share(locality: float, nodes: int, replicate: float = 0.0) -> float:
    """The share r of documents to replicate to every node so that a request
    (uniform over the documents) finds its content on the node that accepted the
    connection with probability ``locality``, when an L4 spreader picks that node
    uniformly among ``nodes`` and does not look at the request (always, rare).

    A document on every node is always local; the others are partitioned (one
    owner, or two for a share ``replicate`` of them: k = 1 + replicate owners on
    average), so they are local with probability k/N::

        L = r + (1 - r) * k / N   =>   r = (L - k/N) / (1 - k/N)

    With replicate = 0 that is r = (L - 1/N) / (1 - 1/N). ``locality`` below k/N
    cannot be reached by replication (ValueError); with one node, or k/N = 1,
    every request is local and only locality 1 is valid."""
    if not 0.0 <= locality <= 1.0:
        raise ValueError("locality must be within 0..1")
    if nodes < 1:
        raise ValueError("need at least one node")
    k = 1.0 + (replicate if nodes > 1 else 0.0)
    floor = min(k / nodes, 1.0)
    if locality < floor - 1e-9:
        raise ValueError(f"locality {locality:g} is below {floor:g}, the share of requests "
                         f"that are local anyway with {nodes} node(s) (k/N, k = {k:g} owners "
                         f"per document on average): replication can only raise it")
    if floor >= 1.0:
        if locality < 1.0 - 1e-9:
            raise ValueError("with every document on every node, locality is 1")
        return 0.0
    return max(0.0, min(1.0, (locality - floor) / (1.0 - floor)))


def replicate_to_all(docs: Sequence[Document], backends: Sequence[str], share: float,
                     seed: int = 0) -> list[Document]:
    """Give a share (0..1, rounded to whole documents) of the documents every
    back-end as owner, chosen deterministically from the seed; the others keep
    their owners. The first owner stays first (the content map lists it first)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError("share must be within 0..1")
    rng = random.Random(f"replicate-all:{seed}")
    chosen = set(rng.sample(range(len(docs)), round(share * len(docs))))
    out = []
    for i, d in enumerate(docs):
        if i in chosen:
            owners = tuple(d.owners) + tuple(b for b in backends if b not in d.owners)
            d = replace(d, owners=owners)
        out.append(d)
    return out


def expected_locality(docs: Sequence[Document], nodes: int) -> float:
    """The share of requests (uniform over docs) whose content is on the node an
    L4 spreader picked uniformly among ``nodes``: mean of len(owners)/N."""
    if not docs:
        return 0.0
    return sum(min(len(d.owners), nodes) for d in docs) / (nodes * len(docs))


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
                      backends: Sequence[str], copy: bool = False) -> dict[str, Path]:
    """Create root/<backend>/ with docs/<file> for each document it owns (hard
    links from the cache, copies across file systems). Returns backend -> docroot.

    copy=True: every back-end gets copies of its own, dropped from the page cache
    once written, so each caches what it reads apart from the others (the
    per-back-end memory caps of handofflab.memcap)."""
    from .memcap import drop_cached

    roots = {b: root / b for b in backends}
    for r in roots.values():
        (r / URL_PREFIX.strip("/")).mkdir(parents=True, exist_ok=True)
    for d in docs:
        for owner in d.owners:
            target = roots[owner] / d.path.lstrip("/")
            if copy:
                shutil.copyfile(source / d.filename, target)
                drop_cached(target)
                continue
            try:
                os.link(source / d.filename, target)
            except OSError:
                shutil.copyfile(source / d.filename, target)
    return roots
