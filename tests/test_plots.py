"""Figures: the drawn data is the library's answer; labelled axes; valid files."""

import warnings

import numpy as np
import pytest

from jscale import allocation, fitting, isoflop, laws, plots

matplotlib = pytest.importorskip("matplotlib")


def _lines(ax):
    return [
        (np.asarray(line.get_xdata()), np.asarray(line.get_ydata()))
        for line in ax.get_lines()
    ]


def test_isoflop_curves_mark_the_library_minima():
    budgets = [1e19, 1e21]
    fig = plots.isoflop_curves("chinchilla-hoffmann2022", budgets)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    assert "N" in ax.get_xlabel() and "loss" in ax.get_ylabel()
    p = laws.get("chinchilla-hoffmann2022")
    best = isoflop.isoflop_minimum(p.family.loss, p.params, np.asarray(budgets))
    markers = [(x, y) for x, y in _lines(ax) if x.size == 1]
    assert len(markers) == 2
    for (x, y), n, loss in zip(markers, best.n_params, best.loss, strict=True):
        np.testing.assert_allclose(x[0], float(n), rtol=1e-6)
        np.testing.assert_allclose(y[0], float(loss), rtol=1e-6)
    # Every curve point lies above its slice's minimum (it is a minimum).
    curves = [(x, y) for x, y in _lines(ax) if x.size > 1]
    for (_, y), loss in zip(curves, best.loss, strict=True):
        assert y.min() >= float(loss) * (1 - 1e-6)


def test_loss_contours_draw_the_optimum_and_the_rules():
    fig = plots.loss_contours(num=24)
    ax = fig.axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    labels = [line.get_label() for line in ax.get_lines()]
    assert any("optimum" in s for s in labels)
    assert "Kaplan 2020 frontier" in labels and "20 tokens/parameter" in labels
    x, y = _lines(ax)[labels.index("optimum (chinchilla-hoffmann2022)")]
    # The frontier is Hoffmann's closed form: D/N follows from N alone.
    plan = allocation.chinchilla_optimal(
        laws.get("chinchilla-hoffmann2022").params, 6.0 * x * y
    )
    np.testing.assert_allclose(x, np.asarray(plan.n_params), rtol=1e-4)


def test_optimum_band_contains_the_point_estimate():
    p = laws.get("chinchilla-besiroglu2024").params
    rng = np.random.default_rng(0)
    draws = type(p)(*(np.asarray(v) * (1 + 0.02 * rng.normal(size=64)) for v in p))
    fig = plots.optimum_vs_compute(budgets=np.logspace(19, 25, 7), draws=draws)
    ax_n, ax_d = fig.axes
    for ax in (ax_n, ax_d):
        (band,) = ax.collections
        (x, y), *_ = _lines(ax)
        verts = band.get_paths()[0].vertices
        for xi, yi in zip(x, y, strict=True):
            at = verts[np.isclose(verts[:, 0], xi, rtol=1e-9), 1]
            assert at.min() <= yi * (1 + 1e-3) and at.max() >= yi * (1 - 1e-3)


def test_epochs_curve_marks_the_data_constrained_optimum():
    fig = plots.epochs_curve(compute_flops=1e21, unique_tokens=[1e9])
    (ax,) = fig.axes
    (x, y), *rest = _lines(ax)
    (ex, ey) = next(pair for pair in rest if pair[0].size == 1)
    best = allocation.optimal("muennighoff2023", 1e21, unique_tokens=1e9)
    np.testing.assert_allclose(ex[0], float(best.epochs), rtol=1e-6)
    # The optimum is at or below every point of the curve (within float32 noise).
    assert ey[0] <= y.min() * (1 + 1e-5)


def test_inference_shift_moves_toward_smaller_models():
    fig = plots.inference_shift(inference_tokens=np.logspace(10, 14, 5))
    (ax,) = fig.axes
    (t, n_ratio), (_, d_ratio), *_ = _lines(ax)
    assert np.all(np.diff(n_ratio) <= 1e-6) and n_ratio[-1] < 1.0
    assert d_ratio[-1] > 1.0


def test_histogram_from_counts_matches_values():
    v = np.exp(np.random.default_rng(1).normal(2.0, 0.5, 5000))
    edges = np.logspace(np.log10(v.min()), np.log10(v.max()) + 1e-9, 31)
    counts, _ = np.histogram(v, bins=edges)
    f1 = plots.histogram(v, edges=edges)
    f2 = plots.histogram(edges=edges, counts=counts, quantiles={"p50": np.median(v)})
    h1 = f1.axes[0].patches[0].get_path().vertices
    h2 = f2.axes[0].patches[0].get_path().vertices
    np.testing.assert_array_equal(h1, h2)
    with pytest.raises(ValueError, match="edges and counts"):
        plots.histogram(edges=edges)


def test_sobol_bars_and_residuals(tmp_path):
    fig = plots.sobol_bars(
        ["E", "A"], [0.3, 0.5], [0.4, 0.6], first_ci=[[0.2, 0.4], [0.4, 0.6]]
    )
    heights = sorted(b.get_height() for b in fig.axes[0].patches)
    np.testing.assert_allclose(heights, [0.3, 0.4, 0.5, 0.6])
    law = laws.get("chinchilla-besiroglu2024")
    n = np.repeat(np.logspace(8, 10, 4), 3)
    d = np.tile(np.logspace(9.5, 11.5, 3), 4)
    data = fitting.observations(
        {"n_params": n, "n_tokens": d, "loss": np.asarray(law.loss(n, d))}
    )
    with warnings.catch_warnings():  # float32 fits warn; the plot is what is tested
        warnings.simplefilter("ignore", RuntimeWarning)
        result = fitting.fit(data, starts=[[6.0, 7.0, 0.5, 0.3, 0.3]], max_steps=8)
    fig = plots.fit_residuals(result, data)
    pts = fig.axes[1].collections[0].get_offsets()
    pred = np.asarray(law.family.loss(result.params, n, d))
    np.testing.assert_allclose(pts[:, 0], pred, rtol=1e-6)


@pytest.mark.parametrize(
    ("suffix", "magic"), [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")]
)
def test_save_formats(tmp_path, suffix, magic):
    fig = plots.sobol_bars(["x"], [0.5], [0.6])
    path = plots.save(fig, tmp_path / "sub" / f"fig{suffix}")
    with open(path, "rb") as fh:
        assert fh.read(5).startswith(magic)


def test_save_rejects_unknown_format(tmp_path):
    fig = plots.sobol_bars(["x"], [0.5], [0.6])
    with pytest.raises(ValueError, match="png"):
        plots.save(fig, tmp_path / "fig.jpg")


def test_moe_frontier_draws_the_library_optimum():
    fig = plots.moe_frontier(budgets=[1e22], memory_bytes=[20e9, 80e9, 640e9])
    a1, a2 = fig.axes
    (m, loss), *_ = _lines(a1)
    (_, experts), *_ = _lines(a2)
    r = allocation.moe_optimal("moe-ludziejewski2025", 1e22, memory_gb=80.0)
    np.testing.assert_allclose(loss[1], float(r.loss), rtol=1e-6)
    np.testing.assert_allclose(experts[1], float(r.experts), rtol=1e-6)
    # More memory never hurts (Ludziejewski et al. 2025: memory buys experts).
    assert np.all(np.diff(loss) <= 1e-6) and np.all(np.diff(experts) >= -1e-6)
