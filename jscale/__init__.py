"""jscale: scaling laws for language models in JAX.

Losses, FLOP/energy accounting and compute-optimal allocation as pure, jit-compiled,
vmappable functions.

>>> import jscale
>>> plan = jscale.optimal("chinchilla-hoffmann2022", 1e24)
>>> round(float(plan.n_params) / 1e9, 1)
41.3
"""

from __future__ import annotations

from . import accounting, allocation, fitting, isoflop, laws, montecarlo, sweep
from .accounting import budget, get_hardware, training_flops
from .allocation import (
    AllocationResult,
    chinchilla_optimal,
    data_constrained_optimal,
    dense_optimal,
    inference_budget_optimal,
    inference_cost_optimal,
    inference_target_optimal,
    kaplan_frontier,
    kaplan_optimal,
    optimal,
    tokens_per_param_rule,
)
from .fitting import bootstrap, fit
from .isoflop import approach2, isoflop_minimum, isoflop_slice
from .laws import (
    BNSLParams,
    ChinchillaParams,
    ComputeLawParams,
    DataConstrainedParams,
    KaplanParams,
)

__version__ = "0.1.0"

__all__ = [
    "AllocationResult",
    "BNSLParams",
    "ChinchillaParams",
    "ComputeLawParams",
    "DataConstrainedParams",
    "KaplanParams",
    "__version__",
    "accounting",
    "allocation",
    "approach2",
    "bootstrap",
    "budget",
    "chinchilla_optimal",
    "data_constrained_optimal",
    "dense_optimal",
    "fit",
    "fitting",
    "get_hardware",
    "inference_budget_optimal",
    "inference_cost_optimal",
    "inference_target_optimal",
    "isoflop",
    "isoflop_minimum",
    "isoflop_slice",
    "kaplan_frontier",
    "kaplan_optimal",
    "laws",
    "montecarlo",
    "optimal",
    "sweep",
    "tokens_per_param_rule",
    "training_flops",
]
