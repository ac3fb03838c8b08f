"""Shared test configuration.

The suite runs twice in CI: in float32 (JAX's default) and with ``JAX_ENABLE_X64=1``.
Nothing here flips the x64 setting; tests that need float64 references compute them
in NumPy.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

# Implicit rank promotion hides shape bugs; library code must broadcast explicitly.
jax.config.update("jax_numpy_rank_promotion", "raise")

X64 = bool(jax.config.jax_enable_x64)


def rtol(dtype=None) -> float:
    """Relative tolerance for comparing a jscale result with a float64 reference.

    float64: a few hundred ulps (1e-12) covers the exp/log chains of the laws
    (each transcendental op is accurate to ~1 ulp; compositions of ~10 of them, times
    condition numbers up to ~10, stay well below 1e-12).
    float32: eps is 1.2e-7; log(N) for N ~ 1e15 is ~35, so an absolute error of
    ~4e-6 in log N becomes ~alpha*4e-6 relative in the power term. 2e-5 leaves
    headroom for that without hiding real errors (a wrong constant moves results by
    >1e-3).
    """
    if dtype is None:
        dtype = jax.dtypes.canonicalize_dtype(np.float64)
    return 1e-12 if np.dtype(dtype) == np.float64 else 2e-5


@pytest.fixture
def tol():
    return rtol()


TRANSFORMS = {
    "eager": lambda f: f,
    "jit": jax.jit,
}


@pytest.fixture(params=sorted(TRANSFORMS))
def transform(request):
    """Run a test eagerly and under jit: both must give the same numbers."""
    return TRANSFORMS[request.param]
