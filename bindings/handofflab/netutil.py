"""Per-host helpers: run commands, sysctls, offloads, random loss, curl fetches, wrk.

Everything here acts inside a Mininet host's namespace (host.pexec / host.popen);
nothing touches the root namespace's iptables or sysctls.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

log = logging.getLogger(__name__)

LOSS_CHAIN = "HANDOFFLAB-LOSS"


class HostCommandError(RuntimeError):
    """A command run inside a host failed."""


def run(host: Any, args: Sequence[str], check: bool = True) -> str:
    """Run args (a list, no shell) inside host; return stdout. Raise on failure if check."""
    out, err, rc = host.pexec(list(args))
    if check and rc != 0:
        raise HostCommandError(f"{host.name}: {' '.join(args)} -> exit {rc}: {err.strip() or out.strip()}")
    return out


def interfaces(host: Any) -> list[str]:
    """The host's own interfaces (lo excluded)."""
    return [name for name in host.intfNames() if name != "lo"]


def sysctl(host: Any, key: str, value: str) -> None:
    """Set a (per-namespace) sysctl inside host."""
    run(host, ["sysctl", "-q", "-w", f"{key}={value}"])


def tune_client(host: Any) -> None:
    """One request per connection piles up TIME_WAIT: widen ports, reuse TIME_WAIT."""
    sysctl(host, "net.ipv4.ip_local_port_range", "1024 65535")
    sysctl(host, "net.ipv4.tcp_tw_reuse", "1")


def set_offload(host: Any, enabled: bool) -> None:
    """Turn tx checksum offload, TSO and GSO on or off on every host interface."""
    state = "on" if enabled else "off"
    for intf in interfaces(host):
        run(host, ["ethtool", "-K", intf, "tx", state, "tso", state, "gso", state])


def offload_state(host: Any, intf: str) -> dict[str, bool]:
    """{'tx-checksumming': bool, 'tcp-segmentation-offload': ..., ...} from ethtool -k."""
    result = {}
    for line in run(host, ["ethtool", "-k", intf]).splitlines():
        m = re.match(r"^([a-z0-9-]+):\s+(on|off)", line)
        if m:
            result[m.group(1)] = m.group(2) == "on"
    return result


def install_loss(host: Any, probability: float) -> None:
    """Drop each packet arriving on any of the host's interfaces (lo excluded) with
    the given probability: raw PREROUTING -> chain HANDOFFLAB-LOSS (statistic DROP).
    Applied on every host, that is loss per link and direction (at the receiver)."""
    if not 0.0 < probability < 1.0:
        raise ValueError("loss probability must be within (0, 1)")
    ipt = ["iptables", "-w", "-t", "raw"]
    run(host, ipt + ["-N", LOSS_CHAIN])
    run(host, ipt + ["-A", LOSS_CHAIN, "-m", "statistic", "--mode", "random",
                     "--probability", f"{probability:.6f}", "-j", "DROP"])
    for intf in interfaces(host):
        run(host, ipt + ["-I", "PREROUTING", "-i", intf, "-j", LOSS_CHAIN])


def loss_drops(host: Any) -> int:
    """Packets dropped so far by the host's HANDOFFLAB-LOSS chain (0 if absent)."""
    out = run(host, ["iptables", "-w", "-t", "raw", "-L", LOSS_CHAIN, "-v", "-x", "-n"], check=False)
    total = 0
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[0].isdigit() and fields[2] == "DROP":
            total += int(fields[0])
    return total


# --- engine rules --------------------------------------------------------------
HANDOFF_CHAIN_PREFIX = "HANDOFF-"  # every iptables chain an engine owns
FAST_PATH_TABLE_PREFIX = "handoff_"  # every nf_tables table an engine owns (fast path)
_REPO_ROOT = Path(__file__).resolve().parents[2]


def find_handoffd() -> Path:
    """The handoffd binary: $HANDOFFD, else build/handoffd, else build-py/handoffd."""
    env = os.environ.get("HANDOFFD")
    candidates = [Path(env)] if env else []
    candidates += [_REPO_ROOT / "build" / "handoffd", _REPO_ROOT / "build-py" / "handoffd"]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError("handoffd not found (build it, or set HANDOFFD); looked at "
                            + ", ".join(map(str, candidates)))


def handoff_rules(host: Any) -> list[str]:
    """What the engines installed in host: lines of its iptables-save (all tables)
    naming a HANDOFF- chain, its nf_tables tables named handoff_ (the fast path),
    and the BPF programs on its interfaces' tc ingress (the kernel data path;
    bpf_filters)."""
    out = run(host, ["iptables-save"])
    lines = [line for line in out.splitlines() if HANDOFF_CHAIN_PREFIX in line]
    tables = run(host, ["nft", "list", "tables"], check=False)
    lines += [line for line in tables.splitlines() if f" {FAST_PATH_TABLE_PREFIX}" in line]
    return lines + bpf_filters(host)


def bpf_filters(host: Any) -> list[str]:
    """The BPF tc filters on the ingress of host's interfaces, lo included (the
    kernel data path attaches its programs there), as "dev: filter line"; no
    engine of the cluster's hosts puts any other BPF filter there."""
    found = []
    for dev in ["lo"] + interfaces(host):
        out = run(host, ["tc", "filter", "show", "dev", dev, "ingress"], check=False)
        found += [f"{dev}: {line.strip()}" for line in out.splitlines() if " bpf " in f" {line} "
                  and re.search(r"\bid \d+", line)]
    return found


