"""Figures: isoFLOP curves, loss contours, frontiers, uncertainty bands, diagnostics.

Every function builds a :class:`matplotlib.figure.Figure` through the object API (no
``pyplot``, no global state, no ``show()``): save it with :func:`save` or
``fig.savefig``. Matplotlib is imported lazily, so ``import jscale`` never pays for
it. Axes carry units; compute, parameters and tokens are on log scales, as in the
papers (Hoffmann et al. 2022, Figs. 1-4; Kaplan et al. 2020, Fig. 1).

Each function takes an optional ``ax`` to draw into an existing axes instead of a new
figure, and returns the figure the axes belong to.

>>> from jscale import plots
>>> fig = plots.isoflop_curves("chinchilla-hoffmann2022", [1e19, 1e21])
>>> [a.get_xlabel() for a in fig.axes]
['parameters N']
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import allocation, isoflop, laws

#: Hoffmann et al. 2022's nine isoFLOP budgets (Fig. 3), in FLOPs.
HOFFMANN_BUDGETS = (6e18, 1e19, 3e19, 6e19, 1e20, 3e20, 6e20, 1e21, 3e21)

_FORMATS = (".png", ".svg", ".pdf")


def _figure(ax, ncols: int = 1, width: float = 5.0, height: float = 3.8):
    """A new ``(figure, axes list)`` or the given axes' figure."""
    if ax is not None:
        axes = list(ax) if isinstance(ax, Sequence) else [ax]
        return axes[0].figure, axes
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _preset(law) -> laws.Preset:
    return laws.get(law) if isinstance(law, str) else law


def _colors(k: int):
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(0.1 + 0.8 * i / max(k - 1, 1)) for i in range(k)]


def _finish(ax, xlabel, ylabel, title, *, logy: bool = False, ncols: int = 1):
    """Log x (and y) axes, labels, a small title, legend and major grid."""
    ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncols=ncols, frameon=False)
    ax.grid(True, which="major", alpha=0.3)
    return ax.figure


