"""jscale: scaling laws for language models in JAX.

Losses, FLOP/energy accounting and compute-optimal allocation as pure, jit-compiled,
vmappable functions.
"""

from __future__ import annotations

from . import laws
from .laws import ChinchillaParams

__version__ = "0.1.0"

__all__ = ["ChinchillaParams", "__version__", "laws"]
