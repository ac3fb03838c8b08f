"""The planner and `jscale plan`: rows agree with independent float64 references."""

from __future__ import annotations

import json
import math

import jax
import numpy as np
import pytest

from jscale import cli, planner
from jscale.laws import chinchilla

# Float32 runs carry ~1e-7 relative rounding through exp/log of 1e24-scale
# numbers; 2e-5 covers it with margin, float64 is held to 1e-9.
TOL = 1e-9 if jax.config.jax_enable_x64 else 2e-5
H100_BF16 = 989e12  # NVIDIA H100 SXM datasheet: BF16 1,979 TFLOPS with sparsity, halved


def _hoffmann_eq4(p, c):
    """Hoffmann 2022 Eq. 4 in NumPy float64."""
    g = (p.alpha * p.A / (p.beta * p.B)) ** (1.0 / (p.alpha + p.beta))
    n = g * (c / 6.0) ** (p.beta / (p.alpha + p.beta))
    return n, c / (6.0 * n)


def test_rows_match_the_closed_form_and_the_budget():
    out = planner.plan(count=256, hardware="h100-sxm", days=10, mfu=0.5, num_draws=64)
    flops = 256 * 240 * 3600 * H100_BF16 * 0.5
    assert out["budget"]["compute_flops"] == pytest.approx(flops, rel=TOL)
    assert out["budget"]["gpu_hours"] == pytest.approx(256 * 240, rel=TOL)
    assert out["example"] is None
    for row, preset in zip(
        out["plans"], (chinchilla.HOFFMANN2022, chinchilla.BESIROGLU2024), strict=True
    ):
        assert row["law"] == preset.name
        n, d = _hoffmann_eq4(preset.params, flops)
        assert row["n_params"] == pytest.approx(n, rel=10 * TOL)
        assert row["n_tokens"] == pytest.approx(d, rel=10 * TOL)
        assert row["tokens_per_param"] == pytest.approx(d / n, rel=10 * TOL)
        assert row["status"] == "converged"
        assert row["gpu_hours"] == pytest.approx(256 * 240, rel=10 * TOL)


def test_no_budget_plans_the_embedded_example():
    out = planner.plan(num_draws=16)
    assert "embedded example" in out["example"]
    e = planner.EXAMPLE
    flops = e["count"] * e["days"] * 24 * 3600 * H100_BF16 * e["mfu"]
    assert out["budget"]["compute_flops"] == pytest.approx(flops, rel=TOL)
    hours = e["count"] * e["days"] * 24
    assert out["budget"]["cost_usd"] == pytest.approx(
        hours * e["price_per_device_hour"], rel=TOL
    )


def test_dollar_and_energy_budgets_convert_through_the_hardware():
    out = planner.plan(usd=1e6, price_per_device_hour=2.0, mfu=0.4, num_draws=16)
    # $1e6 at $2/h buys 5e5 GPU-hours.
    assert out["budget"]["compute_flops"] == pytest.approx(
        5e5 * 3600 * H100_BF16 * 0.4, rel=TOL
    )
    out = planner.plan(energy_kwh=7e5, mfu=0.4, pue=1.2, num_draws=16)
    # H100 SXM board power 700 W: 7e5 kWh / (0.7 kW x 1.2) GPU-hours.
    hours = 7e5 / (0.7 * 1.2)
    assert out["budget"]["gpu_hours"] == pytest.approx(hours, rel=10 * TOL)


def test_interval_matches_a_numpy_multivariate_normal():
    """The loss interval of the Besiroglu plan against NumPy draws (float64)."""
    out = planner.plan(compute_flops=1e24, num_draws=20000, seed=1)
    row = out["plans"][1]
    est = chinchilla.BESIROGLU2024.params
    mean = [math.log(est.A), math.log(est.B), math.log(est.E), est.alpha, est.beta]
    cov = np.asarray(chinchilla.BESIROGLU2024_COVARIANCE)
    z = np.random.default_rng(0).multivariate_normal(mean, cov, 200_000)
    n, d = row["n_params"], row["n_tokens"]
    loss = (
        np.exp(z[:, 2])
        + np.exp(z[:, 0]) / n ** z[:, 3]
        + np.exp(z[:, 1]) / d ** z[:, 4]
    )
    ref = np.quantile(loss, [0.05, 0.95])
    # 20000 draws put the 5% / 95% quantiles within ~2e-3 of the truth here (their
    # standard error is about sqrt(q (1-q) / n) / density ~ 1e-3 of the loss).
    np.testing.assert_allclose(row["loss_interval"], ref, rtol=2e-3)
    assert row["loss_interval"][0] < row["loss"] < row["loss_interval"][1]
    lo, hi = row["n_params_interval"]
    assert lo < row["n_params"] < hi


