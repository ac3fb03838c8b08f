"""The command line: JSON contracts, agreement with the library, one-line errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from jscale import allocation, cli, laws

REQUIRED_LAWS = [
    "chinchilla-hoffmann2022",
    "chinchilla-hoffmann2022-unrounded",
    "chinchilla-besiroglu2024",
    "kaplan2020",
    "muennighoff2023",
]


def run_json(capsys, *argv):
    code = cli.main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""
    return json.loads(out)


def run_error(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_laws_lists_required_presets_with_citations(capsys):
    out = run_json(capsys, "laws")
    by_name = {d["name"]: d for d in out["laws"]}
    for name in REQUIRED_LAWS:
        assert name in by_name
        assert by_name[name]["citation"]
        assert by_name[name]["units"]


def test_optimal_default_budget(capsys):
    out = run_json(capsys, "optimal")
    for key in ("n_params", "n_tokens", "tokens_per_param", "loss", "compute_flops"):
        assert isinstance(out[key], float)
    # Hoffmann 2022 Eq. 4 with Eq. 10: about 41B parameters on 4.0T tokens at 1e24.
    assert out["compute_flops"] == 1e24
    assert out["law"] == "chinchilla-hoffmann2022"
    assert 40.5e9 < out["n_params"] < 42e9
    assert 3.95e12 < out["n_tokens"] < 4.1e12
    assert math.isclose(out["tokens_per_param"], out["n_tokens"] / out["n_params"])
    assert math.isclose(6 * out["n_params"] * out["n_tokens"], 1e24, rel_tol=1e-9)
    assert out["status"] == "converged"


@pytest.mark.parametrize("law", REQUIRED_LAWS)
def test_optimal_agrees_with_library_in_float64(capsys, law):
    import jax

    out = run_json(capsys, "optimal", "--law", law, "--compute", "3e22")
    with jax.enable_x64(True):
        ref = allocation.optimal(law, 3e22)
        assert math.isclose(out["n_params"], float(ref.n_params), rel_tol=1e-9)
        assert math.isclose(out["loss"], float(ref.loss), rel_tol=1e-12)


def test_optimal_data_constrained_reports_epochs(capsys):
    out = run_json(
        capsys,
        "optimal",
        "--law",
        "muennighoff2023",
        "--compute",
        "1e23",
        "--unique-tokens",
        "1e10",
    )
    assert out["unique_tokens"] == 1e10
    assert math.isclose(out["epochs"], out["n_tokens"] / 1e10)
    assert out["epochs"] > 1


def test_loss_matches_formula(capsys):
    out = run_json(capsys, "loss", "--params", "70e9", "--tokens", "1.4e12")
    expected = 1.69 + 406.4 / 70e9**0.34 + 410.7 / 1.4e12**0.28  # Hoffmann Eq. 2, 10
    assert math.isclose(out["loss"], expected, rel_tol=1e-12)
    assert out["compute_flops"] == 6 * 70e9 * 1.4e12


def test_loss_from_compute_and_params(capsys):
    a = run_json(capsys, "loss", "--params", "1e9", "--compute", "6e19")
    b = run_json(capsys, "loss", "--params", "1e9", "--tokens", "1e10")
    assert math.isclose(a["loss"], b["loss"], rel_tol=1e-12)


def test_loss_kaplan_and_data_constrained(capsys):
    k = run_json(
        capsys, "loss", "--law", "kaplan2020", "--params", "1e9", "--tokens", "2e10"
    )
    # Kaplan 2020 Eq. 4.1 with Table 2 constants.
    ref = ((6.4e13 / 1e9) ** (0.076 / 0.103) + 1.8e13 / 2e10) ** 0.103
    assert math.isclose(k["loss"], ref, rel_tol=1e-12)
    dc = run_json(
        capsys,
        "loss",
        "--law",
        "muennighoff2023",
        "--params",
        "1e9",
        "--tokens",
        "4e10",
        "--unique-tokens",
        "1e10",
    )
    p = laws.get("muennighoff2023").params
    import jax

    with jax.enable_x64(True):
        assert math.isclose(
            dc["loss"],
            float(p and laws.get("muennighoff2023").loss(1e9, 4e10, 1e10)),
            rel_tol=1e-12,
        )


def test_budget_accounting_by_hand(capsys):
    out = run_json(
        capsys,
        "budget",
        "--gpu",
        "h100-sxm",
        "--count",
        "1000",
        "--days",
        "30",
        "--mfu",
        "0.4",
        "--price",
        "2.0",
        "--pue",
        "1.2",
    )
    hours = 1000 * 30 * 24
    # NVIDIA H100 SXM datasheet: 989 TFLOP/s dense BF16, 700 W board power.
    assert math.isclose(out["compute_flops"], hours * 3600 * 989e12 * 0.4, rel_tol=1e-3)
    assert math.isclose(out["gpu_hours"], hours, rel_tol=1e-12)
    assert math.isclose(out["cost_usd"], 2.0 * hours, rel_tol=1e-12)
    assert math.isclose(out["energy_kwh"], hours * 0.7 * 1.2, rel_tol=1e-9)
    ref = allocation.optimal("chinchilla-hoffmann2022", out["compute_flops"])
    assert math.isclose(out["n_params"], float(ref.n_params), rel_tol=1e-5)


def test_isoflop_approach2(capsys):
    out = run_json(capsys, "isoflop")
    assert len(out["budgets"]) == 9  # Hoffmann 2022's nine budgets
    # Slices centred on each optimum: Approach 2 recovers a = beta/(alpha+beta).
    assert math.isclose(out["approach2"]["a"], 0.28 / 0.62, rel_tol=1e-6)
    first = out["budgets"][0]
    losses = np.array(first["slice"]["loss"])
    assert losses.min() >= first["loss_opt"] - 1e-12


def test_text_output_runs(capsys):
    for argv in (
        ["laws"],
        ["optimal"],
        ["loss", "--params", "1e9", "--tokens", "1e10"],
        ["budget", "--days", "1"],
        ["isoflop", "--compute", "1e20", "1e21"],
    ):
        assert cli.main(argv) == 0
        out, err = capsys.readouterr()
        assert out and not err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["optimal", "--compute", "-1"], "--compute"),
        (["optimal", "--compute", "0"], "--compute"),
        (["optimal", "--compute", "nan"], "--compute"),
        (["optimal", "--compute", "inf"], "--compute"),
        (["optimal", "--compute", "lots"], "--compute"),
        (["optimal", "--compute", "1"], "infeasible"),
        (["optimal", "--law", "chinchilla-2099"], "chinchilla-hoffmann2022"),
        (["loss", "--params", "1e9"], "--tokens"),
        (["loss", "--params", "-5", "--tokens", "1e9"], "--params"),
        (
            [
                "loss",
                "--law",
                "kaplan2020",
                "--params",
                "1e9",
                "--tokens",
                "1e9",
                "--unique-tokens",
                "1e9",
            ],
            "--unique-tokens",
        ),
        (["budget", "--gpu", "abacus", "--days", "1"], "h100-sxm"),
        (["budget", "--days", "1", "--mfu", "1.5"], "--mfu"),
        (["budget", "--days", "1", "--pue", "0.5"], "--pue"),
        (["budget", "--days", "1", "--count", "0"], "--count"),
        (["budget"], "--days"),
        (["optimal", "--unique-tokens", "1e10"], "unique_tokens"),
        (["isoflop", "--points", "2"], "--points"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, needle):
    line = run_error(capsys, *argv)
    assert needle in line


def test_console_entry_point():
    proc = subprocess.run(
        [sys.executable, "-m", "jscale.cli", "optimal", "--compute", "1e22", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(proc.stdout)["compute_flops"] == 1e22


def test_every_law_input_has_a_loss_option():
    import inspect

    assert set(cli.INPUT_OPTIONS) == set(laws.INPUT_NAMES)
    for name in laws.names():
        preset = laws.get(name)
        params = list(inspect.signature(preset.family.loss).parameters)[1:]
        assert list(preset.family.inputs) == params, name


@pytest.mark.parametrize(
    "argv",
    [
        [
            "--law",
            "moe-ludziejewski2025",
            "--active-params",
            "1e9",
            "--tokens",
            "2e10",
            "--experts",
            "8",
        ],
        [
            "--law",
            "moe-krajewski2024",
            "--params",
            "1e9",
            "--tokens",
            "2e10",
            "--granularity",
            "4",
        ],
        ["--law", "moe-clark2022-sbase", "--active-params", "1e9", "--experts", "64"],
        [
            "--law",
            "precision-kumar2024",
            "--params",
            "1e9",
            "--tokens",
            "2e10",
            "--weight-bits",
            "8",
        ],
        ["--law", "kaplan2020-steps", "--params", "1e9", "--steps", "1e5"],
        ["--law", "caballero2022-figure1", "--x", "1e10"],
    ],
)
def test_loss_for_every_family(capsys, argv):
    import jax

    out = run_json(capsys, "loss", *argv)
    preset = laws.get(argv[1])
    inputs = {k: v for k, v in out.items() if k in preset.family.inputs}
    with jax.enable_x64(True):
        assert math.isclose(out["loss"], float(preset.loss(**inputs)), rel_tol=1e-12)


# ------------------------------------------------ optimal: MoE, precision, quality


def test_optimal_moe_json_contract(capsys):
    out = run_json(
        capsys,
        "optimal",
        "--law",
        "moe-ludziejewski2025",
        "--compute",
        "1e23",
        "--memory-gb",
        "80",
    )
    for key in ("n_active_params", "n_total_params", "experts", "n_tokens", "loss"):
        assert out[key] is not None and out[key] > 0, key
    assert out["n_active_params"] == out["n_params"]
    assert out["n_total_params"] >= out["n_active_params"]
    # The cap binds (weights plus KV cache fit in 80 GB) ...
    assert out["memory_bytes"] <= 80e9 * (1 + 1e-6)
    # ... and it matches the library call it stands for.
    r = allocation.moe_optimal("moe-ludziejewski2025", 1e23, memory_gb=80)
    assert out["experts"] == pytest.approx(float(r.experts), rel=1e-6)
    fixed = run_json(
        capsys,
        "optimal",
        "--law",
        "moe-ludziejewski2025",
        "--compute",
        "1e23",
        "--experts",
        "8",
    )
    assert fixed["experts"] == pytest.approx(8.0)
    # Fixing E can only do as well as choosing it freely (no memory cap there).
    free = run_json(
        capsys, "optimal", "--law", "moe-ludziejewski2025", "--compute", "1e23"
    )
    assert free["loss"] <= fixed["loss"] * (1 + 1e-9)


def test_optimal_fine_grained_moe_reports_granularity(capsys):
    out = run_json(capsys, "optimal", "--law", "moe-krajewski2024", "--compute", "1e21")
    assert out["granularity"] >= 1.0
    # Krajewski 2024: experts = expansion rate (64) x granularity.
    assert out["experts"] == pytest.approx(64.0 * out["granularity"], rel=1e-6)


def test_optimal_precision_menu_and_fixed(capsys):
    menu = run_json(
        capsys,
        "optimal",
        "--law",
        "precision-kumar2024",
        "--compute",
        "1e23",
        "--precision",
        "menu",
    )
    assert menu["bits"] in (16.0, 8.0, 4.0)
    losses = {}
    for name, bits in (("bf16", 16.0), ("fp8", 8.0), ("int4", 4.0)):
        fixed = run_json(
            capsys,
            "optimal",
            "--law",
            "precision-kumar2024",
            "--compute",
            "1e23",
            "--precision",
            name,
        )
        assert fixed["bits"] == bits
        losses[bits] = fixed["loss"]
    # The menu's answer is the best of the three fixed-precision optima.
    assert menu["bits"] == min(losses, key=losses.get)
    assert menu["loss"] == pytest.approx(min(losses.values()), rel=1e-9)


def test_optimal_quality_is_a_rescaled_chinchilla_law(capsys):
    """L(N, qD) is the Chinchilla form with B' = B q^-beta (closed form, Eq. 4)."""
    q = 1.7
    out = run_json(capsys, "optimal", "--compute", "1e22", "--quality", str(q))
    p = laws.get("chinchilla-hoffmann2022").params
    b = p.B * q ** (-p.beta)
    g = (p.alpha * p.A / (p.beta * b)) ** (1.0 / (p.alpha + p.beta))
    n = g * (1e22 / 6.0) ** (p.beta / (p.alpha + p.beta))
    assert out["n_params"] == pytest.approx(n, rel=1e-6)
    assert out["effective_tokens"] == pytest.approx(q * out["n_tokens"], rel=1e-9)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["optimal", "--experts", "8"], "experts"),
        (["optimal", "--memory-gb", "80"], "memory_gb"),
        (["optimal", "--precision", "fp8"], "precision"),
        (
            ["optimal", "--law", "moe-ludziejewski2025", "--unique-tokens", "1e9"],
            "unique_tokens",
        ),
        (["optimal", "--law", "precision-kumar2024", "--precision", "fp7"], "fp7"),
        (["optimal", "--quality", "0"], "--quality"),
    ],
)
def test_optimal_scenario_errors(capsys, argv, needle):
    assert needle in run_error(capsys, *argv)


