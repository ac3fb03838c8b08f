"""Test-time compute: repeated-sampling coverage, pass@k, inference FLOPs.

- **Coverage.** Brown et al. 2024, "Large Language Monkeys: Scaling Inference
  Compute with Repeated Sampling" (arXiv:2407.21787): the fraction of problems
  solved by at least one of k samples follows an exponentiated power law,
  ``c(k) = exp(a k^b)`` with ``a < 0`` and ``b < 0`` (:func:`coverage`, and its
  inverse :func:`samples_for_coverage`). a and b are fitted per model and task; the
  paper prints none, so there is no preset.
- **pass@k.** Chen et al. 2021, "Evaluating Large Language Models Trained on Code"
  (arXiv:2107.03374): the unbiased estimator from n samples of which c are correct,
  ``1 - C(n - c, k) / C(n, k)`` (:func:`pass_at_k`), averaged over problems by the
  caller.
- **Inference FLOPs.** ``2 N`` per generated token plus attention over the context,
  ``2 n_layers d_model context`` (Kaplan et al. 2020, Table 1), per query
  (:func:`inference_flops_per_query`).
- **Exchange rate.** Snell et al. 2024, "Scaling LLM Test-Time Compute Optimally
  can be More Effective than Scaling Model Parameters" (arXiv:2408.03314): a model
  M times larger costs, in FLOPs, as much as multiplying the small model's
  inference compute by ``M + 3 (D_pretrain / D_inference)(M - 1)``
  (:func:`matched_inference_multiplier`).

No loss-like quantity here has published constants, so the module registers no
preset.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import betaln, gammaln
from jax.typing import ArrayLike

from .. import _checks, accounting
from .._numerics import asfloat, broadcast


class CoverageParams(NamedTuple):
    """Constants of ``c(k) = exp(a k^b)`` (Brown 2024).

    Attributes:
      a: ``log c(1)``, the log coverage of one sample (< 0).
      b: exponent (< 0): ``log c(k)`` rises towards 0 as ``k^b``.

    Leaves may be Python floats or arrays; a leading axis holds many fits at once.
    """

    a: ArrayLike
    b: ArrayLike


#: Valid values of this module's inputs (the others are > 0), with the value that
#: stands in for an invalid element (a pass@k triple with ``c <= n``, ``k <= n``).
_RULES = {
    "target": _checks.Range(upper=1.0, safe=0.5),
    "n_samples": _checks.Range(lower=1.0, lower_inclusive=True, safe=2.0),
    "n_correct": _checks.NONNEGATIVE,
    "k": _checks.AT_LEAST_ONE,
    "param_multiplier": _checks.AT_LEAST_ONE,
}


def _check_params(params: CoverageParams) -> None:
    _checks.check_range("a", params.a, lower=None, upper=0.0)
    _checks.check_range("b", params.b, lower=None, upper=0.0)


def coverage(params: CoverageParams, samples: ArrayLike) -> jax.Array:
    """Coverage after k samples, ``c(k) = exp(a k^b)`` (Brown 2024).

    Args:
      params: ``a < 0`` and ``b < 0``.
      samples: samples per problem k (> 0), any shape.

    Returns:
      Coverage in (0, 1), rising with k, with the shape of ``samples``; NaN under
      ``jax.jit`` where k is invalid.

    Raises:
      ValueError: for concrete non-negative a or b, or a concrete non-positive,
        NaN or infinite k.

    Examples:
      >>> from jscale.laws import inference
      >>> p = inference.CoverageParams(a=-2.0, b=-0.5)
      >>> round(float(inference.coverage(p, 1.0)), 4)  # exp(a)
      0.1353
      >>> round(float(inference.coverage(p, 100.0)), 4)
      0.8187
    """
    _check_params(params)
    valid, (k,) = _checks.prepare(samples=samples)
    return _checks.masked(valid, jnp.exp(params.a * jnp.exp(params.b * jnp.log(k))))


def samples_for_coverage(params: CoverageParams, target: ArrayLike) -> jax.Array:
    """Samples needed to reach a coverage, ``k = (log c / a)^(1/b)``.

    The inverse of :func:`coverage` (not rounded up to an integer).

    Args:
      params: ``a < 0`` and ``b < 0``.
      target: coverage c in (0, 1), any shape.

    Returns:
      k with the shape of ``target`` (below 1 where ``c < exp(a)``); NaN under
      ``jax.jit`` where c is outside (0, 1).

    Raises:
      ValueError: for concrete non-negative a or b, or c outside (0, 1).

    Examples:
      >>> from jscale.laws import inference
      >>> p = inference.CoverageParams(a=-2.0, b=-0.5)
      >>> round(float(inference.samples_for_coverage(p, 0.8187307530779818)), 3)
      100.0
    """
    _check_params(params)
    valid, (c,) = _checks.prepare(_RULES, target=target)
    # log(-log c) - log(-a), divided by b; -log c > 0 on (0, 1).
    log_k = (jnp.log(-jnp.log(c)) - jnp.log(-jnp.asarray(params.a))) / params.b
    return _checks.masked(valid, jnp.exp(log_k))


@jax.jit
def _pass_at_k_core(n: jax.Array, c: jax.Array, kk: jax.Array) -> jax.Array:
    """pass@k for valid counts (compiled once per shape: betaln is many ops)."""
    rest = n - c
    some_without = rest >= kk  # a draw of k can miss every correct sample
    # Double where: betaln's arguments stay >= 1 where the branch is not taken.
    safe_rest = jnp.where(some_without, rest, kk)
    if n.dtype == jnp.float64:
        # JAX's betaln is accurate to float32 only; float64 lgamma differences
        # keep ~1e-13 absolute for n up to 1e4.
        log_ratio = (
            gammaln(safe_rest + 1.0)
            - gammaln(safe_rest - kk + 1.0)
            - gammaln(n + 1.0)
            + gammaln(n - kk + 1.0)
        )
    else:
        log_ratio = betaln(n - kk + 1.0, kk) - betaln(safe_rest - kk + 1.0, kk)
    value = jnp.where(some_without, -jnp.expm1(log_ratio), 1.0)
    # No correct sample: exactly 0 (the lgamma terms cancel only to rounding).
    value = jnp.where(c > 0.0, value, 0.0)
    return value


def pass_at_k(n_samples: ArrayLike, n_correct: ArrayLike, k: ArrayLike) -> jax.Array:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021, Sec. 2.1).

    ``1 - C(n - c, k) / C(n, k)``, the probability that k samples drawn without
    replacement from the n include a correct one. The ratio is formed in log
    space from log-gamma functions, ``log C(n-c, k) - log C(n, k) = lgamma(n-c+1)
    - lgamma(n-c-k+1) - lgamma(n+1) + lgamma(n-k+1)``, grouped as two log-beta
    functions, ``betaln(n-k+1, k) - betaln(n-c-k+1, k)``, in float32 (JAX's
    betaln uses Stirling-series corrections, so large lgamma values do not
    cancel; it is float32-accurate only, so float64 uses the lgamma sum), and
    ``1 - ratio`` as ``-expm1``; it is 1 when ``n - c < k`` (every draw of k
    contains a correct sample). Absolute error: about 1e-12 in float64 and 1e-4
    in float32 for n up to 1e4 (2e-5 for n <= 1000). Counts are floats so that
    the estimator vmaps over problems; average the result over problems.

    Args:
      n_samples: samples per problem n (>= 1), any shape.
      n_correct: correct samples c, ``0 <= c <= n``, broadcastable.
      k: the k of pass@k, ``1 <= k <= n``, broadcastable.

    Returns:
      pass@k in [0, 1] with the broadcast shape; NaN under ``jax.jit`` where the
      counts are invalid.

    Raises:
      ValueError: for concrete counts out of range, or shapes that do not
        broadcast.

    Examples:
      >>> from jscale.laws import inference
      >>> round(float(inference.pass_at_k(200, 10, 1)), 4)  # c / n
      0.05
      >>> round(float(inference.pass_at_k(200, 10, 10)), 4)
      0.4085
    """
    valid, (n, c, kk) = _checks.prepare(
        _RULES, n_samples=n_samples, n_correct=n_correct, k=k
    )
    # Cross-argument conditions, on the inputs as given: c <= n and k <= n.
    raw = broadcast(*(asfloat(x) for x in (n_samples, n_correct, k)))
    for name, x in (("n_correct", raw[1]), ("k", raw[2])):
        if _checks.is_concrete(x) and _checks.is_concrete(raw[0]):
            with jax.ensure_compile_time_eval():
                bad = bool(jnp.any(x > raw[0]))
            if bad:
                raise ValueError(f"{name} must be <= n_samples; got {name} > n_samples")
    valid = valid & (raw[1] <= raw[0]) & (raw[2] <= raw[0])
    n, c, kk = (jnp.where(valid, v, s) for v, s in ((n, 2.0), (c, 1.0), (kk, 1.0)))
    return jnp.where(valid, _pass_at_k_core(n, c, kk), jnp.nan)


