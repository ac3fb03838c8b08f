"""Printing and checking shared by the example scripts (not part of jscale).

Every example prints tables of published numbers beside jscale's, with the relative
difference and the tolerance each comparison is held to, and exits with status 1 when
a reproduced number falls outside its tolerance (so CI catches regressions).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import textwrap
import time

#: The repository root (examples/ sits directly under it).
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_WIDTH = 88


def parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser with the flags every example takes."""
    first = doc.strip().splitlines()[0]
    p = argparse.ArgumentParser(description=first)
    p.add_argument(
        "--smoke",
        action="store_true",
        help="fast path for CI: fewer draws and resamples; still checks and prints",
    )
    p.add_argument(
        "--plot",
        metavar="DIR",
        help="write this example's figures (PNG) into DIR",
    )
    return p


def _fmt(value, fmt: str) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, fmt)


class Report:
    """Tables of published-versus-jscale numbers and their checks."""

    def __init__(self, name: str):
        self.name = name
        self.passed = 0
        self.failed: list[str] = []
        self._rows: list[tuple[str, ...]] = []
        self._notes: list[str] = []
        self._start = time.perf_counter()

    # -------------------------------------------------------------- sections

    def section(self, title: str, source: str = "") -> None:
        """Start a table (printing the previous one)."""
        self.flush()
        print()
        print(title)
        print("=" * min(len(title), _WIDTH))
        if source:
            print(textwrap.fill(source, _WIDTH))

    def note(self, text: str) -> None:
        """A paragraph printed under the current table."""
        self._notes.append(text)

    # ---------------------------------------------------------------- rows

    def check(
        self,
        quantity: str,
        paper: float,
        ours: float,
        *,
        rtol: float | None = None,
        atol: float | None = None,
        fmt: str = ".4g",
    ) -> bool:
        """Compare a published number with jscale's; ``rtol`` or ``atol`` bound it."""
        if rtol is None and atol is None:
            raise ValueError("give rtol or atol")
        ours = float(ours)
        diff = abs(ours - paper)
        rel = diff / abs(paper) if paper else math.inf
        ok = math.isfinite(ours) and (
            (rtol is not None and rel <= rtol) or (atol is not None and diff <= atol)
        )
        tol = f"{rtol:.2g} rel" if rtol is not None else f"{atol:.2g} abs"
        diff_text = f"{ours / paper - 1:+.2%}" if paper else "-"
        return self._record(
            quantity, _fmt(paper, fmt), _fmt(ours, fmt), diff_text, tol, ok
        )

    def claim(
        self, quantity: str, paper: str, ours: str, ok: bool, criterion: str
    ) -> bool:
        """A published statement checked by a stated criterion (no single number)."""
        return self._record(quantity, paper, ours, "", criterion, bool(ok))

    def info(
        self, quantity: str, paper, ours, *, fmt: str = ".4g", why: str = "info"
    ) -> None:
        """A row shown for context and not checked (``why`` says why)."""
        diff = ""
        if isinstance(paper, (int, float)) and isinstance(ours, (int, float)):
            if paper and math.isfinite(float(ours)):
                diff = f"{float(ours) / paper - 1:+.2%}"
        self._rows.append((quantity, _fmt(paper, fmt), _fmt(ours, fmt), diff, why, "-"))

    def _record(self, quantity, paper, ours, diff, tol, ok) -> bool:
        self._rows.append((quantity, paper, ours, diff, tol, "ok" if ok else "FAIL"))
        if ok:
            self.passed += 1
        else:
            self.failed.append(quantity)
        return ok

    # --------------------------------------------------------------- output

    def flush(self) -> None:
        """Print the pending table and its notes."""
        if self._rows:
            head = ("quantity", "paper", "jscale", "diff", "tolerance", "result")
            rows = [head, *self._rows]
            widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
            for k, row in enumerate(rows):
                cells = [
                    row[0].ljust(widths[0]),
                    *(c.rjust(w) for c, w in zip(row[1:4], widths[1:4], strict=True)),
                    row[4].ljust(widths[4]),
                    row[5],
                ]
                print("  ".join(cells).rstrip())
                if k == 0:
                    print("  ".join("-" * w for w in widths))
        for text in self._notes:
            print(
                textwrap.fill(text, _WIDTH, initial_indent="  ", subsequent_indent="  ")
            )
        self._rows, self._notes = [], []

    def finish(self) -> int:
        """Print the last table and the summary line; the exit status."""
        self.flush()
        elapsed = time.perf_counter() - self._start
        print()
        print(
            f"{self.name}: {self.passed} checks passed, {len(self.failed)} failed "
            f"({elapsed:.1f} s)"
        )
        if self.failed:
            print("failed: " + "; ".join(self.failed))
        return 1 if self.failed else 0


def save(fig, plot_dir: str, filename: str, dpi: int = 100) -> str:
    """Write a figure with :func:`jscale.plots.save` and say where it went."""
    from jscale import plots

    path = plots.save(fig, os.path.join(plot_dir, filename), dpi=dpi)
    print(f"wrote {path} ({os.path.getsize(path) / 1024:.0f} KB)")
    return path


def exit_with(code: int) -> None:
    sys.stdout.flush()
    sys.exit(code)
