"""The example scripts reproduce their published numbers: each runs with --smoke in
a subprocess, exits 0 (a number outside its stated tolerance exits 1), prints its
tables and writes its figures.

The scripts compute in float64 whatever the suite's precision (they enable x64
themselves, as applications may), so the float32 and float64 passes of CI would run
identical work twice. Together these runs take about 85 s of CPU time (measured on
the 2-core development machine; most of it is JAX compiling the fits, solvers and
bootstrap, and matplotlib drawing), more than a minute, so they run only in the
float64 pass (JAX_ENABLE_X64=1).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import X64

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
EPOCH_CSV = (
    ROOT / ".." / "shared" / "data" / "epoch-chinchilla" / "svg_extracted_data.csv"
).resolve()

pytestmark = pytest.mark.skipif(
    not X64, reason="examples compute in float64 themselves; run once, in the x64 pass"
)

#: Lines each script must print (section titles of its published comparisons), and
#: the figures its --plot writes.
EXPECTED = {
    "chinchilla_frontier.py": (
        [
            "Table A3, Approach 3: compute-optimal FLOPs and tokens per model size",
            "Fig. 4 caption and Table 2 (Approach 3)",
            "Table 3 (Approach 1) beside Besiroglu et al. 2024's refit",
        ],
        [
            "chinchilla_isoflop.png",
            "chinchilla_contours.png",
            "chinchilla_projections.png",
        ],
    ),
    "data_constrained.py": (
        [
            "Fig. 1 (right): two models with 25B unique tokens",
            "README: optimal allocation at the Chinchilla model's compute, U = 25B",
            "Abstract: up to ~4 epochs change the loss negligibly",
        ],
        ["data_constrained_epochs.png"],
    ),
    "inference_shift.py": (
        [
            "model_calculator.py and compute_optimal.py (README)",
            "cost_optimal.py (README)",
            "cost_calculator.py (README): a 30B Chinchilla-style model",
        ],
        ["inference_shift.png"],
    ),
    "gpu_hours_plan.py": (
        [
            "LLaMA-65B: GPU-hours and wall-clock from the published throughput",
            "Llama 2: implied MFU, and the 70B run planned from LLaMA-65B's",
            "A compute-optimal plan for Llama 2 70B's budget",
        ],
        ["gpu_hours_plan.png"],
    ),
}

EPOCH_PUBLISHED = (
    [
        "Besiroglu et al. 2024, Eq. 5 / Table 1: estimates on Epoch's data",
        "Besiroglu et al. 2024, Table 1: bootstrap standard errors",
        "Besiroglu et al. 2024, abstract: findings",
    ],
    [
        "epoch_fit_residuals.png",
        "epoch_bootstrap_optimum.png",
        "epoch_tokens_per_param.png",
    ],
)
EPOCH_FALLBACK = (
    [
        "PUBLISHED COMPARISON SKIPPED",
        "Fallback: Approach-3 fit of the shipped example data",
    ],
    [
        "example_fit_residuals.png",
        "example_bootstrap_optimum.png",
        "example_tokens_per_param.png",
    ],
)


def run_smoke(script: str, plot_dir: Path, *args: str) -> str:
    """Run ``examples/script --smoke --plot plot_dir``; its stdout, if it exits 0."""
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--smoke", "--plot", str(plot_dir)]
        + list(args),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def check_output(script: str, out: str, lines, figures, plot_dir: Path) -> None:
    for line in lines:
        assert line in out, f"{script}: missing {line!r}"
    # The summary line, and no comparison outside its tolerance.
    stem = Path(script).stem
    summary = re.search(rf"^{stem}: (\d+) checks passed, (\d+) failed", out, re.M)
    assert summary, f"{script}: no summary line"
    assert int(summary.group(1)) > 0 and int(summary.group(2)) == 0
    assert "FAIL" not in out
    for name in figures:
        path = plot_dir / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_every_example_is_tested():
    scripts = {p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(EXPECTED) | {"epoch_replication.py"}


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_reproduces_published_numbers(script, tmp_path):
    lines, figures = EXPECTED[script]
    out = run_smoke(script, tmp_path)
    check_output(script, out, lines, figures, tmp_path)


def test_epoch_replication_with_epoch_data(tmp_path):
    # Epoch's data is not shipped (it has no licence); the script reads it from
    # ../shared/data by default. Without it see the fallback test below.
    if not EPOCH_CSV.exists():
        pytest.skip(f"Epoch's extracted Chinchilla data not found at {EPOCH_CSV}")
    lines, figures = EPOCH_PUBLISHED
    out = run_smoke("epoch_replication.py", tmp_path)
    check_output("epoch_replication.py", out, lines, figures, tmp_path)


def test_epoch_replication_without_data_falls_back(tmp_path):
    missing = tmp_path / "missing.csv"
    out = run_smoke("epoch_replication.py", tmp_path, "--data", str(missing))
    lines, figures = EPOCH_FALLBACK
    check_output("epoch_replication.py", out, lines, figures, tmp_path)
    assert str(missing) in out