def save(fig, path: str | os.PathLike, *, dpi: int = 150) -> str:
    """Write ``fig`` to ``path``; the format follows the suffix (PNG, SVG or PDF).

    Returns the path written. Directories are created as needed.
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in _FORMATS:
        raise ValueError(f"path must end in one of {', '.join(_FORMATS)}; got {path!r}")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=dpi, metadata=_metadata(suffix))
    return path


def _metadata(suffix: str) -> dict:
    # Reproducible files: no creation dates in SVG and PDF output.
    if suffix == ".svg":
        return {"Date": None}
    if suffix == ".pdf":
        return {"CreationDate": None}
    return {}


def isoflop_curves(
    law: str | laws.Preset = "chinchilla-hoffmann2022",
    budgets: Sequence[float] = HOFFMANN_BUDGETS,
    *,
    n_range: tuple[float, float] | None = None,
    num: int = 200,
    ax=None,
):
    """Loss against model size along isoFLOP slices, with each slice's minimum.

    The analogue of Hoffmann et al. 2022, Fig. 3 (left), for any two-input law
    (``loss(params, N, D)``): for each budget C, ``L(N, C / (6 N))`` over ``N``,
    and the minimum from :func:`jscale.isoflop.isoflop_minimum`.

    Args:
      law: a preset name or :class:`~jscale.laws.Preset` taking ``(n_params,
        n_tokens)``.
      budgets: the budgets C in FLOPs.
      n_range: the range of N drawn (default: 1e-2..1e2 times the smallest and
        largest minima).
      num: points per curve.
      ax: optional axes to draw into.
    """
    preset = _preset(law)
    c = np.asarray(budgets, dtype=float)
    best = isoflop.isoflop_minimum(preset.family.loss, preset.params, c)
    n_opt = np.asarray(best.n_params, dtype=float)
    lo, hi = n_range or (n_opt.min() / 30.0, n_opt.max() * 30.0)
    n = np.logspace(math.log10(lo), math.log10(hi), num)
    curves = isoflop.isoflop_slice(preset.family.loss, preset.params, c[:, None], n)
    loss = np.asarray(curves.loss, dtype=float)
    fig, (ax,) = _figure(ax)
    for i, color in enumerate(_colors(len(c))):
        ax.plot(n, loss[i], color=color, lw=1.4, label=f"{c[i]:.3g} FLOPs")
        ax.plot(n_opt[i], float(best.loss[i]), "o", color=color, ms=4)
    title = f"isoFLOP curves: {preset.name}"
    return _finish(ax, "parameters N", "loss (nats/token)", title, ncols=2)


def loss_contours(
    law: str | laws.Preset = "chinchilla-hoffmann2022",
    *,
    n_range: tuple[float, float] = (1e7, 1e12),
    d_range: tuple[float, float] = (1e9, 1e14),
    num: int = 160,
    budgets: Sequence[float] | None = None,
    ax=None,
):
    """Loss contours over (N, D) with the law's compute-optimal frontier.

    Also draws Kaplan et al. 2020's frontier (:func:`jscale.allocation.
    kaplan_frontier`) and the 20-tokens-per-parameter reading of Hoffmann et al.
    2022 (:func:`jscale.allocation.tokens_per_param_rule`), and isoFLOP lines
    ``6 N D = C`` (dotted). The analogue of Hoffmann et al. 2022, Fig. 4.
    """
    preset = _preset(law)
    n = np.logspace(*np.log10(n_range), num)
    d = np.logspace(*np.log10(d_range), num)
    loss = np.asarray(preset.loss(n[None, :], d[:, None]), dtype=float)
    fig, (ax,) = _figure(ax, width=5.6, height=4.4)
    filled = ax.contourf(n, d, loss, levels=24, cmap="viridis_r")
    fig.colorbar(filled, ax=ax, label="loss (nats/token)")
    lo = 6.0 * n_range[0] * d_range[0]
    hi = 6.0 * n_range[1] * d_range[1]
    c = np.logspace(math.log10(lo), math.log10(hi), 64)
    plan = allocation.optimal(preset, c)
    ax.plot(
        np.asarray(plan.n_params),
        np.asarray(plan.n_tokens),
        color="crimson",
        lw=2,
        label=f"optimum ({preset.name})",
    )
    nk, dk = allocation.kaplan_frontier(c)
    ax.plot(
        np.asarray(nk),
        np.asarray(dk),
        "--",
        color="black",
        lw=1.2,
        label="Kaplan 2020 frontier",
    )
    nr, dr = allocation.tokens_per_param_rule(c)
    ax.plot(
        np.asarray(nr),
        np.asarray(dr),
        ":",
        color="white",
        lw=1.5,
        label="20 tokens/parameter",
    )
    for budget in budgets or np.logspace(
        math.ceil(math.log10(lo)), math.floor(math.log10(hi)), 5
    ):
        ax.plot(n, budget / (6.0 * n), ":", color="0.8", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(*n_range)
    ax.set_ylim(*d_range)
    ax.set_xlabel("parameters N")
    ax.set_ylabel("training tokens D")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def optimum_vs_compute(
    law: str | laws.Preset = "chinchilla-besiroglu2024",
    budgets: Sequence[float] | None = None,
    *,
    draws: Any = None,
    interval: float = 0.90,
    ax=None,
):
    """N* and D* against compute, with an uncertainty band from parameter draws.

    Args:
      law: a preset (its point estimate gives the central line).
      budgets: budgets in FLOPs (default 1e18..1e26).
      draws: optional parameters of the law's family with a leading axis (e.g.
        :attr:`jscale.fitting.BootstrapResult.params` or Monte Carlo draws); the
        band spans the central ``interval`` of the optima over the draws.
      interval: the band's probability mass.
      ax: optional pair of axes (N*, D*).
    """
    preset = _preset(law)
    c = np.logspace(18, 26, 41) if budgets is None else np.asarray(budgets, float)
    plan = allocation.optimal(preset, c)
    fig, axes = _figure(ax, ncols=2, width=4.4)
    tails = (0.5 - interval / 2.0, 0.5 + interval / 2.0)
    bands = None
    if draws is not None:
        import jax

        params = jax.tree_util.tree_map(lambda v: np.asarray(v)[:, None], draws)
        sample = allocation.optimal(
            laws.Preset(
                preset.name, preset.family, params, preset.citation, preset.units
            ),
            c[None, :],
        )
        bands = {
            key: np.nanquantile(np.asarray(getattr(sample, key)), tails, axis=0)
            for key in ("n_params", "n_tokens")
        }
    labels = {"n_params": "optimal parameters N*", "n_tokens": "optimal tokens D*"}
    for ax_, key in zip(axes, ("n_params", "n_tokens"), strict=True):
        ax_.plot(
            c, np.asarray(getattr(plan, key)), color="C0", lw=1.8, label=preset.name
        )
        if bands is not None:
            ax_.fill_between(
                c, *bands[key], color="C0", alpha=0.25, label=f"{interval:.0%} interval"
            )
        ax_.set_xscale("log")
        ax_.set_yscale("log")
        ax_.set_xlabel("training compute C (FLOPs)")
        ax_.set_ylabel(labels[key])
        ax_.grid(True, which="major", alpha=0.3)
        ax_.legend(fontsize=7, frameon=False)
    return fig


def epochs_curve(
    law: str | laws.Preset = "muennighoff2023",
    compute_flops: float = 1e22,
    unique_tokens: Sequence[float] = (1e9, 1e10, 1e11),
    *,
    max_epochs: float = 1000.0,
    num: int = 200,
    ax=None,
):
    """Data-constrained loss against epochs at a fixed budget (Muennighoff 2023).

    For each unique-data size U, the loss at the best model size for each number
    of epochs ``D / U`` (with ``D = epochs U`` and ``N = C / (6 D)``), and the
    optimum of :func:`jscale.allocation.data_constrained_optimal` as a dot. The
    analogue of Muennighoff et al. 2023, Fig. 3 (right).
    """
    preset = _preset(law)
    u = np.asarray(unique_tokens, dtype=float)
    fig, (ax,) = _figure(ax)
    for ui, color in zip(u, _colors(len(u)), strict=True):
        max_e = min(max_epochs, compute_flops / (6.0 * ui))
        epochs = np.logspace(-2, math.log10(max_e), num)
        d = epochs * ui
        n = compute_flops / (6.0 * d)
        loss = np.asarray(preset.loss(n, d, ui), dtype=float)
        ax.plot(epochs, loss, color=color, lw=1.4, label=f"U = {ui:.3g} tokens")
        best = allocation.optimal(preset, compute_flops, unique_tokens=ui)
        ax.plot(float(best.epochs), float(best.loss), "o", color=color, ms=4)
    ax.axvline(1.0, color="0.6", lw=0.8, ls=":")
    return _finish(
        ax,
        "epochs D / U",
        "loss (nats/token)",
        f"{compute_flops:.3g} FLOPs: {preset.name}",
    )


def inference_shift(
    law: str | laws.Preset = "chinchilla-hoffmann2022",
    compute_flops: float = 1e24,
    inference_tokens: Sequence[float] | None = None,
    *,
    ax=None,
):
    """How N* and D* move as lifetime inference demand grows (Sardana et al. 2024).

    With a fixed lifetime budget (training plus ``2 N`` FLOPs per inference
    token, :func:`jscale.allocation.inference_budget_optimal`), more demand favours
    smaller models trained on more tokens.
    """
    preset = _preset(law)
    t = (
        np.logspace(9, 14, 41)
        if inference_tokens is None
        else np.asarray(inference_tokens, float)
    )
    base = allocation.optimal(preset, compute_flops)
    r = allocation.optimal(preset, compute_flops, inference_tokens=t)
    fig, (ax,) = _figure(ax)
    ax.plot(
        t,
        np.asarray(r.n_params) / float(base.n_params),
        lw=1.8,
        label="N* / N* without inference",
    )
    ax.plot(
        t,
        np.asarray(r.n_tokens) / float(base.n_tokens),
        lw=1.8,
        label="D* / D* without inference",
    )
    ax.axhline(1.0, color="0.6", lw=0.8, ls=":")
    return _finish(
        ax,
        "lifetime inference tokens",
        "ratio to the training-only optimum",
        f"{compute_flops:.3g} lifetime FLOPs: {preset.name}",
        logy=True,
    )


def moe_frontier(
    law: str | laws.Preset = "moe-ludziejewski2025",
    budgets: Sequence[float] = (1e21, 1e22, 1e23, 1e24),
    memory_bytes: Sequence[float] | None = None,
    *,
    ax=None,
):
    """The MoE memory frontier: best loss and expert count against memory.

    For each training budget, :func:`jscale.allocation.moe_optimal` under a cap
    on accelerator memory (weights plus KV cache, ``memory_bytes``; default 10 GB
    to about 3 TB): the loss falls and the optimal number of experts grows as
    memory is added, until the law's expert bound (the analogue of Ludziejewski
    et al. 2025, Fig. 1 / Table 2). Memory is drawn in GB (1e9 bytes).
    """
    preset = _preset(law)
    c = np.asarray(budgets, dtype=float)
    m = (
        np.logspace(1, 3.5, 24) * 1e9
        if memory_bytes is None
        else np.asarray(memory_bytes, float)
    )
    r = allocation.moe_optimal(preset, c[:, None], memory_bytes=m[None, :])
    loss = np.asarray(r.loss, dtype=float)
    experts = np.asarray(r.experts, dtype=float)
    fig, (a1, a2) = _figure(ax, ncols=2, width=4.4)
    gb = m / 1e9
    for i, color in enumerate(_colors(len(c))):
        a1.plot(gb, loss[i], color=color, lw=1.6, label=f"{c[i]:.3g} FLOPs")
        a2.plot(gb, experts[i], color=color, lw=1.6)
    for a in (a1, a2):
        a.set_xscale("log")
        a.set_xlabel("memory for weights + KV cache (GB)")
        a.grid(True, which="major", alpha=0.3)
    a1.set_ylabel("best loss (nats/token)")
    a2.set_ylabel("optimal experts E")
    a2.set_yscale("log")
    a1.legend(fontsize=7, frameon=False)
    a1.set_title(preset.name, fontsize=10)
    return fig


def histogram(
    values: Any = None,
    *,
    edges: Any = None,
    counts: Any = None,
    xlabel: str = "value",
    log: bool = True,
    quantiles: Mapping[str, float] | None = None,
    ax=None,
):
    """A histogram of Monte Carlo draws, from raw values or streamed bin counts.

    Give ``values`` (binned here, in log space when ``log``), or ``edges`` (``k +
    1``) and ``counts`` (``k``) from a streaming statistic. ``quantiles`` (e.g.
    ``{"p5": ..., "p50": ..., "p95": ...}``) are drawn as vertical lines.
    """
    if values is not None:
        v = np.asarray(values, dtype=float).ravel()
        v = v[np.isfinite(v)]
        if edges is None:
            if log:
                lo, hi = np.log10(v.min()), np.log10(v.max())
                edges = np.logspace(lo, hi + 1e-12, 61)
            else:
                edges = np.linspace(v.min(), v.max(), 61)
        counts, edges = np.histogram(v, bins=edges)
    elif edges is None or counts is None:
        raise ValueError("give values, or both edges and counts")
    edges = np.asarray(edges, dtype=float)
    counts = np.asarray(counts, dtype=float)
    fig, (ax,) = _figure(ax)
    ax.stairs(counts / max(counts.sum(), 1.0), edges, fill=True, alpha=0.6)
    for (name, q), color in zip(
        (quantiles or {}).items(), _colors(len(quantiles or {})), strict=True
    ):
        ax.axvline(float(q), color=color, lw=1.2, label=f"{name} = {float(q):.4g}")
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of draws")
    if quantiles:
        ax.legend(fontsize=7, frameon=False)
    return fig


def sobol_bars(
    names: Sequence[str],
    first_order: Any,
    total: Any,
    *,
    first_ci: Any = None,
    total_ci: Any = None,
    title: str = "",
    ax=None,
):
    """Sobol first-order and total indices as grouped bars, with optional CIs.

    ``first_ci`` / ``total_ci``: arrays ``(2, k)`` of interval ends.
    """
    s1 = np.asarray(first_order, dtype=float)
    st = np.asarray(total, dtype=float)
    x = np.arange(len(names))
    fig, (ax,) = _figure(ax, width=max(4.0, 0.8 * len(names) + 2))
    for offset, vals, ci, label in (
        (-0.2, s1, first_ci, "first order $S_i$"),
        (0.2, st, total_ci, "total $S_{Ti}$"),
    ):
        err = None
        if ci is not None:
            ci = np.asarray(ci, dtype=float)
            err = np.abs(ci - vals[None, :])
        ax.bar(x + offset, vals, 0.4, yerr=err, capsize=2, label=label)
    ax.set_xticks(x, list(names))
    ax.set_ylabel("Sobol index")
    ax.set_ylim(0.0, max(1.0, float(np.nanmax(st)) * 1.1))
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    return fig


def fit_residuals(result, data, *, ax=None):
    """Fit diagnostics: observed against predicted loss, and log residuals.

    Args:
      result: a :class:`jscale.fitting.FitResult`.
      data: the :class:`jscale.fitting.Observations` it was fitted to.
      ax: optional pair of axes.
    """
    family = laws.FAMILIES[result.settings["law"]]
    inputs = [
        np.asarray(data.inputs[name], float)
        for name in family.inputs
        if name in data.inputs
    ]
    pred = np.asarray(family.loss(result.params, *inputs), dtype=float)
    obs = np.asarray(data.loss, dtype=float)
    resid = np.log(obs) - np.log(pred)
    fig, (a1, a2) = _figure(ax, ncols=2, width=4.2)
    lo, hi = min(obs.min(), pred.min()), max(obs.max(), pred.max())
    a1.plot([lo, hi], [lo, hi], color="0.6", lw=0.8)
    a1.scatter(pred, obs, s=10, alpha=0.7)
    a1.set_xlabel("predicted loss (nats/token)")
    a1.set_ylabel("observed loss (nats/token)")
    a2.axhline(0.0, color="0.6", lw=0.8)
    a2.scatter(pred, resid, s=10, alpha=0.7)
    a2.set_xlabel("predicted loss (nats/token)")
    a2.set_ylabel("log(observed / predicted)")
    a2.set_title(f"RMS log residual {np.sqrt(np.mean(resid**2)):.2e}", fontsize=9)
    return fig
