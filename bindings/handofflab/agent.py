"""The node agent: runs one handoff engine inside a Mininet host.

    /usr/bin/python3 -m handofflab.agent --config FILE.json

FILE.json is the engine's config dict (see ``handofflab._core.Engine``) plus
two keys the agent handles itself:

- ``stats_file``: path of a JSON file holding the engine's counters, written
  atomically (tmp + rename) right after the engine started (so its appearance
  means "engine ready"), then every ``stats_interval_ms`` and once more after
  the engine stopped. Its format: {"node": str, "role": str, "pid": int,
  "running": bool, "counters": {name: int}}.
- ``stats_interval_ms``: period of those writes (default 200).

SIGTERM / SIGINT: stop the engine (it removes its rules and restores its
sysctls), write the final counters, exit 0. If the engine cannot start, print
the reason on stderr and exit 2; if it stops running on its own, exit 3.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

EXIT_START_FAILED = 2
EXIT_ENGINE_DIED = 3
DEFAULT_STATS_INTERVAL_MS = 200
AGENT_KEYS = ("stats_file", "stats_interval_ms")


def write_stats(path: Path, node: str, role: str, running: bool, counters: dict[str, int],
                read_at: Optional[float] = None) -> None:
    """Write the stats document to path atomically (readers never see half a file).
    Its ``time`` is ``read_at``, when the engine began reading the counters
    (Engine.counters_at; default: now): a reader that waits for a document with
    time > t sees every count made before t (the engine's snapshot is up to a
    tick, 100 ms, old when the agent reads it: stamped with the agent's clock, a
    count made in between showed up one write late)."""
    doc = {"node": node, "role": role, "pid": os.getpid(), "running": running,
           "time": time.time() if read_at is None else read_at,
           "counters": {k: int(v) for k, v in counters.items()}}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_stats(path: Path) -> Optional[dict[str, Any]]:
    """The stats document at path, or None if it does not exist (yet)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def engine_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config without the keys the agent handles itself."""
    return {k: v for k, v in config.items() if k not in AGENT_KEYS}


def run(config: dict[str, Any]) -> int:
    """Start the engine, publish its counters until told to stop; return the exit code."""
    node = str(config.get("node", "node"))
    role = str(config.get("role", "?"))
    stats_path = Path(config["stats_file"]) if config.get("stats_file") else None
    interval = max(int(config.get("stats_interval_ms", DEFAULT_STATS_INTERVAL_MS)), 10) / 1000.0

    stop_requested = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop_requested.set()

    # Install the handlers before start(): a SIGTERM arriving while the engine
    # installs its rules must still lead to stop().
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        from handofflab import _core
        engine = _core.Engine(engine_config(config))
        engine.start()
    except Exception as exc:  # noqa: BLE001 - any failure to start is reported the same way
        print(f"handofflab.agent: {node}: engine ({role}) failed to start: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return EXIT_START_FAILED

    print(f"handofflab.agent: {node}: engine ({role}) running, pid {os.getpid()}", flush=True)
    code = 0
    try:
        while not stop_requested.is_set():
            if stats_path is not None:
                read_at, counters = engine.counters_at()
                write_stats(stats_path, node, role, True, counters, read_at)
            if not engine.running:
                print(f"handofflab.agent: {node}: engine stopped on its own", file=sys.stderr,
                      flush=True)
                code = EXIT_ENGINE_DIED
                break
            stop_requested.wait(interval)
    finally:
        try:
            engine.stop()
        except Exception as exc:  # noqa: BLE001
            print(f"handofflab.agent: {node}: engine stop failed: {type(exc).__name__}: {exc}",
                  file=sys.stderr, flush=True)
            code = code or 1
        if stats_path is not None:
            try:
                read_at, counters = engine.counters_at()
                write_stats(stats_path, node, role, False, counters, read_at)
            except Exception as exc:  # noqa: BLE001
                print(f"handofflab.agent: {node}: final stats not written: {exc}",
                      file=sys.stderr, flush=True)
    print(f"handofflab.agent: {node}: stopped (exit {code})", flush=True)
    return code


# --- the manager, used by Cluster in the root namespace ----------------------
BINDINGS_DIR = Path(os.path.abspath(__file__)).parents[1]  # the package actually imported
PYTHON = "/usr/bin/python3"


class AgentError(RuntimeError):
    """An agent did not come up (its log tail is in the message)."""


class NodeAgent:
    """One agent process inside a Mininet host: config file, log, stats file in
    ``workdir``; started as a tracked Popen; stopped by PID (SIGTERM, then
    SIGKILL); afterwards no HANDOFF- iptables chain may remain in the host."""

    def __init__(self, host: Any, name: str, config: dict[str, Any], workdir: Path) -> None:
        self.host = host
        self.name = name
        self.workdir = workdir
        self.config_path = workdir / f"agent-{name}.json"
        self.stats_path = workdir / f"stats-{name}.json"
        self.log_path = workdir / f"agent-{name}.log"
        self.config = dict(config, node=config.get("node", name),
                           stats_file=str(self.stats_path))
        self.config.setdefault("stats_interval_ms", DEFAULT_STATS_INTERVAL_MS)
        self.proc: Any = None
        self.rules_left_at_stop: list[str] = []

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc is not None else None

    def start(self, timeout: float = 15.0) -> None:
        """Start the agent; return once the engine is running (stats file written)."""
        import subprocess

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.stats_path.unlink(missing_ok=True)
        self.config_path.write_text(json.dumps(self.config, indent=2, sort_keys=True) + "\n")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(BINDINGS_DIR)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        env["PYTHONUNBUFFERED"] = "1"
        with self.log_path.open("ab") as log_file:  # a restart appends
            self.proc = self.host.popen(
                [PYTHON, "-m", "handofflab.agent", "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while read_stats(self.stats_path) is None:
            if self.proc.poll() is not None:
                raise AgentError(f"agent {self.name} exited with {self.proc.returncode} "
                                 f"before its engine ran: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise AgentError(f"agent {self.name}: engine not ready within {timeout} s: "
                                 f"{self.log_tail()}")
            time.sleep(0.02)

    def stats(self) -> dict[str, int]:
        """The counters last written by the agent ({} before the first write)."""
        doc = read_stats(self.stats_path)
        return dict(doc["counters"]) if doc else {}

    def stats_doc(self) -> Optional[dict[str, Any]]:
        return read_stats(self.stats_path)

    def log_tail(self, lines: int = 8) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return "(no log)"
        return " | ".join(tail) if tail else "(empty log)"

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send sig to the agent (tests: simulate a crash with SIGKILL) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """SIGTERM, wait, SIGKILL if needed; then make sure no HANDOFF- rules remain
        in the host (``handoffd --cleanup`` there if some do). Returns the exit code."""
        import logging
        import subprocess

        log = logging.getLogger(__name__)
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("agent %s (pid %d) ignored SIGTERM for %.0f s; killing",
                            self.name, self.proc.pid, timeout)
                self.proc.kill()
                self.proc.wait(timeout)
        code = self.proc.returncode
        if code != 0:
            log.warning("agent %s exited with %s: %s", self.name, code, self.log_tail())
        from . import netutil

        left = netutil.handoff_rules(self.host)
        self.rules_left_at_stop = left
        if left:
            log.warning("agent %s left %d HANDOFF- iptables lines in %s; running handoffd "
                        "--cleanup there", self.name, len(left), self.host.name)
            netutil.cleanup_handoff_rules(self.host)
        return code


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m handofflab.agent",
                                     description="Run one handoff engine in this network namespace.")
    parser.add_argument("--config", required=True, type=Path,
                        help="JSON file: the engine config (plus stats_file, stats_interval_ms)")
    args = parser.parse_args(argv)
    try:
        config = json.loads(args.config.read_text())
    except (OSError, ValueError) as exc:
        print(f"handofflab.agent: cannot read config {args.config}: {exc}", file=sys.stderr)
        return EXIT_START_FAILED
    if not isinstance(config, dict):
        print(f"handofflab.agent: config {args.config} is not a JSON object", file=sys.stderr)
        return EXIT_START_FAILED
    return run(config)


if __name__ == "__main__":
    sys.exit(main())
