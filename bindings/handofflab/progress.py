"""A progress bar with ETA on stderr: redrawn in place on a TTY, one plain line
per step otherwise (logs, CI)."""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


def _hms(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Progress(total, label); step(text) after each unit of work; close() at the end.
    ETA = mean time per finished step x steps left."""

    def __init__(self, total: int, label: str = "", stream: Optional[TextIO] = None,
                 width: int = 24, tty: Optional[bool] = None) -> None:
        self.total = max(1, total)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.tty = self.stream.isatty() if tty is None else tty
        self.done = 0
        self.start = time.monotonic()
        self.current = ""

    def eta(self) -> Optional[float]:
        if self.done == 0:
            return None
        per = (time.monotonic() - self.start) / self.done
        return per * (self.total - self.done)

    def line(self) -> str:
        frac = min(1.0, self.done / self.total)
        fill = int(frac * self.width)
        eta = self.eta()
        return (f"{self.label} [{'#' * fill}{'.' * (self.width - fill)}] "
                f"{self.done}/{self.total} elapsed {_hms(time.monotonic() - self.start)} "
                f"ETA {_hms(eta) if eta is not None else '?'} {self.current}")

    def begin(self, text: str) -> None:
        """Announce the step now starting (shown next to the bar)."""
        self.current = text
        if self.tty:
            self._draw()

    def step(self, text: str = "") -> None:
        self.done += 1
        if text:
            self.current = text
        if self.tty:
            self._draw()
        else:
            self.stream.write(self.line().rstrip() + "\n")
            self.stream.flush()

    def _draw(self) -> None:
        self.stream.write("\r\x1b[K" + self.line()[:200])
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