# ------------------------------------------------- one dialect, one validation pass


def test_hardware_is_an_alias_of_gpu(capsys):
    a = run_json(capsys, "budget", "--gpu", "a100-80gb", "--days", "1")
    b = run_json(capsys, "budget", "--hardware", "a100-80gb", "--days", "1")
    assert a == b and a["hardware"] == "a100-80gb"
    p = run_json(capsys, "plan", "--hardware", "a100-80gb", "--compute", "1e22")
    assert p["budget"]["hardware"] == "a100-80gb"


@pytest.mark.parametrize("command", ["plan", "budget", "optimal"])
def test_help_lists_hardware_and_the_status_table(capsys, command):
    from jscale import _status, accounting

    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = capsys.readouterr().out
    if command != "optimal":
        assert all(name in text for name in accounting.HARDWARE)
        assert "--hardware" in text and "power usage effectiveness" in text
    for entry in _status.TABLE:
        assert f"{entry.code}  {entry.name}" in text


def test_counts_accept_scientific_notation_everywhere(capsys):
    # One whole-number check (jscale._checks.check_whole) for every count option.
    a = run_json(capsys, "budget", "--count", "1e3", "--days", "1")
    b = run_json(capsys, "budget", "--count", "1000", "--days", "1")
    assert a == b and a["count"] == 1000
    assert "must be a whole number >= 1" in run_error(capsys, "mc", "--draws", "1.5")
    assert "--draws" in run_error(capsys, "plan", "--draws", "1")


