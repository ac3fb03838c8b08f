"""The progress line of :func:`~jscale.sweep.run_chunks`: chunk k/n, items/s, ETA."""

from __future__ import annotations

import math
import sys
import time


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}"


class _Progress:
    """A one-line progress bar: chunk k/n, items/s, ETA.

    On a terminal the line is redrawn in place (at most 10 times a second); on any
    other stream a line is printed at most every ``interval`` seconds.
    """

    def __init__(self, stream, total, done, items, description, interval):
        self.stream = stream
        self.total = total
        self.start_done = done
        self.items = items
        self.label = f"{description}: " if description else ""
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.interval = 0.1 if self.tty else interval
        self.t0 = time.perf_counter()
        self.t_first = None  # end of the first chunk of this session (compile)
        self.done_first = done
        self.last = -math.inf if self.tty or interval == 0 else self.t0
        self.printed = False
        self.width = 0

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if self.t_first is None:
            self.t_first, self.done_first = now, done
        final = done == self.total
        if not final and now - self.last < self.interval:
            return
        if final and not self.printed and not self.tty and self.interval > 0:
            return  # a short run on a non-terminal stream stays silent
        self.last = now
        if done > self.done_first:  # steady-state rate, excluding compilation
            rate = (done - self.done_first) / (now - self.t_first)
        else:
            rate = (done - self.start_done) / max(now - self.t0, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else math.inf
        width = 24
        filled = int(width * done / self.total) if self.total else width
        bar = "#" * filled + "." * (width - filled)
        speed = (
            f"{rate * self.items:.3g} items/s"
            if self.items is not None
            else f"{rate:.3g} chunks/s"
        )
        line = (
            f"{self.label}[{bar}] chunk {done}/{self.total} "
            f"{100 * done / max(self.total, 1):3.0f}%  {speed}  "
            + (
                f"elapsed {_duration(now - self.t0)}"
                if final
                else f"ETA {_duration(eta)}"
            )
        )
        if self.tty:  # redraw in place, blanking what a longer line left
            pad = " " * max(0, self.width - len(line))
            self.width = len(line)
            self.stream.write("\r" + line + pad + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.printed = True


def _make_progress(progress, total, done, items, description):
    if progress is False or progress is None or total == 0:
        return None
    if progress is True:
        return _Progress(sys.stderr, total, done, items, description, 30.0)
    if hasattr(progress, "write"):
        return _Progress(progress, total, done, items, description, 0.0)
    raise ValueError(
        f"progress must be True, False or a text stream; got {type(progress).__name__}"
    )