def inference_flops_per_query(
    n_params: ArrayLike,
    generated_tokens: ArrayLike,
    n_layers: ArrayLike | None = None,
    d_model: ArrayLike | None = None,
    context: ArrayLike | None = None,
) -> jax.Array:
    """FLOPs to generate one answer: tokens times ``2 N + 2 n_layers d_model ctx``.

    Per generated token the weights cost ``2N`` and attention over ``context``
    cached tokens ``2 n_layers d_model context``
    (:func:`jscale.accounting.inference_flops_per_token`); ``context`` is then the
    mean context over the answer (prompt plus half the answer for a single pass).
    Without the shape only ``2N`` per token is counted. Prefill of the prompt is
    not included.

    Args:
      n_params: parameters N (> 0).
      generated_tokens: tokens generated per query (> 0).
      n_layers, d_model, context: the shape (> 0), all given or all ``None``.

    Returns:
      FLOPs per query with the broadcast shape; NaN under jit for invalid
      elements.

    Raises:
      ValueError: for invalid values, shapes that do not broadcast, or only some
        of the shape given.

    Examples:
      >>> from jscale.laws import inference
      >>> f"{float(inference.inference_flops_per_query(7e9, 1000)):.3g}"
      '1.4e+13'
      >>> f"{float(inference.inference_flops_per_query(7e9, 1000, 32, 4096, 2048)):.4g}"
      '1.454e+13'
    """
    per_token = accounting.inference_flops_per_token(
        n_params, n_layers, d_model, context
    )
    valid, (per, tokens) = _checks.prepare(
        flops_per_token=per_token, generated_tokens=generated_tokens
    )
    return _checks.masked(valid, per * tokens)


