"""Scaling-law families and their published presets.

Each family lives in its own module with a ``*Params`` NamedTuple, a pure elementwise
``loss`` and named presets citing their source (the MoE families in ``moe_clark``,
``moe_krajewski``, ``moe_ludziejewski`` and ``moe_abnar``, gathered in ``moe``). An
input has the same name and valid range in every family (``_inputs.RULES``). Look
presets up by name:

>>> from jscale import laws
>>> preset = laws.get("chinchilla-hoffmann2022")
>>> round(float(preset.loss(70e9, 1.4e12)), 3)
1.937
"""

from __future__ import annotations

from . import (
    bnsl,
    chinchilla,
    compute,
    data_constrained,
    inference,
    kaplan,
    moe,
    precision,
)
from ._registry import INPUT_NAMES, Family, Preset
from .bnsl import BNSLParams
from .chinchilla import ChinchillaParams
from .compute import ComputeLawParams
from .data_constrained import DataConstrainedParams
from .inference import CoverageParams
from .kaplan import KaplanParams, KaplanStepsParams, PowerLawParams
from .moe import AbnarParams, ClarkParams, JointMoEParams, KrajewskiParams
from .precision import PrecisionParams

_MODULES = (
    chinchilla,
    kaplan,
    data_constrained,
    bnsl,
    compute,
    moe,
    precision,
    inference,
)

#: Every named preset, by name.
PRESETS: dict[str, Preset] = {
    name: preset for module in _MODULES for name, preset in module.PRESETS.items()
}

#: Every family, by name.
FAMILIES: dict[str, Family] = {
    preset.family.name: preset.family for preset in PRESETS.values()
}


def names() -> list[str]:
    """The registered preset names, sorted."""
    return sorted(PRESETS)


def get(name: str) -> Preset:
    """The preset called ``name``.

    Raises:
      ValueError: for an unknown name, listing the valid ones.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown law {name!r}; valid: {', '.join(names())}")
    return PRESETS[name]


__all__ = [
    "INPUT_NAMES",
    "AbnarParams",
    "BNSLParams",
    "ChinchillaParams",
    "ClarkParams",
    "ComputeLawParams",
    "CoverageParams",
    "DataConstrainedParams",
    "FAMILIES",
    "Family",
    "JointMoEParams",
    "KaplanParams",
    "KaplanStepsParams",
    "KrajewskiParams",
    "PRESETS",
    "PowerLawParams",
    "PrecisionParams",
    "Preset",
    "bnsl",
    "chinchilla",
    "compute",
    "data_constrained",
    "get",
    "inference",
    "kaplan",
    "moe",
    "names",
    "precision",
]
