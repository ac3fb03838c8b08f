"""Compute-optimal allocation: closed forms, rules of thumb, and the optimum of any law.

Under a training budget ``C = 6 N D`` (Hoffmann et al. 2022, Sec. 3.3), choose the
parameters N and tokens D that minimize the loss. For the Chinchilla form the optimum
has a closed form (Hoffmann 2022, Eq. 4); so does Kaplan's joint law along the
isoFLOP line; other laws are minimized numerically along their isoFLOP slices.

Where to look (one concept per module):

- :mod:`.optimal`: :func:`optimal`, the front door: a law and options select the
  scenario.
- :mod:`.results`: :class:`AllocationResult` and :func:`to_row`.
- :mod:`.closed_forms`: :func:`chinchilla_optimal`, :func:`kaplan_optimal` and the
  rules of thumb.
- :mod:`.engine`: the batched 1-D engine of the dense scenarios (a budget or a
  target), on :func:`jscale._solver.minimize_scalar`.
- :mod:`.dense`, :mod:`.data_constrained`, :mod:`.inference`, :mod:`.quality`,
  :mod:`.precision`, :mod:`.moe`, :mod:`.testtime` (with :mod:`.coverage`): the
  scenarios.
- :mod:`.solvers`: :func:`minimize_scalar` and :func:`minimize` for problems a
  user writes.

Results carry a per-element ``status`` (0 means ok; see :data:`STATUS_MESSAGES`).
Concrete inputs that make a problem infeasible raise ``ValueError``; under ``jax.jit``
such elements come back with ``status == INFEASIBLE`` and NaN outputs.
"""

from ._common import (
    AT_BOUND,
    CONVERGED,
    INFEASIBLE,
    MAX_STEPS,
    NONFINITE,
    STATUS_MESSAGES,
)
from .closed_forms import (
    chinchilla_optimal,
    kaplan_frontier,
    kaplan_optimal,
    tokens_per_param_rule,
)
from .coverage import CoverageScalingParams, model_coverage, sampling_flops
from .data_constrained import data_constrained_optimal
from .dense import dense_optimal
from .inference import (
    SARDANA_COST_DEFAULTS,
    inference_budget_optimal,
    inference_cost_optimal,
    inference_target_optimal,
)
from .moe import (
    fine_grained_moe_optimal,
    joint_moe_optimal,
    moe_optimal,
    routed_moe_optimal,
)
from .optimal import PRECISION_MENU, optimal
from .planning import composed_optimal
from .precision import precision_optimal
from .quality import pools_optimal, quality_optimal
from .results import BINDING, AllocationResult, binding_names, to_row
from .solvers import Solution, minimize, minimize_scalar
from .testtime import SamplingResult, sampling_budget_optimal, sampling_target_optimal

__all__ = [
    "AT_BOUND",
    "BINDING",
    "CONVERGED",
    "INFEASIBLE",
    "MAX_STEPS",
    "NONFINITE",
    "PRECISION_MENU",
    "SARDANA_COST_DEFAULTS",
    "STATUS_MESSAGES",
    "AllocationResult",
    "CoverageScalingParams",
    "SamplingResult",
    "Solution",
    "binding_names",
    "chinchilla_optimal",
    "composed_optimal",
    "data_constrained_optimal",
    "dense_optimal",
    "fine_grained_moe_optimal",
    "inference_budget_optimal",
    "inference_cost_optimal",
    "inference_target_optimal",
    "joint_moe_optimal",
    "kaplan_frontier",
    "kaplan_optimal",
    "minimize",
    "minimize_scalar",
    "model_coverage",
    "moe_optimal",
    "optimal",
    "pools_optimal",
    "precision_optimal",
    "quality_optimal",
    "routed_moe_optimal",
    "sampling_budget_optimal",
    "sampling_flops",
    "sampling_target_optimal",
    "to_row",
    "tokens_per_param_rule",
]
