"""Input validation shared by every public function.

A concrete bad value raises ``ValueError`` naming the argument, the valid range, the
offending value and its index. Under ``jax.jit`` (traced inputs) nothing can be
raised; public functions then flag bad elements through their result (NaN outputs
and, where the result has one, a non-zero ``status``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from ._numerics import asfloat, broadcast


def is_concrete(x) -> bool:
    """True when ``x`` holds values now (not a tracer inside jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


def _first_bad(ok: np.ndarray, values: np.ndarray) -> str:
    bad = np.argwhere(~ok)
    idx = tuple(int(i) for i in bad[0])
    value = float(values[idx] if values.ndim else values)
    where = f" at index {idx}" if values.ndim else ""
    count = int(bad.shape[0])
    more = f" ({count} bad elements)" if count > 1 else ""
    return f"got {value:.6g}{where}{more}"


def check_range(
    name: str,
    x: ArrayLike,
    *,
    lower: float | None = 0.0,
    upper: float | None = None,
    lower_inclusive: bool = False,
    upper_inclusive: bool = False,
    finite: bool = True,
) -> jax.Array:
    """Return ``x`` as a float array after checking its values lie in a range.

    Concrete inputs are checked now; traced inputs pass through unchanged (use
    :func:`in_range` to flag them per element).

    Args:
      name: the argument's public name, used in the message.
      x: the values.
      lower, upper: bounds (``None`` for unbounded).
      lower_inclusive, upper_inclusive: whether the bounds themselves are valid.
      finite: require finite values (NaN is always rejected).

    Raises:
      ValueError: naming ``name``, the valid range and the first offending value.
    """
    x = asfloat(x)
    if not is_concrete(x):
        return x
    # A concrete array closed over inside jax.jit is still concrete: evaluate the
    # predicate now rather than staging it into the trace.
    with jax.ensure_compile_time_eval():
        ok = in_range(
            x,
            lower=lower,
            upper=upper,
            lower_inclusive=lower_inclusive,
            upper_inclusive=upper_inclusive,
            finite=finite,
        )
        all_ok = bool(jnp.all(ok))
    if not all_ok:
        lo = "-inf" if lower is None else f"{lower:g}"
        hi = "inf" if upper is None else f"{upper:g}"
        lb = "[" if lower_inclusive and lower is not None else "("
        ub = "]" if upper_inclusive and upper is not None else ")"
        kind = "finite values in " if finite else "values in "
        detail = _first_bad(np.asarray(ok), np.asarray(x))
        raise ValueError(f"{name} must be {kind}{lb}{lo}, {hi}{ub}; {detail}")
    return x


def in_range(
    x: ArrayLike,
    *,
    lower: float | None = 0.0,
    upper: float | None = None,
    lower_inclusive: bool = False,
    upper_inclusive: bool = False,
    finite: bool = True,
) -> jax.Array:
    """Elementwise validity mask for :func:`check_range`'s conditions (jit-safe)."""
    x = jnp.asarray(x)
    ok = ~jnp.isnan(x)
    if finite:
        ok &= jnp.isfinite(x)
    if lower is not None:
        ok &= (x >= lower) if lower_inclusive else (x > lower)
    if upper is not None:
        ok &= (x <= upper) if upper_inclusive else (x < upper)
    return ok


def check_positive(name: str, x: ArrayLike) -> jax.Array:
    """Return ``x`` as a float array after checking it is finite and > 0."""
    return check_range(name, x, lower=0.0)


def positive(x: ArrayLike) -> jax.Array:
    """Elementwise mask: finite and > 0 (jit-safe)."""
    return in_range(x, lower=0.0)


def check_fraction(name: str, x: ArrayLike, *, allow_zero: bool = False) -> jax.Array:
    """Return ``x`` after checking it lies in (0, 1] (or [0, 1] with ``allow_zero``)."""
    return check_range(
        name, x, lower=0.0, upper=1.0, lower_inclusive=allow_zero, upper_inclusive=True
    )


def check_whole(name: str, value, *, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` after checking it is a whole number >= minimum.

    Accepts Python and NumPy integers and floats with an integral value (``1e6``);
    rejects booleans, fractions, NaN and infinities, and strings that do not parse
    as such a number (so ``"1e6"`` from a command line is accepted).
    """
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = math.nan
    if isinstance(number, (bool, np.bool_)) or not isinstance(
        number, (int, float, np.integer, np.floating)
    ):
        raise ValueError(f"{name} must be a whole number >= {minimum}; got {value!r}")
    if not (math.isfinite(number) and float(number).is_integer() and number >= minimum):
        raise ValueError(f"{name} must be a whole number >= {minimum}; got {value!r}")
    return int(number)


def check_shapes(**arrays: ArrayLike) -> tuple[int, ...]:
    """Return the broadcast shape of the named arrays or raise naming the mismatch."""
    shapes = {k: tuple(jnp.shape(v)) for k, v in arrays.items()}
    try:
        return tuple(jnp.broadcast_shapes(*shapes.values()))
    except ValueError:
        desc = ", ".join(f"{k} {s}" for k, s in shapes.items())
        raise ValueError(f"shape mismatch: {desc} do not broadcast together") from None


def check_choice(name: str, value: str, choices: Iterable[str] | Mapping) -> str:
    """Check ``value`` is one of ``choices``; the message lists the valid names."""
    valid = list(choices)
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(sorted(valid))}")
    return value


def positive_inputs(**inputs: ArrayLike) -> tuple[jax.Array, list[jax.Array]]:
    """Check, broadcast and sanitize inputs that must be finite and > 0.

    Concrete bad values raise (naming the argument); shapes must broadcast. Returns
    the elementwise validity mask and the broadcast inputs with bad elements replaced
    by 1, so that logs and their gradients stay finite where the caller masks the
    output to NaN (the double-``where`` trick).
    """
    arrays = {k: check_positive(k, v) for k, v in inputs.items()}
    check_shapes(**arrays)
    values = broadcast(*arrays.values())
    valid = positive(values[0])
    for v in values[1:]:
        valid = valid & positive(v)
    return valid, [jnp.where(valid, v, 1.0) for v in values]


def flag(valid: jax.Array, *values: jax.Array) -> list[jax.Array]:
    """Replace elements where ``valid`` is False by NaN (gradient-safe)."""
    return [jnp.where(valid, v, jnp.nan) for v in values]
