"""Shared helpers for the benchmarks: timing, agreement checks, machine, tables.

A benchmark is a module ``benchmarks/bench_<name>.py`` that defines

    def run(smoke: bool) -> list[dict]

Each dict is one row of the benchmark's table. Keys are column names, in the order
they first appear; values are numbers, strings, booleans or None (an empty cell).
A row with ``"ok": False`` means jscale and the reference disagreed: the runner
prints the table and exits non-zero. ``smoke=True`` asks for tiny sizes and few
repeats: every code path and every agreement check still runs, timings mean
nothing. The module docstring's first line is the table's title.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata

import jax
import numpy as np


@dataclass
class Timing:
    """Wall-clock times of the repeated calls of one function, in seconds."""

    times: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)


def _timed_call(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = jax.block_until_ready(fn())
    return time.perf_counter() - start, result


def time_calls(
    fns: Mapping[str, Callable[[], object]],
    *,
    budget_s: float,
    min_repeats: int = 3,
    max_repeats: int = 7,
    inspect: Callable[[str, object], None] | None = None,
) -> dict[str, Timing]:
    """Time zero-argument functions, one after another, in the mapping's order.

    Each function is called once as a warm-up (not recorded), and
    ``inspect(name, result)``, if given, sees that result, e.g. to check it against
    a reference computed by an earlier function. Then it is called back to back as
    many times as fit in ``budget_s`` at the warm-up's pace, clamped to
    ``[min_repeats, max_repeats]``, each result waited for with
    ``jax.block_until_ready``. Back-to-back calls measure each function in its own
    steady state (its allocations recycled by the previous call), not after
    whatever another function left behind.
    """
    timings = {}
    for name, fn in fns.items():
        warmup, result = _timed_call(fn)
        if inspect is not None:
            inspect(name, result)
        del result
        repeats = int(budget_s / max(warmup, 1e-9))
        repeats = max(min_repeats, min(max_repeats, repeats))
        timings[name] = Timing([_timed_call(fn)[0] for _ in range(repeats)])
    return timings


def compile_timed(jitted, *args):
    """Lower and compile ``jitted`` for ``args``; return (compiled, seconds).

    Calling the compiled object skips tracing and compilation, so later timings
    measure execution only.
    """
    start = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    return compiled, time.perf_counter() - start


def max_rel_err(got, want, *, chunk: int = 1 << 22) -> float:
    """Largest ``|got - want| / |want|`` in float64, NaN if either has a NaN.

    Works through the arrays in chunks so a 1e8-point comparison does not allocate
    several full-size float64 temporaries.
    """
    got = np.asarray(got).reshape(-1)
    want = np.asarray(want).reshape(-1)
    if got.shape != want.shape:
        raise ValueError(f"shape mismatch: got {got.shape}, want {want.shape}")
    worst = 0.0
    for start in range(0, got.size, chunk):
        g = got[start : start + chunk].astype(np.float64)
        w = want[start : start + chunk].astype(np.float64)
        err = float(np.max(np.abs(g - w) / np.abs(w)))
        if np.isnan(err):
            return err
        worst = max(worst, err)
    return worst


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    wanted = ("avx512f", "avx2", "fma", "neon", "asimd")
                    return [name for name in wanted if name in flags]
    except OSError:
        pass
    return []


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def machine_info() -> dict:
    """What the numbers were measured on (JSON-ready)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    memory = _memory_gib()
    return {
        "cpu": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": None if memory is None else round(memory, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": metadata.version("jaxlib"),
        "numpy": np.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "default_float": str(jax.numpy.zeros(()).dtype),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "env": {
            key: os.environ[key]
            for key in ("JAX_ENABLE_X64", "XLA_FLAGS", "GLIBC_TUNABLES")
            if key in os.environ
        },
    }


def cpu_snapshot() -> tuple[float, float, float] | None:
    """(wall, busy CPU seconds of the whole machine, CPU seconds of this process)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), busy, usage.ru_utime + usage.ru_stime


def other_load(start, end) -> float | None:
    """Average number of cores kept busy by other processes between two snapshots.

    Timings on a shared machine are only as good as this number is small: with 2
    cores, 1.0 means jscale's threads shared the machine with a full other job.
    """
    if start is None or end is None or end[0] <= start[0]:
        return None
    others = (end[1] - start[1]) - (end[2] - start[2])
    return max(0.0, others / (end[0] - start[0]))


def format_machine(info: Mapping) -> str:
    """The machine as a short Markdown list."""
    flags = ", ".join(info["cpu_flags"]) or "none detected"
    lines = [
        f"- CPU: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable),"
        f" SIMD: {flags}",
        f"- Memory: {info['memory_gib']} GiB; OS: {info['platform']}",
        f"- Python {info['python']}, jax {info['jax']}, jaxlib {info['jaxlib']},"
        f" numpy {info['numpy']}",
        f"- JAX backend: {info['backend']}, devices: {', '.join(info['devices'])};"
        f" default float: {info['default_float']} (each row names its dtype)",
        "- Load average at start: " + " ".join(f"{x:g}" for x in info["load_average"]),
    ]
    if info["env"]:
        env = ", ".join(f"{k}={v}" for k, v in info["env"].items())
        lines.append(f"- Environment: {env}")
    return "\n".join(lines)


def format_value(value) -> str:
    """One table cell: numbers to 3 significant digits, booleans as yes/NO."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return f"{value:.3g}"
    return str(value)


def markdown_table(rows: list[Mapping]) -> str:
    """Rows as a Markdown table; columns in the order keys first appear."""
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        cells = (format_value(row.get(key)) for key in columns)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
