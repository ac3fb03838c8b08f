"""The parts a planning problem is composed of: how a law's model is sized, what it
costs, and the modifiers on its inputs (:mod:`jscale.allocation.composed` solves them).

A **family** says, in log space, how one size coordinate ``u`` and an optional
second decision ``y`` (experts, granularity or training bits) become what the law
and the costs see:

- ``log_n(u, y, aux)``: the active parameters (the result's ``n_params``);
- ``log_total(u, y, aux)``: the parameters held in memory (all experts);
- ``log_fpt(u, y, aux)``: training FLOPs per token (``6 N`` for dense laws,
  ``6 N_act`` for MoE, Krajewski 2024's Eq. 10 with routing, Kumar 2024's
  ``(6/16) N P`` at ``P`` training bits);
- ``log_kv(u, y, aux)``: KV-cache values per cached token;
- ``log_loss(p, u, y, aux, log_d, log_u)``: the law at the model ``(u, y)`` and
  effective tokens (Krajewski's law sees all non-embedding parameters, the
  others the active ones).

Dense laws size by ``u = log N`` (the KV cache assumes the block geometry of
Ludziejewski et al. 2025, App. A.1: ``d_model = 64 n_blocks``, 12 d_model^2 per
block, so ``d_model = (16 N / 3)^(1/3)``); the MoE families by ``u = log d_model``,
as their papers parametrize them. ``aux`` holds per-configuration constants of a
family (Krajewski's expansion rate and FLOP coefficients, Kumar's post-training
bits), already in logs.

**Modifiers** on the tokens: repeated data (Muennighoff et al. 2023's effective
data ``D' = U + U R_D* (1 - exp(-(D/U - 1)/R_D*))``; the data-constrained law uses
its own ``R_D*`` and ``R_N*``) and data quality (the law sees ``q D'``; for the
data-constrained law ``q D`` and ``q U``, which is the same since ``D'`` is
homogeneous in ``(D, U)``). Composing these with laws other than Muennighoff's is
our assumption, not a published result: see ``docs/composition.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp

from ..laws import data_constrained, moe, precision
from .engine import dc_log_loss, log_loss_of

#: Muennighoff et al. 2023's fitted ``R_D*`` (the repetition e-folding number of
#: their data-constrained law, huggingface/datablations), used for laws that have
#: none of their own.
REPETITION_DECAY = 15.387756
#: ``log 64``: width of a block, ``d_model = 64 n_blocks`` (Ludziejewski 2025,
#: App. A.1; Krajewski 2024, Sec. 6.1).
LOG_WIDTH = math.log(64.0)
_LOG6 = math.log(6.0)
#: Largest size coordinate searched: N up to 1e25 parameters.
_LOG_N_MAX = math.log(1e25)


class Family(NamedTuple):
    """How a law's model is sized and what it costs (static: compiled once).

    Attributes:
      name: the family, as in :mod:`jscale.laws`.
      decision: the second decision, ``"experts"``, ``"granularity"``, ``"bits"``
        or ``None``; ``y`` is its log (bits: the number itself).
      log_loss: ``(p, u, y, aux, log_d, log_u) -> loss``; ``log_u`` is the
        (quality-scaled) unique data for a law that repeats data itself, else
        ``None``.
      log_n, log_total, log_fpt, log_kv: ``(u, y, aux) -> log`` of the active
        parameters (reported as ``n_params``; inference costs ``2 N_act`` per
        token), the parameters in memory, training FLOPs per token and KV values
        per token.
      u_min, u_max: the size coordinate's range.
      repeats: the law takes the unique tokens itself (Muennighoff's law).
      y_range: default ``(lo, hi)`` of ``y`` when it is a decision.
    """

    name: str
    decision: str | None
    log_loss: Callable
    log_n: Callable
    log_total: Callable
    log_fpt: Callable
    log_kv: Callable
    u_min: float
    u_max: float
    repeats: bool = False
    y_range: tuple[float, float] = (0.0, 0.0)


# ----------------------------------------------------------------------- dense


def _identity(u, y, aux):
    return u


def _dense_fpt(u, y, aux):
    return _LOG6 + u


def _dense_kv(u, y, aux):
    """``2 n_blocks d_model = 2 d^2 / 64`` with ``N = 12 d^3 / 64``."""
    return math.log(2.0 / 64.0) + (2.0 / 3.0) * (u + math.log(16.0 / 3.0))


class _DenseLoss(NamedTuple):
    log_loss: Callable

    def __call__(self, p, u, y, aux, log_d, log_u):
        return self.log_loss(p, u, log_d)


def _dc_loss(p, u, y, aux, log_d, log_u):
    return dc_log_loss(p, u, log_d, log_u)


def dense(law: Callable) -> Family:
    """A law of ``(N, D)``: Chinchilla, Kaplan, a fitted or a user's law."""
    log_loss = log_loss_of(law)[0]
    return Family(
        "dense", None, _DenseLoss(log_loss), _identity, _identity, _dense_fpt,
        _dense_kv, 0.0, _LOG_N_MAX,
    )  # fmt: skip


#: Muennighoff et al. 2023's law with the unique tokens as its own input.
DATA_CONSTRAINED = Family(
    data_constrained.FAMILY.name, None, _dc_loss, _identity, _identity, _dense_fpt,
    _dense_kv, 0.0, _LOG_N_MAX, repeats=True,
)  # fmt: skip


# ------------------------------------------------- Ludziejewski 2025 (joint MoE)

_LOG_2V = math.log(2.0 * moe.JOINT_VOCAB)


def _joint_n(u, y, aux):
    """``log N_act``, ``N_act = 2 d V + 13 d^3 / 64`` (App. A.1, top-1 routing)."""
    return jnp.logaddexp(_LOG_2V + u, math.log(13.0 / 64.0) + 3.0 * u)


def _joint_total(u, y, aux):
    """``log N_total``, ``2 d V + (4 + 9E) d^3 / 64``."""
    return jnp.logaddexp(
        _LOG_2V + u, jnp.log(4.0 + 9.0 * jnp.exp(y)) - LOG_WIDTH + 3.0 * u
    )


def _joint_fpt(u, y, aux):
    return _LOG6 + _joint_n(u, y, aux)


def _block_kv(u, y, aux):
    """``2 n_blocks d_model = 2 d^2 / 64`` values per cached token."""
    return math.log(2.0) - LOG_WIDTH + 2.0 * u


def _joint_loss(p, u, y, aux, log_d, log_u):
    """Eq. 6 with ``log Ê`` from the experts ``E = e^y``."""
    log_n = _joint_n(u, y, aux)
    log_e = moe.log_expert_hat(jnp.exp(y), p.e_start, p.e_max)
    n_term = jnp.log(p.a) + p.delta * log_e + (p.alpha + p.gamma * log_e) * log_n
    d_term = jnp.log(p.b) + p.omega * log_e + (p.beta + p.zeta * log_e) * log_d
    return jnp.exp(n_term) + jnp.exp(d_term) + p.c


JOINT_MOE = Family(
    moe.JOINT_FAMILY.name, "experts", _joint_loss, _joint_n, _joint_total,
    _joint_fpt, _block_kv, LOG_WIDTH, _LOG_N_MAX / 3.0,
    y_range=(0.0, math.log(32.0)),
)  # fmt: skip


# ---------------------------------------- Krajewski 2024 (fine-grained MoE)


def _kraj_n(u, y, aux):
    """``log N``, ``N = (8E + 4) d^3 / 64`` non-embedding (Sec. 6.1); ``aux[0]``
    is ``log E``, the expansion rate."""
    return jnp.log(8.0 * jnp.exp(aux[0]) + 4.0) - LOG_WIDTH + 3.0 * u


def _kraj_fpt(u, y, aux):
    """``log`` of ``(12 d^2 c_f + d E G c_r) n_blocks`` (Eq. 10); ``aux`` is
    ``(log E, log c_f, log c_r)``."""
    log_er, log_cf, log_cr = aux
    return (
        jnp.logaddexp(math.log(12.0) + log_cf + 2.0 * u, u + log_er + y + log_cr)
        + u
        - LOG_WIDTH
    )


def _kraj_active(u, y, aux):
    """``log`` of the dense-equivalent active parameters, ``12 d^3 / 64``."""
    return math.log(12.0) - LOG_WIDTH + 3.0 * u


def _kraj_loss(p, u, y, aux, log_d, log_u):
    """Eq. 9: the law sees every non-embedding parameter, ``(8E + 4) d^3 / 64``."""
    log_n = _kraj_n(u, y, aux)
    coef = p.g * jnp.exp(-p.gamma * y) + p.a
    return (
        p.c
        + jnp.exp(jnp.log(coef) - p.alpha * log_n)
        + jnp.exp(jnp.log(p.b) - p.beta * log_d)
    )


FINE_GRAINED_MOE = Family(
    moe.KRAJEWSKI_FAMILY.name, "granularity", _kraj_loss, _kraj_active, _kraj_n,
    _kraj_fpt, _block_kv, LOG_WIDTH, _LOG_N_MAX / 3.0,
    y_range=(0.0, math.log(256.0)),
)  # fmt: skip


# --------------------------------------------------- Kumar 2024 (precision)

_LOG_K = math.log(6.0 / 16.0)


def _precision_fpt(u, y, aux):
    """``log((6/16) N P)``: Kumar 2024's cost model (Sec. 4.3, Eq. 5)."""
    return _LOG_K + u + jnp.log(y)


def _precision_loss(p, u, y, aux, log_d, log_u):
    """Kumar 2024's unified law trained at ``y`` bits (weights, activations and KV
    cache), without post-training quantization."""
    log_n_eff = precision.log_effective_params(p, u, y, y, y)
    return (
        jnp.exp(jnp.log(p.A) - p.alpha * log_n_eff)
        + jnp.exp(jnp.log(p.B) - p.beta * log_d)
        + p.E
    )


PRECISION = Family(
    precision.FAMILY.name, "bits", _precision_loss, _identity, _identity,
    _precision_fpt, _dense_kv, 0.0, _LOG_N_MAX, y_range=(1.0, 32.0),
)  # fmt: skip


def family_of(preset) -> Family:
    """The :class:`Family` of a preset's law (or of a user's law of ``(N, D)``)."""
    name = preset.family.name
    if name == data_constrained.FAMILY.name:
        return DATA_CONSTRAINED
    if name == moe.JOINT_FAMILY.name:
        return JOINT_MOE
    if name == moe.KRAJEWSKI_FAMILY.name:
        return FINE_GRAINED_MOE
    if name == precision.FAMILY.name:
        return PRECISION
    inputs = preset.family.inputs
    if tuple(inputs[:2]) != ("n_params", "n_tokens") or len(inputs) != 2:
        raise ValueError(
            f"law {preset.name!r} (family {name!r}, inputs {', '.join(inputs)}) "
            "cannot be planned: the planner composes laws of (n_params, n_tokens), "
            "the data-constrained law, the joint and fine-grained MoE laws and the "
            "precision law"
        )
    return dense(preset.family.loss)


# ----------------------------------------------------------------- modifiers


def effective_tokens(family: Family, log_d, log_u, log_q, r_d):
    """``(log D_law, log U_law)``: the tokens the law sees after repetition and
    quality. ``log_u`` is ``None`` without a unique-data limit."""
    if family.repeats:
        return log_d + log_q, log_u + log_q
    if log_u is None:
        return log_d + log_q, None
    return data_constrained.log_repeated(log_d, log_u, r_d) + log_q, None


__all__ = [
    "DATA_CONSTRAINED",
    "FINE_GRAINED_MOE",
    "JOINT_MOE",
    "PRECISION",
    "REPETITION_DECAY",
    "Family",
    "dense",
    "effective_tokens",
    "family_of",
]
