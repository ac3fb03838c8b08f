"""The planner: one budget, several laws side by side, with uncertainty and accounting.

:func:`plan` turns a budget (GPUs for a time, FLOPs, dollars or energy) into the
compute-optimal model under several published laws:

- Hoffmann et al. 2022 (``chinchilla-hoffmann2022``, Approach 3, Eq. 4 closed form);
- Besiroglu et al. 2024 (``chinchilla-besiroglu2024``), with a 90% interval from
  their bootstrap covariance (:data:`jscale.laws.chinchilla.BESIROGLU2024_COVARIANCE`:
  a multivariate normal in ``(log A, log B, log E, alpha, beta)``);
- Muennighoff et al. 2023 (``muennighoff2023``) when the unique data is limited;
- Sardana et al. 2024's inference-aware optimum (under Besiroglu's law) when a
  lifetime inference demand is given: the budget then pays for training and
  ``2 N`` FLOPs per inference token.

Each row also carries the GPU-hours, energy and cost of its compute on the chosen
hardware. The loss interval is the spread of the planned model's loss (fixed N and
D) across the law's parameter draws; the intervals of N* and D* are the spread of
the optimum itself. Laws without a published uncertainty get ``None``.

>>> from jscale import planner
>>> p = planner.plan(compute_flops=1e24, num_draws=256)
>>> [row["law"] for row in p["plans"]]
['chinchilla-hoffmann2022', 'chinchilla-besiroglu2024']
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import _checks, accounting, allocation, laws
from .laws import chinchilla

#: The budget :func:`plan` uses when none is given (and says so).
EXAMPLE = {
    "hardware": "h100-sxm",
    "count": 1024,
    "days": 30.0,
    "mfu": 0.4,
    "price_per_device_hour": 2.0,
}

_EXAMPLE_TEXT = (
    "no budget given: planning the embedded example, 1024 x h100-sxm for 30 days at "
    "MFU 0.4, $2.00 per GPU-hour"
)


def besiroglu_draws(key: jax.Array, num_draws: int) -> chinchilla.ChinchillaParams:
    """``num_draws`` laws drawn from Besiroglu 2024's bootstrap distribution.

    A multivariate normal centred on their estimate, with the covariance of
    :func:`jscale.laws.chinchilla.besiroglu2024_covariance`, drawn in the
    coordinates the covariance was published in
    (:data:`~jscale.laws.chinchilla.BESIROGLU2024_COORDS`: ``log A, log B, log E,
    alpha, beta``) and mapped back to the fields by name. Leaves have shape
    ``(num_draws,)`` in the default float dtype.

    Examples:
      >>> import jax
      >>> p = besiroglu_draws(jax.random.key(0), 8)
      >>> p.A.shape
      (8,)
    """
    num_draws = _checks.check_whole("num_draws", num_draws)
    coords = chinchilla.BESIROGLU2024_COORDS
    est = chinchilla.BESIROGLU2024.params
    center = {
        "log_E": math.log(est.E),
        "log_A": math.log(est.A),
        "log_B": math.log(est.B),
        "alpha": est.alpha,
        "beta": est.beta,
    }
    mean = jnp.asarray([center[c] for c in coords])
    cov = jnp.asarray(chinchilla.besiroglu2024_covariance(coords), mean.dtype)
    z = jax.random.multivariate_normal(key, mean, cov, (num_draws,), dtype=mean.dtype)
    at = dict(zip(coords, z.T, strict=True))
    return chinchilla.ChinchillaParams(
        E=jnp.exp(at["log_E"]),
        A=jnp.exp(at["log_A"]),
        B=jnp.exp(at["log_B"]),
        alpha=at["alpha"],
        beta=at["beta"],
    )


def _interval(x, level: float) -> list[float] | None:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None
    lo, hi = np.quantile(x, [0.5 - level / 2.0, 0.5 + level / 2.0])
    return [float(lo), float(hi)]


def _json_float(x) -> float | None:
    value = float(np.asarray(x))
    return value if math.isfinite(value) else None


def _budget_flops(
    compute_flops,
    hardware,
    count,
    hours,
    days,
    usd,
    energy_kwh,
    mfu,
    precision,
    price,
    pue,
) -> tuple[float, dict]:
    """FLOPs from exactly one kind of budget, and a description of it."""
    given = {
        "compute_flops": compute_flops is not None,
        "count/hours/days": count is not None or hours is not None or days is not None,
        "usd": usd is not None,
        "energy_kwh": energy_kwh is not None,
    }
    kinds = [k for k, v in given.items() if v]
    if len(kinds) > 1:
        raise ValueError(
            "give one budget: compute_flops, GPUs (count with hours or days), usd or "
            f"energy_kwh; got {', '.join(kinds)}"
        )
    desc: dict[str, Any] = {}
    if compute_flops is not None:
        c = float(np.asarray(_checks.check_positive("compute_flops", compute_flops)))
        desc["kind"] = "flops"
    elif given["count/hours/days"]:
        if hours is None and days is None:
            raise ValueError(
                "count needs exactly one of hours or days (a GPU budget); got neither"
            )
        if hours is not None and days is not None:
            raise ValueError(
                "days and hours are both given; a GPU budget needs exactly one of "
                "hours or days"
            )
        b = accounting.budget(
            hardware,
            1 if count is None else count,
            hours=hours,
            days=days,
            mfu=mfu,
            precision=precision,
        )
        c = float(b.compute_flops)
        desc.update(
            kind="gpus",
            count=1 if count is None else count,
            hours=float(hours if hours is not None else 24.0 * days),
        )
    elif usd is not None:
        if price is None:
            raise ValueError(
                "price_per_device_hour is needed to turn a dollar budget (usd) into "
                "GPU-hours"
            )
        c = float(accounting.cost_to_flops(usd, price, hardware, precision, mfu))
        desc.update(kind="usd", usd=float(usd))
    elif energy_kwh is not None:
        joules = _checks.check_positive("energy_kwh", energy_kwh) * 3.6e6
        c = float(accounting.energy_to_flops(joules, hardware, precision, mfu, pue))
        desc.update(kind="energy", energy_kwh=float(energy_kwh))
    else:  # pragma: no cover - handled by plan()
        raise AssertionError
    return c, desc


def _costs(flops, hardware, precision, mfu, price, pue) -> dict:
    hours = accounting.flops_to_device_hours(flops, hardware, precision, mfu)
    joules = accounting.energy_joules(hours, hardware, pue)
    return {
        "gpu_hours": _json_float(hours),
        "energy_kwh": _json_float(joules / 3.6e6),
        "cost_usd": (
            None if price is None else _json_float(accounting.cost_usd(hours, price))
        ),
    }


def _row(law: str, r, loss_draws=None, opt_draws=None, level: float = 0.9) -> dict:
    """One law's row: :func:`jscale.allocation.to_row` of its plan, then the
    intervals over the parameter draws (``None`` where the law has none)."""
    row = {"law": law, **allocation.to_row(r)}
    row.setdefault("epochs", None)
    row["loss_interval"] = None if loss_draws is None else _interval(loss_draws, level)
    row["n_params_interval"] = row["n_tokens_interval"] = None
    if opt_draws is not None:
        row["n_params_interval"] = _interval(opt_draws.n_params, level)
        row["n_tokens_interval"] = _interval(opt_draws.n_tokens, level)
    return row


def plan(
    *,
    compute_flops: float | None = None,
    hardware: str = "h100-sxm",
    count: int | None = None,
    hours: float | None = None,
    days: float | None = None,
    usd: float | None = None,
    energy_kwh: float | None = None,
    mfu: float = 0.4,
    precision: str = "bf16",
    price_per_device_hour: float | None = None,
    pue: float = 1.0,
    unique_tokens: float | None = None,
    inference_tokens: float | None = None,
    interval: float = 0.90,
    num_draws: int = 4000,
    seed: int = 0,
    draws: chinchilla.ChinchillaParams | None = None,
) -> dict:
    """Plan one budget under several laws (see the module docstring).

    Give at most one budget: ``compute_flops``; GPUs (``count`` of ``hardware``
    for ``hours`` or ``days`` at ``mfu``); ``usd`` (with
    ``price_per_device_hour``); or ``energy_kwh`` (at the hardware's board power
    and ``pue``). With none, the embedded :data:`EXAMPLE` is planned and the
    result's ``"example"`` says so.

    Args:
      compute_flops, hardware, count, hours, days, usd, energy_kwh, mfu,
        precision, price_per_device_hour, pue: the budget and the hardware that
        turns FLOPs into GPU-hours, energy and dollars.
      unique_tokens: unique training tokens available; adds the data-constrained
        plan (Muennighoff 2023).
      inference_tokens: lifetime inference tokens; adds the inference-aware plan
        (Sardana 2024) under Besiroglu's law.
      interval: the probability mass of the reported intervals.
      num_draws: how many parameter draws of Besiroglu's law (at least 2) give
        the intervals.
      seed: the draws' random seed.
      draws: the parameter draws themselves (a :class:`ChinchillaParams` with a
        leading axis, e.g. from :func:`besiroglu_draws`), instead of
        ``num_draws`` drawn from ``seed``: pass the same draws to the figures
        that show this plan's uncertainty.

    Returns:
      A JSON-ready dict: ``budget`` (what was planned, in FLOPs and the other
      units), ``plans`` (one row per law: ``law``, ``n_params``, ``n_tokens``,
      ``tokens_per_param``, ``epochs``, ``loss``, ``loss_interval``,
      ``n_params_interval``, ``n_tokens_interval``, ``compute_flops``,
      ``gpu_hours``, ``energy_kwh``, ``cost_usd``, ``status``), ``interval`` and
      ``example`` (a sentence, or ``None``).
    """
    _checks.check_range("interval", interval, upper=1.0)
    _checks.check_fraction("mfu", mfu)  # also where the embedded example replaces it
    if draws is None:
        num_draws = _checks.check_whole("num_draws", num_draws, minimum=2)
    elif np.ndim(draws.E) != 1 or np.shape(draws.E)[0] < 2:
        raise ValueError(
            "draws must hold at least 2 draws along one leading axis; got leaves "
            f"of shape {np.shape(draws.E)}"
        )
    example = None
    if all(v is None for v in (compute_flops, count, hours, days, usd, energy_kwh)):
        example = _EXAMPLE_TEXT
        hardware, count, days = EXAMPLE["hardware"], EXAMPLE["count"], EXAMPLE["days"]
        mfu = EXAMPLE["mfu"]
        if price_per_device_hour is None:
            price_per_device_hour = EXAMPLE["price_per_device_hour"]
    flops, desc = _budget_flops(
        compute_flops,
        hardware,
        count,
        hours,
        days,
        usd,
        energy_kwh,
        mfu,
        precision,
        price_per_device_hour,
        pue,
    )
    desc.update(
        compute_flops=flops,
        hardware=hardware,
        mfu=mfu,
        precision=precision,
        price_per_device_hour=price_per_device_hour,
        pue=pue,
        **_costs(flops, hardware, precision, mfu, price_per_device_hour, pue),
    )
    if draws is None:
        draws = besiroglu_draws(jax.random.key(seed), num_draws)
    rows = []

    hoff = laws.get("chinchilla-hoffmann2022")
    rows.append(_row(hoff.name, allocation.optimal(hoff, flops), level=interval))

    bes = laws.get("chinchilla-besiroglu2024")
    r = allocation.optimal(bes, flops)
    loss_draws = chinchilla.loss(draws, r.n_params, r.n_tokens)
    opt_draws = allocation.chinchilla_optimal(draws, flops)
    rows.append(_row(bes.name, r, loss_draws, opt_draws, interval))

    if unique_tokens is not None:
        dc = laws.get("muennighoff2023")
        r = allocation.optimal(dc, flops, unique_tokens=unique_tokens)
        row = _row(dc.name, r, level=interval)
        row["unique_tokens"] = float(unique_tokens)
        rows.append(row)

    if inference_tokens is not None:
        r = allocation.inference_budget_optimal(
            chinchilla.loss, bes.params, flops, inference_tokens
        )
        loss_draws = chinchilla.loss(draws, r.n_params, r.n_tokens)
        opt_draws = allocation.inference_budget_optimal(
            chinchilla.loss, draws, flops, inference_tokens
        )
        row = _row(f"{bes.name} + inference", r, loss_draws, opt_draws, interval)
        row["inference_tokens"] = float(inference_tokens)
        rows.append(row)

    for row in rows:
        spent = row.get("lifetime_flops") or row["compute_flops"]
        row.update(_costs(spent, hardware, precision, mfu, price_per_device_hour, pue))
    return {"budget": desc, "plans": rows, "interval": interval, "example": example}