@pytest.mark.parametrize(
    ("argv", "start"),
    [
        # Ranges are checked once, by the library, and reported under the flag.
        (["optimal", "--compute", "-1"], "--compute: compute_flops"),
        (["optimal", "--unique-tokens", "1e10"], "--unique-tokens: unique_tokens"),
        (
            ["optimal", "--law", "precision-kumar2024", "--precision", "fp7"],
            "--precision",
        ),
        (["budget", "--days", "1", "--mfu", "1.5"], "--mfu: mfu"),
        (["plan", "--usd", "100"], "--price: price_per_device_hour"),
        (["plan", "--energy-kwh", "0"], "--energy-kwh: energy_kwh"),
        (["mc", "--chunk-size", "1000", "--draws", "1024"], "--chunk-size: chunk_size"),
    ],
)
def test_library_errors_name_the_flag(capsys, argv, start):
    line = run_error(capsys, *argv)
    assert line.startswith(f"jscale {argv[0]}: error: {start}"), line


def test_plan_table_has_the_loss_unit(capsys):
    assert cli.main(["plan", "--compute", "1e22", "--draws", "64"]) == 0
    assert "loss (nats/token) [90%]" in capsys.readouterr().out


def test_plan_plot_reuses_the_table_draws(capsys, tmp_path, monkeypatch):
    from jscale import planner

    calls = []
    real = planner.besiroglu_draws

    def counted(key, num_draws):
        calls.append(num_draws)
        return real(key, num_draws)

    monkeypatch.setattr(planner, "besiroglu_draws", counted)
    argv = ["plan", "--compute", "1e22", "--draws", "64", "--plot", str(tmp_path)]
    assert cli.main([*argv, "--format", "svg"]) == 0
    assert calls == [64]  # drawn once, for the table and the figures alike
    assert (tmp_path / "optimum_vs_compute.svg").exists()
    assert "wrote" in capsys.readouterr().out
