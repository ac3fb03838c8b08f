"""The coverage of repeated sampling and its cost per query (the test-time model).

Brown et al. 2024, "Large Language Monkeys: Scaling Inference Compute with Repeated
Sampling" (arXiv:2407.21787): the fraction of queries solved by at least one of ``k``
samples follows ``c(k) = exp(a k^b)`` with ``a < 0``, ``b < 0``, fitted per model and
task (:func:`jscale.laws.inference.coverage`). Larger models have a better single
sample (``a`` closer to 0), but each sample costs more. The paper prints no law for
how ``a`` moves with model size, so jscale takes a documented, user-supplied link
(:class:`CoverageScalingParams`)::

    a(N) = a_ref (N / n_ref)^(-s),    c(k; N) = exp(a(N) k^b),

i.e. ``log(-log c(1))`` falls linearly in ``log N`` with slope ``s`` (``s = 0``:
size does not help). Fit ``a_ref`` and ``b`` to one model's coverage curve and ``s``
to two or more models' ``a``; no constants are shipped.

Cost per query, in FLOPs (all terms optional but the first):

- sampling: ``k T (2 N + 2 n_layers d_model ctx)`` for ``T`` generated tokens per
  sample (Kaplan et al. 2020, Table 1, as in
  :func:`jscale.laws.inference.inference_flops_per_query`); the attention term needs
  a shape, here ``N = 12 n_layers d_model^2`` (Kaplan 2020, Sec. 2.1) with a fixed
  aspect ratio ``d_model / n_layers``, so ``n_layers = (N / (12 r^2))^(1/3)``;
- training amortized over the queries served, ``6 N D_pretrain / Q`` (Hoffmann et al.
  2022's ``C = 6 N D``). With it, a model ``M`` times larger costs as much as ``M + 3
  (D_pretrain / D_inference) (M - 1)`` times the samples of the small one, the
  exchange rate of Snell et al. 2024 (arXiv:2408.03314, Sec. 7;
  :func:`jscale.laws.inference.matched_inference_multiplier`). Prompt prefill is
  not counted. :func:`sampling_flops` evaluates this cost for any plan.

:mod:`.testtime` chooses the model size and samples.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from .. import _checks

_LOG2 = math.log(2.0)
_LOG6 = math.log(6.0)
_LOG12 = math.log(12.0)


class CoverageScalingParams(NamedTuple):
    """Coverage of ``k`` samples from a model of ``N`` parameters.

    ``c(k; N) = exp(a(N) k^b)`` with ``a(N) = a_ref (N / n_ref)^(-size_exponent)``:
    Brown et al. 2024's exponentiated power law in ``k`` (arXiv:2407.21787), with a
    power-law link in ``N`` chosen by jscale (the paper fits ``a`` and ``b`` per
    model and prints no link).

    Attributes:
      a_ref: ``log c(1)`` of the reference model, the log coverage of one sample
        (< 0).
      b: exponent in ``k`` (< 0).
      n_ref: parameters of the reference model (> 0).
      size_exponent: ``s >= 0``; ``|a|`` falls as ``N^-s``.

    Leaves may be Python floats or arrays (a leading axis holds many links).
    """

    a_ref: ArrayLike
    b: ArrayLike
    n_ref: ArrayLike
    size_exponent: ArrayLike


def _check_params(params: CoverageScalingParams) -> None:
    _checks.check_range("a_ref", params.a_ref, lower=None, upper=0.0)
    _checks.check_range("b", params.b, lower=None, upper=0.0)
    _checks.check_positive("n_ref", params.n_ref)
    _checks.check_range("size_exponent", params.size_exponent, lower_inclusive=True)


def _params_valid(params: CoverageScalingParams) -> jax.Array:
    return (
        _checks.in_range(params.a_ref, lower=None, upper=0.0)
        & _checks.in_range(params.b, lower=None, upper=0.0)
        & _checks.positive(params.n_ref)
        & _checks.in_range(params.size_exponent, lower_inclusive=True)
    )


def model_coverage(
    params: CoverageScalingParams, n_params: ArrayLike, samples: ArrayLike
) -> jax.Array:
    """Coverage of ``k`` samples from a model of ``N`` parameters, ``c(k; N)``.

    ``exp(a(N) k^b)`` with ``a(N) = a_ref (N / n_ref)^(-s)`` (Brown et al. 2024's
    form in ``k``; see :class:`CoverageScalingParams`), computed in log space.

    Args:
      params: the coverage link.
      n_params: parameters N (> 0).
      samples: samples per query k (> 0), broadcastable against N.

    Returns:
      Coverage in (0, 1) with the broadcast shape; NaN under ``jax.jit`` where an
      input is invalid.

    Raises:
      ValueError: for concrete invalid constants or inputs.

    Examples:
      >>> p = CoverageScalingParams(a_ref=-2.0, b=-0.5, n_ref=1e9, size_exponent=0.5)
      >>> round(float(model_coverage(p, 1e9, 1.0)), 4)  # exp(a_ref)
      0.1353
      >>> round(float(model_coverage(p, 4e9, 1.0)), 4)  # exp(a_ref / 2)
      0.3679
    """
    _check_params(params)
    valid, (n, k) = _checks.positive_inputs(n_params=n_params, samples=samples)
    valid = valid & _params_valid(params)
    log_abs_a = jnp.log(
        -jnp.where(valid, params.a_ref, -1.0)
    ) - params.size_exponent * (jnp.log(n) - jnp.log(params.n_ref))
    value = jnp.exp(-jnp.exp(log_abs_a + params.b * jnp.log(k)))
    return jnp.where(valid, value, jnp.nan)


def _pair(name_a, a, name_b, b):
    if (a is None) != (b is None):
        raise ValueError(
            f"give both {name_a} and {name_b} or neither; got "
            f"{name_a}={'set' if a is not None else 'None'}, "
            f"{name_b}={'set' if b is not None else 'None'}"
        )


def sampling_flops(
    n_params: ArrayLike,
    samples: ArrayLike,
    generated_tokens: ArrayLike,
    *,
    pretrain_tokens: ArrayLike | None = None,
    queries: ArrayLike | None = None,
    context: ArrayLike | None = None,
    aspect_ratio: ArrayLike | None = None,
) -> jax.Array:
    """FLOPs per query of a repeated-sampling plan (the module docstring's model).

    ``k T (2 N + 2 n_layers d_model ctx) + 6 N D_pretrain / Q`` with
    ``n_layers = (N / (12 r^2))^(1/3)`` and ``d_model = r n_layers`` when the
    attention term is asked for (``context`` and ``aspect_ratio``), and the training
    term when ``pretrain_tokens`` and ``queries`` are given.

    Args:
      n_params: parameters N (> 0).
      samples: samples per query k (> 0).
      generated_tokens: tokens generated per sample T (> 0).
      pretrain_tokens, queries: training tokens and the queries they are amortized
        over (> 0; both or neither).
      context, aspect_ratio: mean attended context per generated token and
        ``d_model / n_layers`` (> 0; both or neither).

    Returns:
      FLOPs per query with the broadcast shape; NaN under ``jax.jit`` where an input
      is invalid.

    Raises:
      ValueError: for concrete invalid inputs (naming them), shapes that do not
        broadcast, or only one of a pair of options.

    Examples:
      >>> f"{float(sampling_flops(7e9, 4.0, 1000.0)):.3g}"  # 4 x 1000 x 2N
      '5.6e+13'
      >>> f = sampling_flops(7e9, 1.0, 1000.0, pretrain_tokens=2e12, queries=1e9)
      >>> f"{float(f):.4g}"  # 2N x 1000 + 6N x 2e12 / 1e9
      '9.8e+13'
    """
    _pair("pretrain_tokens", pretrain_tokens, "queries", queries)
    _pair("context", context, "aspect_ratio", aspect_ratio)
    inputs = {
        "n_params": n_params,
        "samples": samples,
        "generated_tokens": generated_tokens,
    }
    if pretrain_tokens is not None:
        inputs |= {"pretrain_tokens": pretrain_tokens, "queries": queries}
    if context is not None:
        inputs |= {"context": context, "aspect_ratio": aspect_ratio}
    valid, values = _checks.positive_inputs(**inputs)
    logs = dict(zip(inputs, (jnp.log(v) for v in values), strict=True))
    log_tr = (
        logs["pretrain_tokens"] - logs["queries"] + _LOG6
        if pretrain_tokens is not None
        else None
    )
    log_att = _log_attention(logs.get("context"), logs.get("aspect_ratio"))
    x = logs["n_params"]
    log_f = _log_sample_flops(x, logs["generated_tokens"], log_att)
    total = logs["samples"] + log_f
    if log_tr is not None:
        total = jnp.logaddexp(total, log_tr + x)
    return jnp.where(valid, jnp.exp(total), jnp.nan)


def _log_attention(log_ctx, log_ratio):
    """``log`` of the attention FLOPs per token over ``N^(2/3)`` (see the module)."""
    if log_ctx is None:
        return None
    # 2 n_layers d_model ctx = 2 r ctx n_layers^2, n_layers = (N / (12 r^2))^(1/3).
    return _LOG2 + log_ratio + log_ctx - (2.0 / 3.0) * (_LOG12 + 2.0 * log_ratio)


def _log_sample_flops(x, log_t, log_att):
    """``log`` FLOPs of one sample of ``T`` tokens from a model of ``exp(x)``."""
    weights = _LOG2 + x
    if log_att is None:
        return log_t + weights
    return log_t + jnp.logaddexp(weights, log_att + (2.0 / 3.0) * x)
