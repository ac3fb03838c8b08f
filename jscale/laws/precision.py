"""Precision-aware scaling: low-precision training and post-training quantization.

Kumar et al. 2024, "Scaling Laws for Precision" (arXiv:2411.04330). Training with
weights, activations and KV cache in fewer bits shrinks the *effective* parameter
count, and quantizing a trained model adds a degradation that grows with the data
it was trained on::

    L = A N_eff^-alpha + B D^-beta + E + delta_PTQ,
    N_eff = N (1 - exp(-P_w/gamma_w)) (1 - exp(-P_a/gamma_a)) (1 - exp(-P_kv/gamma_kv)),
    delta_PTQ = C_T (D^gamma_D / N_eff^gamma_N) exp(-P_post/gamma_post).

``P_w``, ``P_a``, ``P_kv`` are the training precisions (bits) of weights,
activations and KV cache, ``P_post`` the bits the weights are quantized to after
training (``inf``: no quantization, ``delta_PTQ = 0``). Training precision enters
``delta_PTQ`` through ``N_eff``, as in the paper's unified form
``delta_PTQ(N_eff, D, P_train, P_post)``; with 16-bit training ``N_eff`` is within
0.4% of N under the App. K constants, so this matters only for low-precision
training. N counts parameters, D training tokens; the loss is in nats per token.

The cost model of the paper, ``C = (6/16) N D P`` (6ND at 16 bits, linear in the
bits), is :func:`training_cost`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from ._inputs import checked
from ._registry import Preset, family


def _log_one_minus_exp_neg(t: jax.Array) -> jax.Array:
    """``log(1 - exp(-t))`` for ``t > 0``, accurate for small and large ``t``."""
    return jnp.where(
        t < math.log(2.0), jnp.log(-jnp.expm1(-t)), jnp.log1p(-jnp.exp(-t))
    )


class PrecisionParams(NamedTuple):
    """Constants of Kumar's precision-aware law.

    Attributes:
      A: parameter coefficient.
      alpha: parameter exponent.
      B: data coefficient.
      beta: data exponent.
      E: irreducible loss.
      gamma_w: bits scale of weight precision in ``N_eff``.
      gamma_a: bits scale of activation precision.
      gamma_kv: bits scale of KV-cache precision.
      C_T: post-training quantization coefficient.
      gamma_D: data exponent of the quantization degradation.
      gamma_N: parameter exponent of the quantization degradation.
      gamma_post: bits scale of post-training precision.

    Leaves may be Python floats or arrays; a leading axis holds many laws at once.
    """

    A: ArrayLike
    alpha: ArrayLike
    B: ArrayLike
    beta: ArrayLike
    E: ArrayLike
    gamma_w: ArrayLike
    gamma_a: ArrayLike
    gamma_kv: ArrayLike
    C_T: ArrayLike
    gamma_D: ArrayLike
    gamma_N: ArrayLike
    gamma_post: ArrayLike


def log_effective_params(params, log_n, p_w, p_a, p_kv):
    """``log N_eff`` for weight, activation and KV-cache bits (Kumar 2024, Sec. 5).

    The log-space kernel behind :func:`effective_params`, no checks.
    """
    return (
        log_n
        + _log_one_minus_exp_neg(p_w / params.gamma_w)
        + _log_one_minus_exp_neg(p_a / params.gamma_a)
        + _log_one_minus_exp_neg(p_kv / params.gamma_kv)
    )


def log_ptq_loss(params, log_n_eff, log_d, p_post):
    """``log delta_PTQ``, the quantization loss (Kumar 2024, Sec. 5), no checks."""
    return (
        jnp.log(params.C_T)
        + params.gamma_D * log_d
        - params.gamma_N * log_n_eff
        - p_post / params.gamma_post
    )


@checked
def effective_params(
    params: PrecisionParams,
    n_params: ArrayLike,
    weight_bits: ArrayLike = 16.0,
    activation_bits: ArrayLike = 16.0,
    kv_cache_bits: ArrayLike = 16.0,
) -> jax.Array:
    """Effective parameters of low-precision training (Kumar 2024, Sec. 4).

    ``N_eff = N (1 - exp(-P_w/gamma_w)) (1 - exp(-P_a/gamma_a))
    (1 - exp(-P_kv/gamma_kv))``, computed in log space.

    Args:
      params: the law's constants.
      n_params: parameters N (> 0), any shape.
      weight_bits: training precision of the weights P_w (> 0), broadcastable.
      activation_bits: training precision of the activations P_a (> 0).
      kv_cache_bits: training precision of the KV cache P_kv (> 0).

    Returns:
      ``N_eff <= N`` with the broadcast shape; NaN under ``jax.jit`` where an input
      is invalid.

    Raises:
      ValueError: for a concrete N or bits that are not finite and > 0, or shapes
        that do not broadcast.

    Examples:
      >>> from jscale.laws import precision
      >>> p = precision.KUMAR2024.params
      >>> round(float(precision.effective_params(p, 1e9) / 1e9), 4)  # all 16-bit
      0.9968
      >>> round(float(precision.effective_params(p, 1e9, 4, 4, 4) / 1e9), 4)
      0.6389
    """
    bits = (weight_bits, activation_bits, kv_cache_bits)
    return jnp.exp(log_effective_params(params, jnp.log(n_params), *bits))


@checked
def ptq_degradation(
    params: PrecisionParams,
    n_params: ArrayLike,
    n_tokens: ArrayLike,
    post_train_bits: ArrayLike,
    weight_bits: ArrayLike = 16.0,
    activation_bits: ArrayLike = 16.0,
    kv_cache_bits: ArrayLike = 16.0,
) -> jax.Array:
    """Loss added by post-training quantization (Kumar 2024, Sec. 3 and 5).

    ``delta_PTQ = C_T (D^gamma_D / N_eff^gamma_N) exp(-P_post / gamma_post)``: it
    grows with the training tokens D, so that past some D more pretraining makes
    the quantized model worse.

    Args:
      params: the law's constants.
      n_params: parameters N (> 0), any shape.
      n_tokens: training tokens D (> 0), broadcastable.
      post_train_bits: bits of the quantized weights P_post (> 0; ``inf`` for no
        quantization), broadcastable.
      weight_bits, activation_bits, kv_cache_bits: training precisions (> 0).

    Returns:
      The degradation in nats per token (>= 0) with the broadcast shape; NaN under
      ``jax.jit`` where an input is invalid.

    Raises:
      ValueError: for a concrete N, D or training precision not finite and > 0,
        P_post <= 0 or NaN, or shapes that do not broadcast.

    Examples:
      >>> from jscale.laws import precision
      >>> p = precision.KUMAR2024.params
      >>> round(float(precision.ptq_degradation(p, 1e9, 2e10, 4.0)), 4)
      0.0092
      >>> float(precision.ptq_degradation(p, 1e9, 2e10, float("inf")))
      0.0
    """
    bits = (weight_bits, activation_bits, kv_cache_bits)
    log_n_eff = log_effective_params(params, jnp.log(n_params), *bits)
    return jnp.exp(log_ptq_loss(params, log_n_eff, jnp.log(n_tokens), post_train_bits))


@checked
def loss(
    params: PrecisionParams,
    n_params: ArrayLike,
    n_tokens: ArrayLike,
    weight_bits: ArrayLike = 16.0,
    activation_bits: ArrayLike = 16.0,
    kv_cache_bits: ArrayLike = 16.0,
    post_train_bits: ArrayLike = math.inf,
) -> jax.Array:
    """Precision-aware loss ``A N_eff^-alpha + B D^-beta + E + delta_PTQ`` (Kumar 2024).

    The unified form of Sec. 5 (see the module docstring), elementwise with
    broadcasting; every term is one ``exp`` of a sum of logs.

    Args:
      params: the law's constants.
      n_params: parameters N (> 0), any shape.
      n_tokens: training tokens D (> 0), broadcastable.
      weight_bits: training precision of the weights (> 0), default 16.
      activation_bits: training precision of the activations (> 0), default 16.
      kv_cache_bits: training precision of the KV cache (> 0), default 16.
      post_train_bits: bits after post-training quantization (> 0); the default
        ``inf`` means none.

    Returns:
      The loss in nats per token with the broadcast shape. Under ``jax.jit``,
      elements with an invalid input are NaN.

    Raises:
      ValueError: for concrete N, D or training bits that are not finite and > 0,
        post-training bits <= 0 or NaN, or shapes that do not broadcast.

    Examples:
      >>> from jscale.laws import precision
      >>> p = precision.KUMAR2024.params
      >>> round(float(precision.loss(p, 1e9, 2e10)), 4)  # BF16 throughout
      3.05
      >>> round(float(precision.loss(p, 1e9, 2e10, 4, 4, 4)), 4)  # trained in 4 bits
      3.0861
    """
    log_d = jnp.log(n_tokens)
    bits = (weight_bits, activation_bits, kv_cache_bits)
    log_n_eff = log_effective_params(params, jnp.log(n_params), *bits)
    return (
        jnp.exp(jnp.log(params.A) - params.alpha * log_n_eff)
        + jnp.exp(jnp.log(params.B) - params.beta * log_d)
        + params.E
        + jnp.exp(log_ptq_loss(params, log_n_eff, log_d, post_train_bits))
    )


@checked
def training_cost(
    n_params: ArrayLike, n_tokens: ArrayLike, bits: ArrayLike = 16.0
) -> jax.Array:
    """Kumar's cost model ``C = (6/16) N D P``: 6ND at 16 bits, linear in the bits.

    The unit is a 16-bit FLOP: training in P bits costs ``P/16`` of the BF16 run
    (Kumar 2024, Sec. 4.3, with weights, activations and KV cache in P bits).

    Args:
      n_params: parameters N (> 0).
      n_tokens: training tokens D (> 0).
      bits: training precision P (> 0).

    Returns:
      The cost with the broadcast shape; NaN under jit for invalid elements.

    Raises:
      ValueError: for a concrete N, D or P not finite and > 0, or shapes that do
        not broadcast.

    Examples:
      >>> from jscale.laws import precision
      >>> f"{float(precision.training_cost(1e9, 2e10, 8)):.3g}"
      '6e+19'
    """
    return (6.0 / 16.0) * n_params * n_tokens * bits


FAMILY = family(
    "precision",
    PrecisionParams,
    loss,
    (
        "L = A N_eff^-alpha + B D^-beta + E + C_T D^gamma_D N_eff^-gamma_N "
        "exp(-P_post/gamma_post); N_eff = N prod_x (1 - exp(-P_x/gamma_x)), "
        "x in {w, a, kv}"
    ),
)

KUMAR2024 = Preset(
    name="precision-kumar2024",
    family=FAMILY,
    params=PrecisionParams(
        A=4.299e3,
        alpha=0.4965,
        B=1.806e4,
        beta=0.4965,
        E=2.7648,
        gamma_w=2.6745,
        gamma_a=2.2102,
        gamma_kv=0.9578,
        C_T=0.0598,
        gamma_D=0.5068,
        gamma_N=0.3439,
        gamma_post=0.5907,
    ),
    citation=(
        "Kumar et al. 2024, Scaling Laws for Precision, arXiv:2411.04330, unified "
        "form (Sec. 5) with the fitted constants of App. K (alpha = beta tied)"
    ),
    units=(
        "N: parameters; D: training tokens; precisions in bits (integer "
        "quantization); loss: nats/token (Dolma, OLMo-style models up to 1.7B)"
    ),
    notes=(
        "The authors say these constants are unlikely to transfer to other setups: "
        "an illustration of the functional forms, not a predictor. App. K's fit "
        "also has offsets inside N_eff (1 - exp(n_x - P_x/gamma_x) with n_w = "
        "0.3037, n_a = 1.4072, n_kv = 2.4185) that this preset omits; without "
        "them the compute-optimal training precision is 3.47 bits, with them "
        "7.0 bits, the paper's 7-8 (Sec. 4.3.2). delta_PTQ uses N_eff, as the "
        "paper's unified form (Sec. 5, Eqs. 9-11) does, without Eq. 9's "
        "robustification factor, whose constants App. K does not print."
    ),
)

PRESETS = {p.name: p for p in (KUMAR2024,)}
