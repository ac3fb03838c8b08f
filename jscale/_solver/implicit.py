"""Implicit-function-theorem derivatives of a solution.

:func:`implicit` returns a solution ``z*(theta)`` computed elsewhere and gives it
the derivatives of the root of ``residual(z, theta) = 0``, so that ``jax.grad`` of
an optimum never differentiates through a solver's iterations.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def implicit(residual: Callable, z: jax.Array, theta: Any) -> jax.Array:
    """Return ``z``, differentiated as the solution of ``residual(z, theta) = 0``.

    ``z`` is a scalar or a vector (n,) computed elsewhere (its own derivatives are
    ignored); ``residual(z, theta)`` has the same shape. The tangent is
    ``dz = -(dr/dz)^-1 (dr/dtheta) dtheta`` (implicit function theorem). The rule
    calls this function again on the primal, so second derivatives are right too.
    ``residual`` must close over no traced values: pass them through ``theta``.
    """
    return z


@implicit.defjvp
def _implicit_jvp(residual, primals, tangents):
    z, theta = primals
    _, dtheta = tangents
    z = implicit(residual, z, theta)
    _, r_dot = jax.jvp(lambda th: residual(z, th), (theta,), (dtheta,))
    if jnp.ndim(z) == 0:
        _, r_z = jax.jvp(lambda v: residual(v, theta), (z,), (jnp.ones_like(z),))
        safe = jnp.where((r_z == 0) | ~jnp.isfinite(r_z), 1.0, r_z)
        dz = jnp.where(r_z == 0, 0.0, -r_dot / safe)
    else:
        jac = jax.jacfwd(lambda v: residual(v, theta))(z)
        dz = -jnp.linalg.solve(jac, r_dot)
    return z, dz