def bpf_prog_ids(host: Any) -> set[int]:
    """The ids of the BPF programs attached to host's tc ingress (bpf_filters)."""
    return {int(m.group(1)) for line in bpf_filters(host)
            if (m := re.search(r"\bid (\d+)", line))}


def cleanup_handoff_rules(host: Any) -> str:
    """Run ``handoffd --cleanup`` inside host (removes every HANDOFF- chain and
    jump, every handoff_ nf_tables table, and what the kernel data path left:
    its tc filters and its pins under /sys/fs/bpf/handoff_*)."""
    return run(host, [str(find_handoffd()), "--cleanup"])


def fast_path_packets(host: Any) -> int:
    """Packets the front-end's fast path rewrote in host so far (the counter of
    the rule in its handoff_ table; 0 if there is none)."""
    out = run(host, ["nft", "list", "ruleset"], check=False)
    return sum(int(m) for m in re.findall(r"ip daddr set .* counter packets (\d+)", out))


# --- counters and TCP features ------------------------------------------------
def tx_bytes(host: Any) -> dict[str, int]:
    """{interface: bytes transmitted so far} for the host's interfaces (lo excluded)."""
    result = {}
    for intf in interfaces(host):
        result[intf] = int(run(host, ["cat", f"/sys/class/net/{intf}/statistics/tx_bytes"]))
    return result


def set_tcp_features(host: Any, timestamps: bool, sack: bool, window_scaling: bool) -> None:
    """What the host's TCP offers in its SYNs (sysctls inside host only)."""
    sysctl(host, "net.ipv4.tcp_timestamps", "1" if timestamps else "0")
    sysctl(host, "net.ipv4.tcp_sack", "1" if sack else "0")
    sysctl(host, "net.ipv4.tcp_window_scaling", "1" if window_scaling else "0")


@dataclass(frozen=True)
class FetchResult:
    """One curl fetch: sha256 (hex) and size of the body, X-Backend header (or
    None), HTTP status, and curl's time_total in seconds."""

    sha256: str
    size: int
    backend: Optional[str]
    status: int
    time_total: float
    headers: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def throughput_mbit(self) -> float:
        return self.size * 8 / 1e6 / self.time_total if self.time_total > 0 else 0.0


def curl_fetch(host: Any, url: str, workdir: Path, timeout: float = 60.0,
               keep_body: bool = False, extra_args: Sequence[str] = ()) -> FetchResult:
    """Fetch url with curl from inside host; body and headers go to files in workdir.
    extra_args go to curl before the URL (e.g. ``--local-port 20000``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    stem = f"{host.name}-{uuid.uuid4().hex[:12]}"
    body, hdrs = workdir / f"{stem}.body", workdir / f"{stem}.hdrs"
    try:
        out = run(host, ["curl", "-sS", "-m", str(timeout), "-o", str(body), "-D", str(hdrs),
                         "-w", "%{http_code} %{time_total}", *extra_args, url])
        status_s, time_s = out.split()
        headers = parse_headers(hdrs.read_text(errors="replace"))
        digest, size = hashlib.sha256(), 0
        with body.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
                size += len(chunk)
        return FetchResult(digest.hexdigest(), size, headers.get("x-backend"),
                           int(status_s), float(time_s), headers)
    finally:
        hdrs.unlink(missing_ok=True)
        if not keep_body:
            body.unlink(missing_ok=True)


def parse_headers(text: str) -> dict[str, str]:
    """Header block (curl -D) -> {lower-case name: value}, last response only."""
    result: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("HTTP/"):
            result = {}
        elif ":" in line:
            name, value = line.split(":", 1)
            result[name.strip().lower()] = value.strip()
    return result


@dataclass(frozen=True)
class WrkResult:
    """wrk's summary: requests/s, transfer bytes/s, mean latency (s), request count,
    socket errors (connect, read, write, timeout) and non-2xx/3xx responses."""

    requests_per_sec: float
    transfer_per_sec: float
    latency_mean: float
    requests: int
    errors: dict[str, int]
    non_2xx: int
    raw: str = field(repr=False, compare=False, default="")


_UNIT = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}
_TIME = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def run_wrk(host: Any, url: str, duration_s: float = 5.0, connections: int = 32,
            threads: int = 2, headers: Sequence[str] = ()) -> WrkResult:
    """Run Debian's wrk inside host and parse its summary."""
    args = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration_s:g}s"]
    for h in headers:
        args += ["-H", h]
    out = run(host, args + [url])
    return parse_wrk(out)


def parse_wrk(out: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    tps = re.search(r"Transfer/sec:\s+([\d.]+)([KMG]?B)", out)
    lat = re.search(r"Latency\s+([\d.]+)(us|ms|s|m)\b", out)
    total = re.search(r"(\d+) requests in", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not (rps and total):
        raise ValueError(f"cannot parse wrk output: {out!r}")
    return WrkResult(
        requests_per_sec=float(rps.group(1)),
        transfer_per_sec=float(tps.group(1)) * _UNIT[tps.group(2)] if tps else 0.0,
        latency_mean=float(lat.group(1)) * _TIME[lat.group(2)] if lat else 0.0,
        requests=int(total.group(1)),
        errors=dict(zip(("connect", "read", "write", "timeout"),
                        map(int, errs.groups()))) if errs else
        {"connect": 0, "read": 0, "write": 0, "timeout": 0},
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        raw=out)
