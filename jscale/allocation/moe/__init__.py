"""Mixture-of-experts allocation: active parameters, experts and tokens under a
training budget and an accelerator-memory cap.

Three law families, one front door (:func:`moe_optimal`) and one solver per family,
each written for one configuration and vmapped over budgets, memory caps, contexts,
expert bounds and law constants:

- :mod:`.joint`: Ludziejewski et al. 2025 ("Joint MoE Scaling Laws",
  arXiv:2502.05172), :func:`joint_moe_optimal`: active parameters, experts and
  tokens along the path of per-E optima and the memory frontier.
- :mod:`.fine_grained`: Krajewski et al. 2024 ("Scaling Laws for Fine-Grained
  Mixture of Experts", arXiv:2402.07871), :func:`fine_grained_moe_optimal`:
  parameters, granularity and tokens, with the router in the budget.
- :mod:`.routed`: Clark et al. 2022 ("Unified Scaling Laws for Routed Language
  Models", arXiv:2202.01169), :func:`routed_moe_optimal`: size and experts at
  fixed training tokens.
- :mod:`.memory`: the memory of the weights and the KV cache at a number format.

Every result is an :class:`~jscale.allocation.AllocationResult` with ``n_params``
the active parameters, ``n_tokens`` the tokens, ``n_total_params``, ``experts``
(``granularity`` for the fine-grained law) and ``memory_bytes`` filled in, and a
per-element status. An infeasible configuration (a budget that cannot train the
smallest model, ``d_model = 64`` with one block, on one token; memory that cannot
hold it) raises ``ValueError`` for concrete inputs and comes back as
``status == INFEASIBLE`` with NaN outputs under ``jax.jit``. An optimum pinned at
the smallest model or at one training token is flagged ``AT_BOUND``; one on the
memory cap or on ``max_experts`` is a constrained optimum (``CONVERGED``).
Solutions are differentiable in the law's constants, the budget and the memory
(implicit differentiation of the 1-D optimality conditions, and of the log-space
root that gives the memory bound).
"""

from ._shared import DEFAULT_MAX_EXPERTS
from .fine_grained import fine_grained_moe_optimal
from .joint import joint_moe_optimal
from .memory import DEFAULT_CONTEXT
from .optimal import moe_optimal
from .routed import CLARK_EXPERT_FRACTION, CLARK_TOKENS, routed_moe_optimal

__all__ = [
    "CLARK_EXPERT_FRACTION",
    "CLARK_TOKENS",
    "DEFAULT_CONTEXT",
    "DEFAULT_MAX_EXPERTS",
    "fine_grained_moe_optimal",
    "joint_moe_optimal",
    "moe_optimal",
    "routed_moe_optimal",
]