def test_draws_have_the_published_covariance():
    p = planner.besiroglu_draws(jax.random.key(3), 50_000)
    z = np.stack(
        [np.log(p.A), np.log(p.B), np.log(p.E), np.asarray(p.alpha), np.asarray(p.beta)]
    )
    cov = np.asarray(chinchilla.BESIROGLU2024_COVARIANCE)
    sd = np.sqrt(np.diag(cov))
    # Sample covariance of 5e4 draws: relative error ~ sqrt(2 / 5e4) ~ 0.6% of
    # sd_i sd_j; 3% allows for float32 draws and 5 sigma.
    np.testing.assert_allclose(np.cov(z), cov, atol=0.03 * np.outer(sd, sd).max())
    np.testing.assert_allclose(
        np.corrcoef(z)[0, 3], cov[0, 3] / (sd[0] * sd[3]), atol=1e-3
    )


def test_optional_rows():
    out = planner.plan(
        compute_flops=1e22, unique_tokens=1e10, inference_tokens=1e12, num_draws=64
    )
    laws_ = [r["law"] for r in out["plans"]]
    assert laws_[2] == "muennighoff2023"
    assert out["plans"][2]["epochs"] == pytest.approx(
        out["plans"][2]["n_tokens"] / 1e10, rel=10 * TOL
    )
    inf = out["plans"][3]
    assert inf["law"].endswith("+ inference")
    # The lifetime budget is spent: 6 N D + 2 N T = C.
    spent = 6 * inf["n_params"] * inf["n_tokens"] + 2 * inf["n_params"] * 1e12
    assert spent == pytest.approx(1e22, rel=1e-4)
    assert inf["n_params"] < out["plans"][1]["n_params"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"compute_flops": 1e24, "usd": 5.0}, "one budget"),
        ({"usd": 5.0}, "price_per_device_hour"),
        ({"count": 8}, "hours or days"),
        ({"compute_flops": -1.0}, "compute_flops"),
        ({"compute_flops": 1e24, "interval": 1.5}, "interval"),
        ({"compute_flops": 1e24, "num_draws": 1}, "num_draws"),
        ({"compute_flops": 1e24, "num_draws": 2.5}, "num_draws"),
        ({"mfu": 0.0}, "mfu"),
        ({"count": 8, "hours": 10, "days": 1}, "hours or days"),
    ],
)
def test_bad_budgets_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        planner.plan(**kwargs)


def test_cli_plan_json_and_table(capsys, tmp_path):
    assert cli.main(["plan", "--json", "--draws", "64"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "embedded example" in out["example"]
    assert {
        "law",
        "n_params",
        "n_tokens",
        "loss",
        "loss_interval",
        "gpu_hours",
        "energy_kwh",
        "cost_usd",
    } <= set(out["plans"][0])
    code = cli.main(
        [
            "plan",
            "--count",
            "8",
            "--hours",
            "100",
            "--unique-tokens",
            "1e10",
            "--draws",
            "64",
            "--plot",
            str(tmp_path),
            "--format",
            "svg",
        ]
    )
    text = capsys.readouterr().out
    assert code == 0
    assert "muennighoff2023" in text and "tokens/param" in text
    assert (tmp_path / "epochs.svg").exists()
    assert (tmp_path / "loss_histogram.svg").exists()


def test_cli_plan_errors(capsys):
    assert cli.main(["plan", "--usd", "100"]) == 2
    assert "--price" in capsys.readouterr().err
    assert cli.main(["plan", "--compute", "1e24", "--days", "3", "--count", "2"]) == 2
    assert "one budget" in capsys.readouterr().err


def test_draws_can_be_passed_in():
    # The same draws give the same intervals: `jscale plan --plot` draws once.
    draws = planner.besiroglu_draws(jax.random.key(5), 64)
    a = planner.plan(compute_flops=1e23, draws=draws)
    b = planner.plan(compute_flops=1e23, num_draws=64, seed=5)
    assert a == b
    with pytest.raises(ValueError, match="at least 2 draws"):
        planner.plan(compute_flops=1e23, draws=planner.besiroglu_draws(KEY, 1))


def test_draws_follow_the_published_coordinates():
    """besiroglu_draws reads the covariance through its one public accessor."""
    cov = chinchilla.besiroglu2024_covariance(chinchilla.BESIROGLU2024_COORDS)
    np.testing.assert_array_equal(cov, np.asarray(chinchilla.BESIROGLU2024_COVARIANCE))


KEY = jax.random.key(0)
