"""isoFLOP slices, their minima, and Hoffmann's Approach 2.

Along an isoFLOP slice the training compute ``C = 6 N D`` is fixed, so the tokens are
``D = C / (6 N)`` and the loss is a function of ``N`` alone (Hoffmann et al. 2022,
arXiv:2203.15556, Sec. 3.2). Approach 2 fits a parabola to the loss against ``log N``
on each slice, takes its vertex as ``N_opt(C)``, then fits power laws
``N_opt = k_N C^a`` and ``D_opt = k_D C^b`` across budgets.

A law here is a preset name, a :class:`jscale.laws.Preset`, or any
``law(params, n_params, n_tokens, *args)`` that is elementwise in its array
arguments, such as a family's ``loss`` from :mod:`jscale.laws`.

- :mod:`.slices`: :func:`isoflop_slice` and :func:`isoflop_minimum`.
- :mod:`.approach2`: :func:`group_runs` (real runs, grouped by budget) and
  :func:`approach2` (parabolas, then power laws).
- :mod:`.bootstrap`: :func:`approach2_bootstrap`, runs resampled within budgets.

Hoffmann 2022's own Approach-2 exponents (a = 0.49, b = 0.51, Table 2) cannot be
reproduced here: their isoFLOP runs are not public. Porian et al. 2024's are, and
ship with jscale (``jscale.fitting.example_path("porian_isoflops")``).
"""

from .approach2 import Approach2Result, IsoFLOPRuns, approach2, group_runs
from .bootstrap import Approach2Bootstrap, approach2_bootstrap, within_budget_weights
from .slices import IsoFLOPMinimum, IsoFLOPSlice, LossFn, isoflop_minimum, isoflop_slice

__all__ = [
    "Approach2Bootstrap",
    "Approach2Result",
    "IsoFLOPMinimum",
    "IsoFLOPRuns",
    "IsoFLOPSlice",
    "LossFn",
    "approach2",
    "approach2_bootstrap",
    "group_runs",
    "isoflop_minimum",
    "isoflop_slice",
    "within_budget_weights",
]
