"""``composed_optimal``: a planning problem from parts, solved for arrays of
configurations by the engine of :mod:`.composed`.

Any law of ``(N, D)`` (a preset or a user's :class:`~jscale.laws.Preset`), the
data-constrained law, the joint (Ludziejewski 2025) and fine-grained (Krajewski
2024) MoE laws and the precision law (Kumar 2024) compose with:

- modifiers: repeated data (``unique_tokens``, ``repetition_decay``), data
  quality (``quality``);
- costs: training FLOPs per token of the family, inference ``2 N_act`` per token
  (``inference_tokens``), memory of weights and KV cache at a number format
  (``precision``), dollars and energy of a hardware preset;
- constraints, any subset: a compute budget (training, or lifetime with an
  inference demand), ``max_epochs``, memory x devices, the experts (or
  granularity, or training bits) fixed or bounded, bounds on N, an energy budget,
  a wall-clock limit on a number of devices; or a ``target_loss``, with the least
  lifetime FLOPs, dollars or joules as the objective.

Each result says which constraints bind (``binding``) and what each resource is
worth (``shadow_prices``: the derivative of the optimal loss, or of the log of
the optimal cost with a target, per unit of the resource).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from .. import _checks, accounting, laws
from ..laws import Preset, chinchilla, data_constrained, moe
from ._common import (
    AT_LEAST_ONE,
    NONNEGATIVE,
    POSITIVE,
    assemble,
    prepare,
    raise_if_infeasible,
)
from .composed import Structure, Theta, log_memory, solve
from .parts import REPETITION_DECAY, dense, effective_tokens, family_of
from .results import AllocationResult

#: KV-cache tokens held with the weights when a memory cap is given (Ludziejewski
#: 2025, Table 2: 16k tokens).
DEFAULT_CONTEXT = 16384.0
#: Default bound on experts per family (as :func:`jscale.allocation.moe_optimal`).
_MAX_EXPERTS = {moe.JOINT_FAMILY.name: 32.0, moe.KRAJEWSKI_FAMILY.name: 64.0 * 256.0}
#: Resource -> (Theta field whose log it is, option that sets it).
_PRICED = (
    ("compute_flops", "log_c"),
    ("training_flops_cap", "log_cw"),
    ("inference_tokens", "log_t2"),
    ("unique_tokens", "log_u"),
    ("quality", "log_q"),
    ("max_epochs", "log_ecap"),
    ("memory_bytes", "log_mem"),
    ("n_max", "log_nmax"),
    ("n_min", "log_nmin"),
)
_OBJECTIVES = ("flops", "cost", "energy")


def _log(x, dtype):
    return jnp.log(jnp.asarray(x, dtype))


def composed_optimal(
    law: str | Preset,
    compute_flops: ArrayLike | None = None,
    *,
    unique_tokens: ArrayLike | None = None,
    max_epochs: ArrayLike | None = None,
    repetition_decay: ArrayLike | None = None,
    quality: ArrayLike | None = None,
    inference_tokens: ArrayLike | None = None,
    target_loss: ArrayLike | None = None,
    objective: str = "flops",
    experts: ArrayLike | None = None,
    max_experts: ArrayLike | None = None,
    expansion_rate: ArrayLike = 64.0,
    training_bits: ArrayLike | None = None,
    memory_bytes: ArrayLike | None = None,
    devices: ArrayLike = 1.0,
    context: ArrayLike | None = None,
    precision: str | accounting.Precision = "bf16",
    n_min: ArrayLike | None = None,
    n_max: ArrayLike | None = None,
    energy_joules: ArrayLike | None = None,
    wall_clock_hours: ArrayLike | None = None,
    device_count: ArrayLike | None = None,
    hardware: str | accounting.Hardware = "h100-sxm",
    mfu: ArrayLike = 0.4,
    inference_mfu: ArrayLike | None = None,
    pue: ArrayLike = 1.0,
    price_per_device_hour: ArrayLike = 2.0,
    num_grid: int = 8,
    max_steps: int = 48,
    shadow_prices: bool = True,
) -> AllocationResult:
    """The optimal plan for a law and any combination of modifiers and constraints.

    Args:
      law: a preset name, a :class:`~jscale.laws.Preset` (a user's law of
        ``(n_params, n_tokens)`` too).
      compute_flops: the compute budget C (> 0): training FLOPs, or lifetime FLOPs
        (training plus ``2 N_act`` per inference token) with ``inference_tokens``.
      unique_tokens: unique tokens U (> 0): tokens beyond U are repeats, worth
        Muennighoff et al. 2023's effective data.
      max_epochs: at most this many passes over U (> 0; needs ``unique_tokens``).
      repetition_decay: ``R_D*`` of the repetition discount for laws that have none
        of their own (default 15.387756, Muennighoff's fit).
      quality: each token is worth ``q`` reference tokens (> 0).
      inference_tokens: lifetime inference tokens T (>= 0).
      target_loss: reach this loss at the least cost instead of spending a budget.
      objective: with ``target_loss``: ``"flops"`` (lifetime FLOPs), ``"cost"``
        (dollars at ``price_per_device_hour``) or ``"energy"`` (joules).
      experts: fix the experts E (joint MoE) or the granularity G (fine-grained
        MoE), or the training bits (precision law; see ``training_bits``).
      max_experts: bound E (joint MoE; default 32) or the experts ``E G``
        (fine-grained; default 16384).
      expansion_rate: the fine-grained law's expansion rate (> 0).
      training_bits: the precision law's training precision: ``None`` (a
        decision in [1, 32] bits) or a number of bits.
      memory_bytes: memory per device for weights and KV cache (> 0).
      devices: devices holding the model (``memory_bytes x devices`` in all).
      context: KV-cache tokens held with the weights (>= 0; default 16384 where
        memory is capped).
      precision: the number format of the weights and KV cache, and of the
        training FLOPs on ``hardware``.
      n_min, n_max: bounds on N (the law's N; active parameters for MoE).
      energy_joules: an energy budget for training (> 0; with ``hardware``,
        ``mfu`` and ``pue``).
      wall_clock_hours, device_count: a wall-clock limit for training on this many
        devices of ``hardware`` at ``mfu``.
      hardware, mfu, inference_mfu, pue, price_per_device_hour: the accounting.
      num_grid, max_steps: scan points and Newton step cap of every 1-D search.
      shadow_prices: also compute the shadow prices (one forward-mode pass).

    Returns:
      An :class:`AllocationResult` with ``binding`` (a mask; see
      :func:`jscale.allocation.binding_names`) and ``shadow_prices`` (dict).

    Raises:
      ValueError: naming the argument, for an invalid or contradictory option, and
        for a concrete configuration no plan satisfies.
    """
    preset = laws.get(law) if isinstance(law, str) else law
    if not isinstance(preset, Preset):
        raise ValueError(f"law must be a preset name or a Preset; got {law!r}")
    family = family_of(preset)
    params = preset.params
    if family.repeats and unique_tokens is None:
        # Without a data limit Muennighoff's law is the Chinchilla form.
        params = chinchilla.ChinchillaParams(*params[:5])
        family = dense(chinchilla.loss)
    if objective not in _OBJECTIVES:
        raise ValueError(f"objective must be one of {_OBJECTIVES}; got {objective!r}")
    target = target_loss is not None
    if target and compute_flops is not None:
        raise ValueError(
            "give compute_flops (a budget) or target_loss (a target), not both"
        )
    if target and (energy_joules is not None or wall_clock_hours is not None):
        raise ValueError(
            "energy_joules and wall_clock_hours bound a budget; with target_loss "
            "the objective is the cost itself"
        )
    if max_epochs is not None and unique_tokens is None:
        raise ValueError(
            "max_epochs needs unique_tokens (the data it counts passes of)"
        )
    if (wall_clock_hours is None) != (device_count is None):
        raise ValueError("wall_clock_hours and device_count go together")
    if not target and compute_flops is None and energy_joules is None:
        if wall_clock_hours is None:
            raise ValueError(
                "give compute_flops, energy_joules or wall_clock_hours (a budget), "
                "or target_loss"
            )
    decision = family.decision
    if decision is None:
        for name, value in (("experts", experts), ("max_experts", max_experts)):
            if value is not None:
                raise ValueError(
                    f"{name} applies to MoE laws; {preset.name!r} is of family "
                    f"{preset.family.name!r}"
                )
    if training_bits is not None and decision != "bits":
        raise ValueError(
            "training_bits applies to the precision law (precision-kumar2024); "
            f"{preset.name!r} is of family {preset.family.name!r}"
        )
    if experts is not None and max_experts is not None:
        raise ValueError("give experts (fixed) or max_experts (a bound), not both")
    fixed = experts if decision != "bits" else training_bits
    prec = accounting.get_precision(precision)
    memory = None
    if memory_bytes is not None:
        memory = _checks.check_positive("memory_bytes", memory_bytes) * (
            _checks.check_positive("devices", devices)
        )
    if context is None:  # MoE plans report their memory with the KV cache
        moe_family = decision in ("experts", "granularity")
        context = DEFAULT_CONTEXT if memory is not None or moe_family else 0.0
    # Budgets in FLOPs from energy and wall clock (training FLOPs).
    caps = []
    if energy_joules is not None:
        caps.append(accounting.energy_to_flops(energy_joules, hardware, prec, mfu, pue))
    if wall_clock_hours is not None:
        hours = _checks.check_positive("wall_clock_hours", wall_clock_hours)
        count = _checks.check_positive("device_count", device_count)
        caps.append(
            accounting.device_hours_to_flops(hours * count, hardware, prec, mfu)
        )
    train_cap = caps[0] if len(caps) == 1 else (
        jnp.minimum(*caps) if caps else None
    )  # fmt: skip
    # Cost per FLOP of the objective (target mode).
    peak = accounting.device_flops_per_second(hardware, prec, 1.0)
    mfu_inf = mfu if inference_mfu is None else inference_mfu
    if objective == "flops":
        w_train, w_inf = 1.0, 1.0
    elif objective == "cost":
        w_train = price_per_device_hour / (3600.0 * peak * mfu)
        w_inf = price_per_device_hour / (3600.0 * peak * mfu_inf)
    else:
        power = accounting.get_hardware(hardware).power_watts * pue
        w_train, w_inf = power / (peak * mfu), power / (peak * mfu_inf)
    y_default = family.y_range
    if decision in ("experts", "granularity"):
        e_max = _MAX_EXPERTS[preset.family.name] if max_experts is None else max_experts
    rules = {
        "compute_flops": (compute_flops, POSITIVE._replace(safe=1e21)),
        "training_flops_cap": (train_cap, POSITIVE._replace(safe=1e30)),
        "unique_tokens": (unique_tokens, POSITIVE._replace(safe=1e30)),
        "max_epochs": (max_epochs, POSITIVE._replace(safe=1.0)),
        "repetition_decay": (repetition_decay, POSITIVE._replace(safe=15.0)),
        "quality": (quality, POSITIVE._replace(safe=1.0)),
        "inference_tokens": (inference_tokens, NONNEGATIVE._replace(safe=0.0)),
        "target_loss": (target_loss, POSITIVE._replace(safe=2.0)),
        "memory_bytes": (memory, POSITIVE._replace(safe=1e30)),
        "context": (context, NONNEGATIVE._replace(safe=0.0)),
        "n_min": (n_min, POSITIVE._replace(safe=1.0)),
        "n_max": (n_max, POSITIVE._replace(safe=1e25)),
        "experts": (
            fixed,
            (AT_LEAST_ONE if decision != "bits" else POSITIVE)._replace(safe=4.0),
        ),
        "max_experts": (
            e_max if decision in ("experts", "granularity") else None,
            AT_LEAST_ONE._replace(safe=8.0),
        ),
        "expansion_rate": (
            expansion_rate if family.name == moe.KRAJEWSKI_FAMILY.name else None,
            POSITIVE._replace(safe=64.0),
        ),
        "w_train": (w_train, POSITIVE._replace(safe=1.0)),
        "w_inf": (w_inf, POSITIVE._replace(safe=1.0)),
    }
    batch = prepare(params, rules)
    a = dict(zip(rules, batch.arrays, strict=True))
    dtype = jnp.result_type(*[v for v in batch.arrays if v is not None])
    size = batch.valid.shape[0]

    def arr(name, default):
        v = a[name]
        return jnp.full((size,), default, dtype) if v is None else v

    t = a["inference_tokens"]
    inference = t is not None
    log_t2 = jnp.log(2.0 * arr("inference_tokens", 0.0))
    if inference:  # T = 0 contributes nothing: a tiny stand-in keeps logs finite
        log_t2 = jnp.maximum(log_t2, jnp.log(jnp.finfo(dtype).tiny))
    aux: tuple = ()
    if family.name == moe.KRAJEWSKI_FAMILY.name:
        log_er = jnp.log(arr("expansion_rate", 64.0))
        aux = (
            log_er,
            jnp.full((size,), math.log(moe.KRAJEWSKI_C_F), dtype),
            jnp.full((size,), math.log(moe.KRAJEWSKI_C_R), dtype),
        )
    # The second decision's range (y: log experts / log granularity / bits).
    if decision in ("experts", "granularity"):
        y_hi = jnp.log(arr("max_experts", 32.0))
        if family.name == moe.KRAJEWSKI_FAMILY.name:
            y_hi = y_hi - aux[0]  # experts = E G: G <= max_experts / E
        y_lo = jnp.zeros_like(y_hi)
    elif decision == "bits":
        y_lo = jnp.full((size,), y_default[0], dtype)
        y_hi = jnp.full((size,), y_default[1], dtype)
    else:
        y_lo = y_hi = jnp.zeros((size,), dtype)
    outer = decision is not None and fixed is None
    if fixed is not None:
        y_fixed = a["experts"] if decision == "bits" else jnp.log(a["experts"])
        y_lo = y_hi = y_fixed
    r_d = arr("repetition_decay", REPETITION_DECAY)
    th = Theta(
        p=batch.params,
        aux=aux,
        log_c=jnp.log(arr("compute_flops", 1.0)),
        log_cw=jnp.log(arr("training_flops_cap", 1.0)),
        log_t2=log_t2,
        log_u=jnp.log(arr("unique_tokens", 1.0)),
        log_q=jnp.log(arr("quality", 1.0)),
        r_d=r_d,
        log_ecap=jnp.log(arr("max_epochs", 1.0)),
        log_mem=jnp.log(arr("memory_bytes", 1.0) / prec.bytes_per_value),
        log_ctx=jnp.log(jnp.maximum(arr("context", 0.0), 1e-30)),
        log_nmin=jnp.log(arr("n_min", 1.0)),
        log_nmax=jnp.log(arr("n_max", 1.0)),
        y_lo=y_lo,
        y_hi=y_hi,
        target=arr("target_loss", 0.0),
        log_w_train=jnp.log(arr("w_train", 1.0)),
        log_w_inf=jnp.log(arr("w_inf", 1.0)),
    )
    s = Structure(
        family=family,
        budget=not target and compute_flops is not None,
        train_cap=not target and train_cap is not None,
        inference=inference,
        repeat=unique_tokens is not None,
        epochs=max_epochs is not None,
        memory=memory is not None,
        kv=bool(np.any(np.asarray(context) > 0)),
        n_min=n_min is not None,
        n_max=n_max is not None,
        outer=outer,
        target=target,
        num_grid=num_grid,
        max_steps=max_steps,
    )
    present = {
        "compute_flops": s.budget,
        "training_flops_cap": s.train_cap,
        "inference_tokens": inference,
        "unique_tokens": s.repeat,
        "quality": quality is not None,
        "max_epochs": s.epochs,
        "memory_bytes": s.memory,
        "n_max": s.n_max,
        "n_min": s.n_min,
    }
    priced = [(name, field) for name, field in _PRICED if present[name]]
    price_fields = tuple(f for _, f in priced) if shadow_prices else ()
    sol = solve(s, price_fields, th)
    return _result(
        s, sol, batch, a, th, priced if shadow_prices else [], prec, objective,
        w_train, preset,
    )  # fmt: skip


def _result(s, sol, batch, a, th, priced, prec, objective, w_train, preset):
    f = s.family
    n = jnp.exp(sol.log_n)
    d = jnp.exp(sol.log_d)
    train = jnp.exp(f.log_fpt(sol.u, sol.y, th.aux) + sol.log_d)
    scenario = {}
    if s.inference:
        inf = jnp.exp(sol.log_n + th.log_t2)
        scenario["inference_flops"] = inf
        scenario["lifetime_flops"] = train + inf
    if s.repeat:
        scenario["epochs"] = d / jnp.exp(th.log_u)
    if s.repeat or a["quality"] is not None:
        log_u = th.log_u if s.repeat else None
        log_eff, _ = effective_tokens(f, sol.log_d, log_u, th.log_q, th.r_d)
        if f.repeats:  # Muennighoff's law: D' with its own R_D*
            log_eff = data_constrained.log_effective_data(
                th.p, sol.log_d + th.log_q, th.log_u + th.log_q
            )
        scenario["effective_tokens"] = jnp.exp(log_eff)
    if f.decision in ("experts", "granularity"):
        total = jnp.exp(f.log_total(sol.u, sol.y, th.aux))
        scenario["n_total_params"] = total
        if f.name == moe.KRAJEWSKI_FAMILY.name:
            scenario["granularity"] = jnp.exp(sol.y)
            scenario["experts"] = jnp.exp(sol.y + th.aux[0])
        else:
            scenario["experts"] = jnp.exp(sol.y)
    if f.decision == "bits":
        scenario["bits"] = sol.y
    if s.memory or f.decision in ("experts", "granularity"):
        log_vals = log_memory(s, th, sol.u, sol.y)
        scenario["memory_bytes"] = prec.bytes_per_value * jnp.exp(log_vals)
    if s.target and objective != "flops":
        value = jnp.exp(sol.objective)
        scenario["cost_usd" if objective == "cost" else "energy_joules"] = value
    if priced:
        prices = {}
        for i, (name, field) in enumerate(priced):
            per_log = sol.prices[:, i]
            level = jnp.exp(getattr(th, field))
            if field == "log_t2":
                level = level / 2.0
            if field == "log_mem":
                level = level * prec.bytes_per_value
            prices[name] = per_log / level
        scenario["shadow_prices"] = prices
    res = assemble(
        sol.status, n, d, sol.loss, train, sol.iterations, sol.grad_norm,
        sol.violation, valid=batch.valid, shape=batch.shape, **scenario,
    )  # fmt: skip
    binding = jnp.where(batch.valid, sol.binding, 0).reshape(batch.shape)
    res = res._replace(binding=binding)
    raise_if_infeasible(
        res.status,
        lambda idx: (
            f"no plan for {preset.name!r} satisfies every constraint (the budget, "
            "memory, epochs, bounds on N or the target cannot all hold)"
        ),
    )
    return res


__all__ = ["DEFAULT_CONTEXT", "composed_optimal"]
