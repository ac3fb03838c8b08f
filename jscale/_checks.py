"""Input validation shared by every public function.

A concrete bad value raises ``ValueError`` naming the argument, the valid range, the
offending value and its index. Under ``jax.jit`` (traced inputs) nothing can be
raised; public functions then flag bad elements through their result (NaN outputs
and, where the result has one, a non-zero ``status``).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from ._numerics import asfloat, broadcast, weak


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


class Range(NamedTuple):
    """The valid values of one input: bounds, whether they are included, finiteness.

    NaN is never valid. ``safe`` is a valid value that :func:`prepare` puts in place
    of an invalid element, so that logs and their gradients stay finite where the
    output is masked to NaN (the double-``where`` trick).
    """

    lower: float | None = 0.0
    upper: float | None = None
    lower_inclusive: bool = False
    upper_inclusive: bool = False
    finite: bool = True
    safe: float = 1.0

    def describe(self) -> str:
        """The range as a message writes it, e.g. ``"finite values in (0, inf)"``."""
        lo = "-inf" if self.lower is None else f"{self.lower:g}"
        hi = "inf" if self.upper is None else f"{self.upper:g}"
        lb = "[" if self.lower_inclusive and self.lower is not None else "("
        ub = "]" if self.upper_inclusive and self.upper is not None else ")"
        kind = "finite values in " if self.finite else "values in "
        return f"{kind}{lb}{lo}, {hi}{ub}"


#: Finite and > 0: sizes, counts, budgets (the default rule of :func:`prepare`).
POSITIVE = Range()
#: Finite and >= 0.
NONNEGATIVE = Range(lower_inclusive=True)
#: Finite and >= 1.
AT_LEAST_ONE = Range(lower=1.0, lower_inclusive=True)
#: In (0, 1]: a fraction such as MFU.
FRACTION = Range(upper=1.0, upper_inclusive=True)


def check_range(name: str, x: ArrayLike, **bounds) -> jax.Array:
    """Return ``x`` as a float array after checking its values lie in a range.

    Concrete inputs are checked now; traced inputs pass through unchanged (use
    :func:`in_range` to flag them per element).

    Args:
      name: the argument's public name, used in the message.
      x: the values.
      **bounds: the fields of :class:`Range` (``lower=0.0``, ``upper=None`` for
        unbounded, ``lower_inclusive``, ``upper_inclusive``, ``finite=True``; NaN is
        always rejected).

    Raises:
      ValueError: naming ``name``, the valid range and the first offending value.
    """
    x = asfloat(x)
    if not is_concrete(x):
        return x
    # Concrete values (a concrete array closed over inside jax.jit too) are tested
    # now, in NumPy: no JAX operation, so nothing to compile for a new shape.
    values = np.asarray(x)
    ok = in_range(values, **bounds)
    if not bool(np.all(ok)):
        detail = _first_bad(ok, values)
        raise ValueError(f"{name} must be {Range(**bounds).describe()}; {detail}")
    return x


def in_range(x: ArrayLike, **bounds) -> jax.Array:
    """Elementwise validity mask for :func:`check_range`'s conditions (jit-safe).

    A NumPy array gives a NumPy mask; anything else a JAX one.
    """
    rule = Range(**bounds)
    xp = np if isinstance(x, np.ndarray) else jnp
    x = xp.asarray(x)
    ok = ~xp.isnan(x)
    if rule.finite:
        ok &= xp.isfinite(x)
    if rule.lower is not None:
        ok &= (x >= rule.lower) if rule.lower_inclusive else (x > rule.lower)
    if rule.upper is not None:
        ok &= (x <= rule.upper) if rule.upper_inclusive else (x < rule.upper)
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


def prepare(
    rules: Mapping[str, Range] | None = None, /, **inputs: ArrayLike | None
) -> tuple[jax.Array | bool, list[jax.Array | None]]:
    """Check, broadcast and sanitize named elementwise inputs.

    Each input is checked with :func:`check_range` under its rule (``rules[name]``,
    :data:`POSITIVE` by default), in the order given, so that a concrete bad value
    raises naming the argument; shapes must broadcast. An input given as ``None``
    (optional, absent) is neither checked nor broadcast and comes back ``None``.
    Python numbers (booleans and integers too) stay weakly typed, so they take the
    dtype of the arrays they meet.

    Returns:
      ``(valid, arrays)``: the elementwise validity mask, and the inputs as float
      arrays broadcast to one shape with invalid elements replaced by their rule's
      ``safe`` value. ``valid`` is Python ``True`` when every input is concrete:
      they were all checked, and there is nothing to mask.
    """
    rules = {} if rules is None else rules
    given = {k: v for k, v in inputs.items() if v is not None}
    rule = {k: rules.get(k, POSITIVE) for k in given}
    arrays = {k: check_range(k, weak(v), **rule[k]._asdict()) for k, v in given.items()}
    check_shapes(**arrays)
    arrays = dict(zip(arrays, broadcast(*arrays.values()), strict=True))
    if all(is_concrete(a) for a in arrays.values()):
        valid = True
    else:
        valid = jnp.ones(jnp.shape(next(iter(arrays.values()))), dtype=bool)
        for k, a in arrays.items():
            valid = valid & in_range(a, **rule[k]._asdict())
        arrays = {k: jnp.where(valid, a, rule[k].safe) for k, a in arrays.items()}
    return valid, [arrays.get(k) for k in inputs]


def elementwise(**rules: Range) -> Callable[[Callable], Callable]:
    """Decorator: the arguments named in ``rules`` are elementwise inputs.

    The one "check the inputs, compute, flag what was invalid" pattern of the
    library's public functions. The wrapper runs :func:`prepare` on the arguments
    that ``rules`` names (in the order of the signature; one given as ``None`` is
    left alone), calls the function with the broadcast, sanitized arrays, and
    returns its result (an array or a pytree of arrays) with NaN where an input was
    invalid. Other arguments (constants, static options) pass through unchanged.
    ``rules`` may name more inputs than one function takes: a module keeps one
    table.
    """

    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn)
        names = [k for k in signature.parameters if k in rules]

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            valid, arrays = prepare(rules, **{k: bound.arguments[k] for k in names})
            bound.arguments.update(zip(names, arrays, strict=True))
            return masked(valid, fn(*bound.args, **bound.kwargs))

        return wrapper

    return decorate


def positive_inputs(**inputs: ArrayLike) -> tuple[jax.Array, list[jax.Array]]:
    """Check, broadcast and sanitize inputs that must be finite and > 0.

    :func:`prepare` with every rule :data:`POSITIVE`, and the validity mask always
    an array (of the broadcast shape).
    """
    valid, values = prepare(**inputs)
    if valid is True:
        valid = jnp.ones(jnp.shape(values[0]), dtype=bool)
    return valid, values


def flag(valid: jax.Array | bool, *values: jax.Array) -> list[jax.Array]:
    """Replace elements where ``valid`` is False by NaN (gradient-safe).

    ``valid`` may be Python ``True`` (from :func:`prepare`): nothing to replace.
    """
    return [masked(valid, v) for v in values]


def masked(valid: jax.Array | bool, result):
    """``result`` (an array or a pytree of arrays) with NaN where ``valid`` is False."""
    if valid is True:
        return result
    return jax.tree_util.tree_map(lambda v: jnp.where(valid, v, jnp.nan), result)
