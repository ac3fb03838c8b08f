"""Law families and named presets.

A *family* is a functional form: a ``*Params`` NamedTuple type and a pure loss
function ``loss(params, *inputs)``. A *preset* is a family with published constants,
the citation they come from and the units of the inputs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

#: Input names a family's loss can take, in the order of its signature. These are
#: the names used by the CLI (``--params``, ``--tokens``, ``--unique-tokens``, ...)
#: and by :meth:`Preset.loss` keyword arguments.
INPUT_NAMES = (
    "n_params",
    "n_tokens",
    "unique_tokens",
    "compute_flops",
    "steps",
    "x",
    "n_active_params",
    "experts",
    "granularity",
    "sparsity",
    "weight_bits",
    "activation_bits",
    "kv_cache_bits",
    "post_train_bits",
)


class Family(NamedTuple):
    """A functional form of a scaling law.

    Attributes:
      name: short name, e.g. ``"chinchilla"``.
      params_type: the ``*Params`` NamedTuple type holding its constants.
      loss: ``loss(params, *inputs) -> jax.Array``, elementwise with broadcasting.
      inputs: names of the loss's inputs after ``params``, from :data:`INPUT_NAMES`.
      formula: the law written out, for listings.
    """

    name: str
    params_type: type
    loss: Callable[..., jax.Array]
    inputs: tuple[str, ...]
    formula: str


def family(name: str, params_type: type, loss: Callable, formula: str) -> Family:
    """The :class:`Family` of ``loss``: its inputs are the loss's arguments after
    ``params``, in the order of its signature."""
    inputs = tuple(inspect.signature(loss).parameters)[1:]
    return Family(name, params_type, loss, inputs, formula)


class Preset(NamedTuple):
    """Published constants of one family, with their source.

    Attributes:
      name: registry name, e.g. ``"chinchilla-hoffmann2022"``.
      family: the :class:`Family`.
      params: an instance of ``family.params_type``.
      citation: paper, and the table or equation the constants come from.
      units: what the inputs and the loss are measured in.
      notes: caveats (rounding, what N counts, ...).
    """

    name: str
    family: Family
    params: Any
    citation: str
    units: str
    notes: str = ""

    def loss(self, *args, **kwargs) -> jax.Array:
        """Evaluate the family's loss with this preset's constants."""
        return self.family.loss(self.params, *args, **kwargs)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description: name, family, formula, constants, citation."""
        return {
            "name": self.name,
            "family": self.family.name,
            "formula": self.family.formula,
            "inputs": list(self.family.inputs),
            "params": {k: _plain(v) for k, v in self.params._asdict().items()},
            "citation": self.citation,
            "units": self.units,
            "notes": self.notes,
        }


def _plain(value: Any) -> float | list:
    """A constant as a JSON-ready float or (nested) list of floats."""
    arr = np.asarray(value, dtype=np.float64)
    return float(arr) if arr.ndim == 0 else arr.tolist()
