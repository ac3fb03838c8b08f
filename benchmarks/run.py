"""Run the jscale benchmarks and print one Markdown table per benchmark.

    python benchmarks/run.py [--smoke] [--only NAME] [--out FILE]

Every ``benchmarks/bench_<name>.py`` is a benchmark called ``<name>``; see
``_harness.py`` for what such a module defines. ``--smoke`` runs tiny sizes (the
agreement checks still run; the timings mean nothing). ``--out FILE`` also writes the
Markdown to FILE and the raw rows, with the machine, to FILE with a ``.json`` suffix.
The exit status is 1 when a benchmark fails or jscale disagrees with its reference.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _harness  # noqa: E402  (needs the path above)


def discover() -> dict[str, Path]:
    """Benchmark name -> module path, sorted by name."""
    return {
        path.stem.removeprefix("bench_"): path
        for path in sorted(HERE.glob("bench_*.py"))
    }


def title(module) -> str:
    doc = (module.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else module.__name__


def _load_note(others: float | None) -> str:
    if others is None:
        return "load from other processes unknown"
    return f"other processes kept {others:.2f} cores busy on average"


def main(argv: list[str] | None = None) -> int:
    available = discover()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes; checks only, no timing claims"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        choices=sorted(available),
        help="run only this benchmark (repeatable); one of: %(choices)s",
    )
    parser.add_argument(
        "--out", type=Path, metavar="FILE", help="also write Markdown here, JSON beside"
    )
    args = parser.parse_args(argv)
    if args.out is not None and args.out.suffix == ".json":
        parser.error("--out names the Markdown file; the JSON goes beside it")

    selected = args.only or sorted(available)
    machine = _harness.machine_info()
    mode = "smoke (tiny sizes, timings meaningless)" if args.smoke else "full"
    print("# jscale benchmarks\n")
    print(_harness.format_machine(machine))
    print(f"- Mode: {mode}\n", flush=True)

    started = time.perf_counter()
    snapshot = _harness.cpu_snapshot()
    sections = []
    results = {}
    failed = []
    for name in selected:
        module = importlib.import_module(available[name].stem)
        bench_start = time.perf_counter()
        bench_snapshot = _harness.cpu_snapshot()
        try:
            rows = module.run(smoke=args.smoke)
        except Exception:
            traceback.print_exc()
            failed.append(f"{name}: raised")
            continue
        seconds = time.perf_counter() - bench_start
        others = _harness.other_load(bench_snapshot, _harness.cpu_snapshot())
        results[name] = {
            "title": title(module),
            "wall_s": seconds,
            "other_load": others,
            "rows": rows,
        }
        bad = [row for row in rows if row.get("ok") is False]
        if bad:
            failed.append(f"{name}: {len(bad)} rows disagree with the reference")
        section = (
            f"## {name}: {title(module)}\n\n"
            f"{_harness.markdown_table(rows)}\n\n"
            f"({seconds:.1f} s; {_load_note(others)})\n"
        )
        sections.append(section)
        print(section, flush=True)

    wall = time.perf_counter() - started
    others = _harness.other_load(snapshot, _harness.cpu_snapshot())
    print(f"Total wall time: {wall:.1f} s; {_load_note(others)}")
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)

    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        header = f"# jscale benchmarks\n\n{_harness.format_machine(machine)}\n"
        header += (
            f"- Mode: {mode}\n- Total wall time: {wall:.1f} s; {_load_note(others)}\n"
        )
        args.out.write_text(header + "\n" + "\n".join(sections))
        payload = {
            "machine": machine,
            "smoke": args.smoke,
            "wall_s": wall,
            "other_load": others,
            "failed": failed,
            "benchmarks": results,
        }
        args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