def matched_inference_multiplier(
    param_multiplier: ArrayLike,
    pretrain_tokens: ArrayLike,
    inference_tokens: ArrayLike,
) -> jax.Array:
    """Snell et al. 2024's exchange rate ``M + 3 (D_pretrain / D_inference)(M - 1)``.

    With training FLOPs ``6 N D_pretrain`` and inference FLOPs
    ``2 N D_inference``, a model M times larger costs as much in total as the
    small model whose inference compute is multiplied by this factor (Snell 2024,
    Sec. 7). The larger the pretraining share, the more test-time compute the
    same budget buys.

    Args:
      param_multiplier: M >= 1.
      pretrain_tokens: pretraining tokens D_pretrain (> 0).
      inference_tokens: tokens served D_inference (> 0).

    Returns:
      The inference-compute multiplier (>= 1) with the broadcast shape; NaN under
      jit for invalid elements.

    Raises:
      ValueError: for a concrete M < 1, token counts not finite and > 0, or
        shapes that do not broadcast.

    Examples:
      >>> from jscale.laws import inference
      >>> float(inference.matched_inference_multiplier(14.0, 1e12, 1e12))
      53.0
    """
    valid, (m, d_pre, d_inf) = _checks.prepare(
        _RULES,
        param_multiplier=param_multiplier,
        pretrain_tokens=pretrain_tokens,
        inference_tokens=inference_tokens,
    )
    value = m + 3.0 * jnp.exp(jnp.log(d_pre) - jnp.log(d_inf)) * (m - 1.0)
    return _checks.masked(valid, value)


PRESETS: dict = {}
