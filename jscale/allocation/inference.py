"""Inference-aware allocation (Sardana et al. 2024, "Beyond Chinchilla-Optimal:
Accounting for Inference in Language Model Scaling Laws", arXiv:2401.00448).

A model that will serve ``D_inf`` tokens costs ``2 N`` FLOPs per token on top of
its training ``6 N D``:

- :func:`inference_budget_optimal`: the lowest loss within a lifetime budget;
- :func:`inference_target_optimal`: the least lifetime FLOPs reaching a loss;
- :func:`inference_cost_optimal`: the least lifetime dollars reaching a loss, with
  the training and inference hardware of :mod:`jscale.accounting`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from jax.typing import ArrayLike

from .. import _checks
from ._common import ANY_FINITE, NONNEGATIVE, POSITIVE, pick, prepare
from ._common import raise_if_infeasible as _raise_if_infeasible
from .engine import budget_scenario, log_loss_of, target_scenario
from .results import AllocationResult


def inference_budget_optimal(
    law: Callable,
    params,
    compute_flops: ArrayLike,
    inference_tokens: ArrayLike,
    *args: ArrayLike,
    num_grid: int = 16,
    max_steps: int = 48,
) -> AllocationResult:
    """Minimize ``L(N, D)`` subject to ``6 N D + 2 N D_inf <= C`` (lifetime FLOPs).

    Sardana et al. 2024 (arXiv:2401.00448), the dual of their Sec. 2 problem: a
    fixed lifetime budget pays for training and for ``D_inf`` inference tokens at
    ``2 N`` FLOPs each. The loss falls in both N and D, so the budget binds and
    eliminates ``D = C / (6 N) - D_inf / 3``; the loss along that curve is
    minimized in ``log N`` as in :func:`~jscale.allocation.dense_optimal`
    (closed-form seeds of the training-only optimum for the Chinchilla form).
    With ``D_inf = 0`` this is :func:`~jscale.allocation.dense_optimal`.

    Args:
      law: the loss, ``law(params, n_params, n_tokens, *args)``.
      params: the law's constants.
      compute_flops: lifetime budgets C (> 0) for training plus inference.
      inference_tokens: lifetime inference tokens ``D_inf`` (>= 0).
      *args: further positive inputs of ``law``.

    Returns:
      An :class:`AllocationResult` with ``inference_flops`` and ``lifetime_flops``
      (``compute_flops`` is the training part).

    Raises:
      ValueError: for concrete invalid inputs or a budget below the smallest
        model (``C < 6 + 2 D_inf``: one parameter trained on one token).

    Examples:
      >>> from jscale.laws import chinchilla
      >>> from jscale.allocation import chinchilla_optimal
      >>> p = chinchilla.HOFFMANN2022.params
      >>> r = inference_budget_optimal(chinchilla.loss, p, 1e24, 2e13)
      >>> float(r.n_params) < float(chinchilla_optimal(p, 1e24).n_params)
      True
    """
    inputs = {
        "compute_flops": (compute_flops, POSITIVE),
        "inference_tokens": (inference_tokens, NONNEGATIVE),
    }
    inputs |= {f"args[{i}]": (a, POSITIVE) for i, a in enumerate(args)}
    log_loss, hint = log_loss_of(law)
    out = budget_scenario(
        log_loss,
        hint,
        prepare(params, inputs),
        inference=True,
        num_grid=num_grid,
        max_steps=max_steps,
    )
    _raise_if_infeasible(
        out.status,
        lambda idx: (
            f"compute_flops = {pick(compute_flops, idx):.6g} is infeasible: it must "
            "exceed 6 + 2 * inference_tokens (one parameter trained on one token and "
            "serving the inference tokens)"
        ),
    )
    return out


def _target_problem(law, params, target_loss, tokens, args, num_grid, max_steps):
    """The target problem with ``tokens = (name, D_inf)`` inference tokens."""
    inputs = {
        "target_loss": (target_loss, ANY_FINITE._replace(safe=1e9)),
        tokens[0]: (tokens[1], NONNEGATIVE),
    }
    inputs |= {f"args[{i}]": (a, POSITIVE) for i, a in enumerate(args)}
    out = target_scenario(
        log_loss_of(law)[0],
        prepare(params, inputs),
        num_grid=num_grid,
        max_steps=max_steps,
    )
    _raise_if_infeasible(out.status, partial(_unreachable, target_loss, params))
    return out


def inference_target_optimal(
    law: Callable,
    params,
    target_loss: ArrayLike,
    inference_tokens: ArrayLike,
    *args: ArrayLike,
    num_grid: int = 16,
    max_steps: int = 48,
) -> AllocationResult:
    """Minimize lifetime FLOPs ``6 N D + 2 N D_inf`` subject to ``L(N, D) = target``.

    Sardana et al. 2024, "Beyond Chinchilla-Optimal: Accounting for Inference in
    Language Model Scaling Laws" (arXiv:2401.00448), Sec. 2: the model that
    reaches a quality target at the least total compute over its lifetime, with
    ``D_inf`` inference tokens (input plus output, attention FLOPs ignored).
    With large inference demand the optimum is smaller and trained longer than
    Chinchilla's. Solved in ``log N``; for each N the tokens solve
    ``L(N, D) = target`` (an inner root in ``log D``). Any law decreasing in N
    and D works. Differentiable in ``params``, the target and ``D_inf``.

    Args:
      law: the loss, ``law(params, n_params, n_tokens, *args)``.
      params: the law's constants.
      target_loss: the loss to reach; must be above what the law can reach
        (for the Chinchilla form, above E).
      inference_tokens: lifetime inference tokens ``D_inf`` (>= 0; 0 gives the
        training-compute-optimal model for the target).
      *args: further positive inputs of ``law``.

    Returns:
      An :class:`AllocationResult` with ``inference_flops`` and
      ``lifetime_flops``; ``loss`` equals the target.

    Raises:
      ValueError: for concrete invalid inputs or a target the law cannot reach.

    Examples:
      >>> from jscale.laws import chinchilla
      >>> # Sardana et al.'s README: loss 1.947 with 2e12 inference tokens.
      >>> p = chinchilla.ChinchillaParams(1.69, 406.4, 410.7, 0.336, 0.283)
      >>> r = inference_target_optimal(chinchilla.loss, p, 1.947, 2e12)
      >>> f"{float(r.n_params):.3e} {float(r.n_tokens):.3e}"
      '2.418e+10 2.657e+12'
    """
    return _target_problem(
        law,
        params,
        target_loss,
        ("inference_tokens", inference_tokens),
        args,
        num_grid,
        max_steps,
    )


def _unreachable(target, params, idx) -> str:
    floor = ""
    if hasattr(params, "E"):
        floor = (
            f" (it must be above the irreducible loss E = {pick(params.E, idx):.6g})"
        )
    return (
        f"target_loss = {pick(target, idx):.6g} is infeasible: the law cannot reach "
        f"it with at most 1e25 parameters and 1e30 tokens{floor}"
    )


#: Sardana et al. 2024's defaults (beyond-chinchilla repository, cost_optimal.py).
SARDANA_COST_DEFAULTS = {
    "train_hardware": "h100-sxm",
    "train_precision": "bf16",
    "train_mfu": 0.5,
    "train_price": 2.0,
    "inference_hardware": "h100-sxm",
    "inference_precision": "fp8",
    "prefill_mfu": 0.5,
    "decode_mfu": 0.01,
    "inference_price": 2.0,
}


def _usd_per_flop(hardware, precision, mfu, price):
    """Dollars per useful FLOP: price per device-hour / (3600 s x peak x MFU)."""
    from .. import accounting

    rate = accounting.device_flops_per_second(hardware, precision, mfu)
    return _checks.check_positive("price", price) / (3600.0 * rate)


def inference_cost_optimal(
    law: Callable,
    params,
    target_loss: ArrayLike,
    input_tokens: ArrayLike,
    output_tokens: ArrayLike,
    *args: ArrayLike,
    train_hardware: str = "h100-sxm",
    train_precision: str = "bf16",
    train_mfu: ArrayLike = 0.5,
    train_price: ArrayLike = 2.0,
    inference_hardware: str = "h100-sxm",
    inference_precision: str = "fp8",
    prefill_mfu: ArrayLike = 0.5,
    decode_mfu: ArrayLike = 0.01,
    inference_price: ArrayLike = 2.0,
    num_grid: int = 16,
    max_steps: int = 48,
) -> AllocationResult:
    """Minimize lifetime dollars subject to ``L(N, D) = target``.

    Sardana et al. 2024 (arXiv:2401.00448), Sec. 3 and their repository's
    ``cost_optimal.py``: training costs ``6 N D`` FLOPs at
    ``price / (3600 x peak x MFU)`` dollars each on the training hardware;
    inference costs ``2 N`` FLOPs per token on the inference hardware, with its
    own MFU for the input (prefill) and output (decode) tokens. Peaks come from
    :mod:`jscale.accounting`'s hardware presets at the given number format. The
    cost is ``k_train (6 N D + 2 N T_eff)`` with ``T_eff = (k_prefill T_in +
    k_decode T_out) / k_train``, so the optimum is that of
    :func:`inference_target_optimal` with ``T_eff`` inference tokens. The
    defaults are the paper's (:data:`SARDANA_COST_DEFAULTS`).

    Args:
      law, params, target_loss: as :func:`inference_target_optimal`.
      input_tokens, output_tokens: lifetime prefill and decode tokens (>= 0).
      *args: further positive inputs of ``law``.
      train_hardware, inference_hardware: :data:`jscale.accounting.HARDWARE`
        names; train_precision, inference_precision: the number formats they
        run at.
      train_mfu, prefill_mfu, decode_mfu: utilizations in (0, 1].
      train_price, inference_price: dollars per device-hour.

    Returns:
      An :class:`AllocationResult` with ``cost_usd``, ``inference_flops`` and
      ``lifetime_flops``.

    Examples:
      >>> from jscale.laws import chinchilla
      >>> p = chinchilla.ChinchillaParams(1.69, 406.4, 410.7, 0.336, 0.283)
      >>> r = inference_cost_optimal(
      ...     chinchilla.loss, p, 1.947, 1e13, 2.5e12,
      ...     train_hardware="a100-80gb", train_price=1.40,
      ...     inference_hardware="a100-40gb", inference_precision="int8",
      ...     inference_price=0.60, prefill_mfu=0.4, decode_mfu=0.2)
      >>> f"{float(r.n_params):.3e} {float(r.n_tokens):.3e}"  # their README
      '2.053e+10 3.302e+12'
    """
    _checks.check_range("target_loss", target_loss, lower=None)
    t_in = _checks.check_range("input_tokens", input_tokens, lower_inclusive=True)
    t_out = _checks.check_range("output_tokens", output_tokens, lower_inclusive=True)
    k_train = _usd_per_flop(train_hardware, train_precision, train_mfu, train_price)
    k_pre = _usd_per_flop(
        inference_hardware, inference_precision, prefill_mfu, inference_price
    )
    k_dec = _usd_per_flop(
        inference_hardware, inference_precision, decode_mfu, inference_price
    )
    t_eff = (k_pre * t_in + k_dec * t_out) / k_train
    out = _target_problem(
        law,
        params,
        target_loss,
        ("inference_tokens", t_eff),
        args,
        num_grid,
        max_steps,
    )
    n = out.n_params
    train_usd = k_train * out.compute_flops
    usd = train_usd + 2.0 * n * (k_pre * t_in + k_dec * t_out)
    inf_flops = 2.0 * n * (t_in + t_out)
    return out._replace(
        cost_usd=usd,
        inference_flops=inf_flops,
        lifetime_flops=out.compute_flops + inf_flops,
    )
