"""Fitting scaling laws to training runs: Approach 3, bootstrap, Approach 2.

Approach 3 (Hoffmann et al. 2022, arXiv:2203.15556, Eq. 3 and App. D.2, Eq. 11)
minimizes the Huber loss (``delta = 1e-3``) of the log residuals,

``sum_i H_delta(log L_hat(N_i, D_i) - log L_i)``, with
``log L_hat = LSE(a - alpha log N, b - beta log D, e)`` for the Chinchilla form
(``A, B, E = exp(a), exp(b), exp(e)``), from a grid of initializations (their grid:
alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1}, a, b in {0, 5, ..., 25};
4500 starts), keeping the best. ``objective="ml"`` is the maximum-likelihood
variant of Besiroglu, Erdil, Barnett & You 2024 (arXiv:2404.10102, "Chinchilla
Scaling: A replication attempt"): the log residuals follow a Huber-shaped density
``exp(-H_delta(r / sigma)) / (sigma Z_delta)`` with a free scale ``sigma``.

Any family of :mod:`jscale.laws` with a fitting model here can be fitted
(:data:`MODELS`: ``chinchilla``, ``kaplan``, ``data-constrained``, ``bnsl`` and
``moe``, Clark et al. 2022's routed law in N and the expert count E); parameters
can be frozen, tied (``alpha = beta``) or bounded. ``delta`` larger than every
log residual (e.g. ``delta=1``) turns the Huber loss into least squares on
``log L`` (Clark et al.'s objective). Observations come from a CSV, a column
mapping or arrays (:func:`observations`, :func:`read_columns`), with columns
renamed by ``columns`` and rows selected by ``where``. Example data with their
licences ship in ``jscale/data`` (:data:`EXAMPLES`).

Approach 2 (parabolas on isoFLOP slices, with bootstrap intervals on the
exponents) is in :mod:`jscale.isoflop`.

The solver. Every start (and every bootstrap resample) is one lane of a batch, and
the batch takes damped Newton steps on the few fitted coordinates: each step solves
one small ``m x m`` system per lane and evaluates the objective once at the trial
point, which is accepted if it is lower (Levenberg-Marquardt: the damping shrinks
after a success and grows after a failure). There is no line search, so no lane
waits on another's. Far from a minimum the curvature is the iteratively-reweighted
least-squares majorizer of the Huber loss (Gauss-Newton with weights
``psi(r) / r``: robust, every step a descent step); close to it, the exact Hessian
(quadratic convergence). Grid fits screen all starts for a few steps, keep the best
``keep`` and polish those to convergence; the others are reported as pruned.
Converged lanes stop changing, and the loop ends when every lane has stopped.

Convergence is scaled to the objective: a lane has converged when the decrease
predicted by the Newton model at its point (the Newton decrement
``g^T H^-1 g / 2``, an estimate of the distance to the floor of the objective) is
at most ``ftol`` times the objective. Every fit reports its status and that
decrement (:class:`FitResult`).

Bootstrap resamples are multinomial weights over the observations (Efron's
bootstrap as weights), so every resample has the same shapes and thousands of fits
run as one batch, warm-started at the full-data fit. Three things keep the batch
from wasting work: the first evaluation of every lane is the per-observation
terms at the shared start times the weight matrix (one matrix product instead of
a batched evaluation); the batch shrinks as lanes converge (when at most a quarter
still run, those continue in a batch a quarter of the size), so the slowest lanes
do not keep the converged ones iterating; and the Chinchilla form's derivatives
are in closed form (two exponentials and one logarithm per lane and observation,
its Hessian as ``-J J^T`` plus seven sparse terms).

Precision: fits are correct in float64. In float32 the objective itself is accurate
to about 1e-7 relative, which leaves fitted exponents uncertain at the 1e-3 level on
typical data (see :func:`fit`); a warning says so. Enable x64 for published-quality
fits (``jax.config.update("jax_enable_x64", True)``; jscale never flips it).
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from . import _checks, _status
from ._numerics import default_float
from .laws import bnsl, chinchilla, data_constrained, kaplan, moe

#: Grids of at most this many starts are polished whole (no screening): one
#: loop, which halves compilation, at little cost for small grids.
_POLISH_ALL = 256

#: Status codes of a fit (one per start or resample): the table in jscale._status.
STATUS_MESSAGES = _status.MESSAGES
CONVERGED, MAX_STEPS, NONFINITE, PRUNED, STALLED = (
    _status.CONVERGED,
    _status.MAX_STEPS,
    _status.NONFINITE,
    _status.PRUNED,
    _status.STALLED,
)


# ------------------------------------------------------------------------ the models


class Model(NamedTuple):
    """How to fit one law family.

    Attributes:
      family: the family's name in :data:`jscale.laws.FAMILIES`.
      coords: names of the fitted coordinates, e.g. ``("a", "b", "e", "alpha",
        "beta")`` (Hoffmann's parameterization).
      params: for each reported parameter, ``(name, coord, transform)`` with
        ``transform`` ``"log"`` (the parameter is ``exp(coord)``) or ``"id"``.
        Freezing, tying and bounds are given in these names and units.
      inputs: the family's inputs (names from :data:`jscale.laws.INPUT_NAMES`).
      log_predict: ``log_predict(theta, log_inputs) -> log L`` for one observation,
        ``theta`` of shape ``(len(coords),)`` and ``log_inputs`` a tuple of scalars.
      to_params: ``to_params(theta) -> *Params`` (leading axes allowed).
      grid: ``grid(log_inputs) -> (S, len(coords))`` default starts, given the logs
        of the observed inputs (each of shape ``(P,)``).
      derivatives: optional ``derivatives(theta, log_inputs, hessian) -> (value,
        jac, hess)`` in closed form (``jac`` a list of k arrays, ``hess`` a dict
        ``{(i, j): array}`` for ``i <= j``, or for a log-sum-exp of terms linear in
        the coordinates ``_LSEHessian(extras)``, or None); by default autodiff of
        ``log_predict`` (per observation, vmapped) provides them.
    """

    family: str
    coords: tuple[str, ...]
    params: tuple[tuple[str, str, str], ...]
    inputs: tuple[str, ...]
    log_predict: Callable
    to_params: Callable
    grid: Callable
    derivatives: Callable | None = None


def _product(*axes) -> np.ndarray:
    return np.array(list(itertools.product(*axes)), dtype=np.float64)


def hoffmann_grid() -> np.ndarray:
    """Hoffmann 2022's 4500 starts (App. D.2) as ``(a, b, e, alpha, beta)`` rows.

    alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1}, a, b in
    {0, 5, ..., 25}, in the order of Besiroglu et al.'s loop (alpha outermost).

    Examples:
      >>> hoffmann_grid().shape
      (4500, 5)
    """
    half = np.arange(0.0, 2.5, 0.5)
    rows = _product(
        half,
        half,
        np.arange(-1.0, 1.5, 0.5),
        np.arange(0.0, 30.0, 5.0),
        np.arange(0.0, 30.0, 5.0),
    )
    alpha, beta, e, a, b = rows.T
    return np.stack([a, b, e, alpha, beta], axis=1)


def _lse3(u1, u2, u3):
    """``log(exp(u1) + exp(u2) + exp(u3))``, elementwise, without overflow."""
    m = jnp.maximum(jnp.maximum(u1, u2), u3)
    return m + jnp.log(jnp.exp(u1 - m) + jnp.exp(u2 - m) + jnp.exp(u3 - m))


def _chinchilla_log_predict(theta, log_inputs):
    a, b, e, alpha, beta = theta
    log_n, log_d = log_inputs
    # Hoffmann 2022, Eq. 11: log L = LSE(a - alpha log N, b - beta log D, e).
    return _lse3(a - alpha * log_n, b - beta * log_d, e)


class _LSEHessian(NamedTuple):
    """The Hessian of a log-sum-exp prediction whose terms are linear in the
    coordinates: ``-grad grad^T + extras`` (``extras`` a dict of the few non-zero
    entries ``(i, j), i <= j`` of ``sum_j p_j v_j v_j^T``). Given in this form,
    the objective's Hessian costs one product per entry instead of three."""

    extras: dict


def _chinchilla_derivatives(theta, log_inputs, hessian):
    """Closed-form value, gradient and Hessian of the LSE form in (a, b, e, alpha,
    beta): with weights ``p = softmax(u)`` of the three terms ``u``,
    ``grad = sum_j p_j grad u_j`` and ``hess = sum_j p_j v_j v_j^T - grad grad^T``
    (each ``u_j`` is linear in the coordinates).

    The softmax takes two exponentials, not three: relative to the largest term,
    the other two are ``exp(-|hi - e|)`` and ``exp(lo - top)``, where ``hi``, ``lo``
    are the larger and smaller of the two power-law terms and ``top`` the largest
    of all three.
    """
    a, b, e, alpha, beta = theta
    log_n, log_d = log_inputs
    u1 = a - alpha * log_n
    u2 = b - beta * log_d
    first = u1 >= u2
    hi = jnp.maximum(u1, u2)
    lo = jnp.minimum(u1, u2)
    hi_top = hi >= e
    top = jnp.maximum(hi, e)
    x = jnp.exp(-jnp.abs(hi - e))
    y = jnp.exp(lo - top)
    total = 1.0 + x + y
    value = top + jnp.log(total)
    inv = 1.0 / total
    p_hi = jnp.where(hi_top, 1.0, x) * inv
    p3 = jnp.where(hi_top, x, 1.0) * inv
    p_lo = y * inv
    p1 = jnp.where(first, p_hi, p_lo)
    p2 = jnp.where(first, p_lo, p_hi)
    jac = [p1, p2, p3, -p1 * log_n, -p2 * log_d]
    if not hessian:
        return value, jac, None
    extras = {
        (0, 0): p1,
        (0, 3): -p1 * log_n,
        (3, 3): p1 * log_n * log_n,
        (1, 1): p2,
        (1, 4): -p2 * log_d,
        (4, 4): p2 * log_d * log_d,
        (2, 2): p3,
    }
    return value, jac, _LSEHessian(extras)


def _chinchilla_params(theta):
    theta = jnp.asarray(theta)
    a, b, e, alpha, beta = (theta[..., i] for i in range(5))
    return chinchilla.ChinchillaParams(
        E=jnp.exp(e), A=jnp.exp(a), B=jnp.exp(b), alpha=alpha, beta=beta
    )


def _kaplan_log_predict(theta, log_inputs):
    log_n_c, log_d_c, alpha_n, alpha_d = theta
    log_n, log_d = log_inputs
    # log L = alpha_D * log[(N_c/N)^(alpha_N/alpha_D) + D_c/D] (Kaplan 2020, Eq. 4.1)
    inner = jnp.logaddexp((alpha_n / alpha_d) * (log_n_c - log_n), log_d_c - log_d)
    return alpha_d * inner


def _kaplan_params(theta):
    theta = jnp.asarray(theta)
    return kaplan.KaplanParams(
        n_c=jnp.exp(theta[..., 0]),
        d_c=jnp.exp(theta[..., 1]),
        alpha_n=theta[..., 2],
        alpha_d=theta[..., 3],
    )


def _kaplan_grid(log_inputs):
    return _product(
        [25.0, 30.0, 35.0], [20.0, 25.0, 30.0, 35.0], [0.05, 0.1, 0.3], [0.05, 0.1, 0.3]
    )


def _dc_params(theta):
    if not isinstance(theta, tuple):
        theta = jnp.asarray(theta)
        theta = tuple(theta[..., i] for i in range(7))
    a, b, e, alpha, beta, log_rd, log_rn = theta
    return data_constrained.DataConstrainedParams(
        E=jnp.exp(e),
        A=jnp.exp(a),
        B=jnp.exp(b),
        alpha=alpha,
        beta=beta,
        r_d_star=jnp.exp(log_rd),
        r_n_star=jnp.exp(log_rn),
    )


def _dc_log_predict(theta, log_inputs):
    log_n, log_d, log_u = log_inputs
    value = data_constrained.loss(
        _dc_params(theta), jnp.exp(log_n), jnp.exp(log_d), jnp.exp(log_u)
    )
    return jnp.log(value)


def _dc_grid(log_inputs):
    return _product(
        [5.0, 10.0],
        [5.0, 10.0],
        [0.0, 0.5],
        [0.25, 0.5],
        [0.25, 0.5],
        [math.log(5.0), math.log(15.0)],
        [math.log(5.0)],
    )


def _bnsl_params(theta):
    theta = jnp.asarray(theta)
    log_a, log_b, c0, c1, log_d1, log_f1 = (theta[..., i] for i in range(6))
    return bnsl.BNSLParams(
        a=jnp.exp(log_a),
        b=jnp.exp(log_b),
        c0=c0,
        c=c1[..., None],
        d=jnp.exp(log_d1)[..., None],
        f=jnp.exp(log_f1)[..., None],
    )


def _bnsl_log_predict(theta, log_inputs):
    (log_x,) = log_inputs
    log_a, log_b, c0, c1, log_d1, log_f1 = theta
    f1 = jnp.exp(log_f1)
    # Caballero 2022, Eq. 1 with one break, in log space:
    # log y = LSE(log a, log b - c0 log x - c1 f1 softplus((log x - log d1) / f1)).
    z = (log_x - log_d1) / f1
    log_break = c1 * f1 * jnp.logaddexp(0.0, z)
    return jnp.logaddexp(log_a, log_b - c0 * log_x - log_break)


def _bnsl_grid(log_inputs):
    (log_x,) = log_inputs
    q = np.quantile(np.asarray(log_x, np.float64), [0.25, 0.5, 0.75])
    return _product(
        [-1.0, 0.0, 1.0], [0.0, 3.0], [0.1, 0.5], [-0.3, 0.3], q, [math.log(0.3), 0.0]
    )


_LN10 = math.log(10.0)


def _clark_params(theta):
    theta = jnp.asarray(theta)
    a, b, c, d, log_start, log_max = (theta[..., i] for i in range(6))
    return moe.ClarkParams(
        a=a, b=b, c=c, d=d, e_start=jnp.exp(log_start), e_max=jnp.exp(log_max)
    )


def _clark_log_predict(theta, log_inputs):
    a, b, c, d, log_start, log_max = theta
    log_n, log_e = log_inputs
    # Clark 2022, Eq. 1 in natural logs: ln L = a ln N + b ln Ê + c ln N ln Ê / ln 10
    # + d ln 10, with the saturating Ê of their notebook (moe.saturating_experts).
    log_hat = moe.log_expert_hat(jnp.exp(log_e), jnp.exp(log_start), jnp.exp(log_max))
    return a * log_n + b * log_hat + (c / _LN10) * log_n * log_hat + d * _LN10


def _clark_grid(log_inputs):
    # a, b, c, d enter log L linearly; the grid mostly explores E_start and E_max
    # (Clark's notebook draws random starts for log2 E_start and log2 E_max).
    return _product(
        [-0.1, -0.05],
        [-0.2, -0.1],
        [0.0, 0.01],
        [1.0, 1.2],
        [math.log(1.5), math.log(4.0)],
        [math.log(100.0), math.log(500.0)],
    )


#: Fitting models by family name (also the CLI's ``--law`` choices).
MODELS: dict[str, Model] = {
    "chinchilla": Model(
        family="chinchilla",
        coords=("a", "b", "e", "alpha", "beta"),
        params=(
            ("E", "e", "log"),
            ("A", "a", "log"),
            ("B", "b", "log"),
            ("alpha", "alpha", "id"),
            ("beta", "beta", "id"),
        ),
        inputs=("n_params", "n_tokens"),
        log_predict=_chinchilla_log_predict,
        to_params=_chinchilla_params,
        grid=lambda log_inputs: hoffmann_grid(),
        derivatives=_chinchilla_derivatives,
    ),
    "kaplan": Model(
        family="kaplan",
        coords=("log_n_c", "log_d_c", "alpha_n", "alpha_d"),
        params=(
            ("n_c", "log_n_c", "log"),
            ("d_c", "log_d_c", "log"),
            ("alpha_n", "alpha_n", "id"),
            ("alpha_d", "alpha_d", "id"),
        ),
        inputs=("n_params", "n_tokens"),
        log_predict=_kaplan_log_predict,
        to_params=_kaplan_params,
        grid=_kaplan_grid,
    ),
    "data-constrained": Model(
        family="data-constrained",
        coords=("a", "b", "e", "alpha", "beta", "log_r_d_star", "log_r_n_star"),
        params=(
            ("E", "e", "log"),
            ("A", "a", "log"),
            ("B", "b", "log"),
            ("alpha", "alpha", "id"),
            ("beta", "beta", "id"),
            ("r_d_star", "log_r_d_star", "log"),
            ("r_n_star", "log_r_n_star", "log"),
        ),
        inputs=("n_params", "n_tokens", "unique_tokens"),
        log_predict=_dc_log_predict,
        to_params=_dc_params,
        grid=_dc_grid,
    ),
    "bnsl": Model(
        family="bnsl",
        coords=("log_a", "log_b", "c0", "c_1", "log_d_1", "log_f_1"),
        params=(
            ("a", "log_a", "log"),
            ("b", "log_b", "log"),
            ("c0", "c0", "id"),
            ("c_1", "c_1", "id"),
            ("d_1", "log_d_1", "log"),
            ("f_1", "log_f_1", "log"),
        ),
        inputs=("x",),
        log_predict=_bnsl_log_predict,
        to_params=_bnsl_params,
        grid=_bnsl_grid,
    ),
    "moe": Model(
        family="moe-clark2022",
        coords=("a", "b", "c", "d", "log_e_start", "log_e_max"),
        params=(
            ("a", "a", "id"),
            ("b", "b", "id"),
            ("c", "c", "id"),
            ("d", "d", "id"),
            ("e_start", "log_e_start", "log"),
            ("e_max", "log_e_max", "log"),
        ),
        inputs=("n_active_params", "experts"),
        log_predict=_clark_log_predict,
        to_params=_clark_params,
        grid=_clark_grid,
    ),
}


def _model_name(model: Model) -> str:
    """The :data:`MODELS` key of a model (its family name if it has none)."""
    return next((k for k, m in MODELS.items() if m is model), model.family)


def get_model(law: str | Model) -> Model:
    """The fitting :class:`Model` for a family name (or the model itself)."""
    if isinstance(law, Model):
        return law
    _checks.check_choice("law family", law, MODELS)
    return MODELS[law]


# ---------------------------------------------------------------------- observations


class Observations(NamedTuple):
    """Training runs to fit: the family's inputs and the final losses.

    Attributes:
      inputs: the family's inputs by name (e.g. ``n_params``, ``n_tokens``), each a
        float array of shape ``(P,)``.
      loss: the observed losses, shape ``(P,)`` (> 0).
      rows: the row number of each observation in its source (for messages).
    """

    inputs: dict
    loss: jax.Array
    rows: np.ndarray


#: Column names read by default (a mapping ``{name: column}`` overrides them).
DEFAULT_COLUMNS = {
    "n_params": "n_params",
    "n_tokens": "n_tokens",
    "unique_tokens": "unique_tokens",
    "compute_flops": "compute_flops",
    "x": "x",
    "n_active_params": "n_active_params",
    "experts": "experts",
    "loss": "loss",
}


def _read_csv(path: str | os.PathLike) -> dict[str, list[str]]:
    with open(path, newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{os.fspath(path)}: empty file, no header") from None
        header = [h.strip() for h in header]
        columns: dict[str, list[str]] = {h: [] for h in header}
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(
                    f"{os.fspath(path)}: line {lineno} has {len(row)} fields, the "
                    f"header has {len(header)}"
                )
            for h, v in zip(header, row, strict=True):
                columns[h].append(v.strip())
    return columns


def _column_names(source) -> list[str]:
    if hasattr(source, "columns"):  # pandas-like DataFrame
        return [str(c) for c in source.columns]
    return [str(c) for c in source.keys()]


def _as_float_column(values, name: str) -> np.ndarray:
    if isinstance(values, jax.core.Tracer):
        return values
    if hasattr(values, "to_numpy"):  # pandas Series
        values = values.to_numpy()
    if isinstance(values, list) and values and isinstance(values[0], str):
        out = np.empty(len(values))
        for i, v in enumerate(values):
            try:
                out[i] = float(v) if v != "" else np.nan
            except ValueError:
                raise ValueError(
                    f"column {name!r}: row {i} is not a number: {v!r}"
                ) from None
        return out
    arr = np.asarray(values)
    if arr.dtype == object:
        arr = arr.astype(np.float64)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"column {name!r} is not numeric (dtype {arr.dtype})")
    return arr


#: Inputs with a lower limit beyond positivity: an expert count is at least 1.
INPUT_MIN = {"experts": 1.0}


def _table(source: Any, arrays: Mapping[str, Any]) -> tuple[Any, str]:
    """The column table of a source, and how to name it in messages."""
    if source is None:
        return dict(arrays), "arrays"
    if arrays:
        raise ValueError("give either a source or arrays, not both")
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise ValueError(f"no such file: {path}")
        return _read_csv(source), path
    if hasattr(source, "keys") or hasattr(source, "columns"):
        return source, "data"
    raise ValueError(
        "source must be a CSV path, a mapping of columns (dict, DataFrame) "
        f"or Observations; got {type(source).__name__}"
    )


def _select_rows(table, present, where, label) -> np.ndarray | None:
    """Indices of the rows whose columns equal the ``where`` values (or None)."""
    if not where:
        return None
    keep = None
    for column, value in where.items():
        if column not in present:
            raise ValueError(
                f"{label}: where: no column {column!r}; columns present: "
                f"{', '.join(map(repr, present))}"
            )
        values = table[column]
        if hasattr(values, "to_numpy"):
            values = values.to_numpy()
        if isinstance(values, jax.core.Tracer):
            raise ValueError("where: rows cannot be selected on traced values")
        arr = np.asarray(values)
        if np.issubdtype(arr.dtype, np.number):
            try:
                match = arr == float(value)
            except ValueError:
                match = np.zeros(arr.shape, bool)
        else:
            match = np.array([str(v).strip() == str(value).strip() for v in arr])
        keep = match if keep is None else keep & match
    rows = np.flatnonzero(keep)
    if rows.size == 0:
        desc = ", ".join(f"{k}={v!r}" for k, v in where.items())
        raise ValueError(f"{label}: no rows match where {desc}")
    return rows


def read_columns(
    source: Any,
    names: Sequence[str],
    *,
    columns: Mapping[str, str] | None = None,
    where: Mapping[str, Any] | None = None,
    substitutes: Mapping[str, Sequence[str]] | None = None,
    purpose: str = "",
    hint: str = "",
    **arrays: ArrayLike,
) -> tuple[dict[str, Any], np.ndarray]:
    """Read named inputs from a CSV, a column mapping or arrays, and check them.

    The reader behind :func:`observations` (and ``jscale isoflop --data``).

    Args:
      source: a CSV path, a mapping of column name to values (dict, DataFrame), or
        ``None`` with ``arrays``.
      names: the inputs to read, e.g. ``("n_params", "n_tokens", "loss")``.
      columns: ``{input: column}`` overriding :data:`DEFAULT_COLUMNS`.
      where: ``{column: value}``: keep only the rows whose column equals the value
        (text equality for text columns, numeric for numeric ones), e.g.
        ``{"router_type": "Hash"}``.
      substitutes: ``{input: other inputs}`` read instead when the input's column
        is absent and all the others are present (the caller derives the input).
      purpose: what the inputs are for, in messages (e.g. ``"law 'kaplan'"``).
      hint: appended to the missing-column message.
      **arrays: the inputs as arrays, by input name (with ``source=None``).

    Returns:
      ``(values, rows)``: each input read (a substitute's inputs in its place) as
      a float64 NumPy array (or as given, if traced) of shape ``(P,)``, and the
      source row of each value (counted from 0, header excluded).

    Raises:
      ValueError: naming the missing columns (and those present), or the column
        and rows of non-numeric, non-positive, NaN or infinite values (experts
        below 1), or unequal lengths.

    Examples:
      >>> values, rows = read_columns(
      ...     {"n_params": [1e8, 2e8, 4e8], "loss": [3.0, 2.9, 2.8], "set": [1, 2, 1]},
      ...     ("n_params", "loss"), where={"set": 1})
      >>> values["n_params"].tolist(), rows.tolist()
      ([100000000.0, 400000000.0], [0, 2])
    """
    names_map = dict(DEFAULT_COLUMNS)
    if columns:
        unknown = sorted(set(columns) - set(names_map))
        if unknown:
            raise ValueError(
                f"unknown input(s) in columns: {', '.join(unknown)}; valid: "
                f"{', '.join(sorted(names_map))}"
            )
        names_map.update(columns)
    table, label = _table(source, arrays)
    if source is None:
        names_map = {k: k for k in names_map} | {
            k: v for k, v in names_map.items() if v in table
        }
    present = _column_names(table)
    need = list(names)
    for name, others in (substitutes or {}).items():
        if (
            name in need
            and names_map[name] not in present
            and all(names_map[o] in present for o in others)
        ):
            i = need.index(name)
            need[i : i + 1] = [o for o in others if o not in need]
    missing = [names_map[k] for k in need if names_map[k] not in present]
    if missing:
        what = f" for {purpose}" if purpose else ""
        raise ValueError(
            f"{label}: missing column(s) {', '.join(map(repr, missing))}{what}"
            f"{hint}; columns present: {', '.join(map(repr, present)) or 'none'}"
        )
    selected = _select_rows(table, present, where, label)
    values = {k: _as_float_column(table[names_map[k]], names_map[k]) for k in need}
    lengths = {names_map[k]: np.shape(v) for k, v in values.items()}
    if len(set(lengths.values())) != 1 or any(len(s) != 1 for s in lengths.values()):
        desc = ", ".join(f"{k} {s}" for k, s in lengths.items())
        raise ValueError(f"{label}: columns must be 1-D of equal length; got {desc}")
    num = int(next(iter(lengths.values()))[0])
    rows = np.arange(num) if selected is None else selected
    if selected is not None:
        values = {k: v[selected] for k, v in values.items()}
    if all(_checks.is_concrete(v) for v in values.values()):
        for k, v in values.items():
            v = np.asarray(v, np.float64)
            low = INPUT_MIN.get(k)
            ok = np.isfinite(v) & ((v >= low) if low is not None else (v > 0))
            bad = np.flatnonzero(~ok)
            if bad.size:
                shown = ", ".join(str(int(rows[i])) for i in bad[:10])
                more = f" and {bad.size - 10} more" if bad.size > 10 else ""
                need_text = f">= {low:g}" if low is not None else "> 0"
                raise ValueError(
                    f"{label}: column {names_map[k]!r} must be finite and "
                    f"{need_text}; bad value(s) "
                    f"{', '.join(f'{v[i]:g}' for i in bad[:3])} in row(s) "
                    f"{shown}{more} (rows counted from 0, header excluded)"
                )
            values[k] = v
    return values, rows


def observations(
    source: Any = None,
    law: str | Model = "chinchilla",
    *,
    columns: Mapping[str, str] | None = None,
    where: Mapping[str, Any] | None = None,
    **arrays: ArrayLike,
) -> Observations:
    """Collect and check the observations a family needs.

    Args:
      source: a CSV path, any mapping of column name to values (a dict, a pandas
        DataFrame: anything with ``keys()`` or ``columns`` and ``[name]``), an
        :class:`Observations` (returned as is), or ``None`` with ``arrays``.
      law: the family name (:data:`MODELS`) whose inputs are needed.
      columns: ``{input: column}`` overriding :data:`DEFAULT_COLUMNS`, e.g.
        ``{"n_params": "Model Size", "compute_flops": "Training FLOP"}``.
      where: ``{column: value}``: keep only the matching rows (see
        :func:`read_columns`), e.g. ``{"router_type": "Hash"}``.
      **arrays: the inputs and ``loss`` as arrays, by input name.

    ``compute_flops`` stands in for ``n_tokens`` when the latter is absent:
    ``D = C / (6 N)`` (Hoffmann 2022, Sec. 3.3).

    Returns:
      :class:`Observations` in the default float dtype (float64 under x64);
      ``rows`` holds each observation's row in the source.

    Raises:
      ValueError: naming the missing columns (and those present), or the rows with
        non-positive, NaN or infinite values, or too few rows.

    Examples:
      >>> obs = observations({"n_params": [1e8, 1e9], "n_tokens": [2e9, 2e10],
      ...                     "loss": [3.1, 2.6]})
      >>> obs.inputs["n_params"].shape
      (2,)
    """
    if isinstance(source, Observations):
        return source
    model = get_model(law)
    names_map = dict(DEFAULT_COLUMNS) | dict(columns or {})
    hint = ""
    if "n_tokens" in model.inputs:
        hint = (
            f" ({names_map['compute_flops']!r} may stand in for "
            f"{names_map['n_tokens']!r})"
        )
    values, rows = read_columns(
        source,
        tuple(model.inputs) + ("loss",),
        columns=columns,
        where=where,
        substitutes={"n_tokens": ("compute_flops", "n_params")},
        purpose=f"law {_model_name(model)!r}",
        hint=hint,
        **arrays,
    )
    if "compute_flops" in values and "n_tokens" in model.inputs:
        # D = C / (6 N), in float64 when the values are at hand (C ~ 1e22 would
        # lose digits through logs in float32).
        c = values.pop("compute_flops")
        values["n_tokens"] = c / (6.0 * values["n_params"])
    dtype = default_float()
    out = {k: jnp.asarray(v, dtype) for k, v in values.items()}
    inputs = {k: out[k] for k in model.inputs}
    return Observations(inputs, out["loss"], rows)


# --------------------------------------------------------------- parameter structure


class _Structure(NamedTuple):
    """Free coordinates z (m,) -> theta (k,): ``theta = z @ P.T + offset``."""

    P: np.ndarray  # (k, m)
    offset: np.ndarray  # (k,)
    lower: np.ndarray  # (m,)
    upper: np.ndarray  # (m,)
    free: tuple[str, ...]  # a name per free coordinate


def _to_coord(model: Model, name: str, value: float) -> tuple[str, float]:
    for pname, coord, transform in model.params:
        if name in (pname, coord):
            if name == coord and pname != coord:
                return coord, float(value)  # given in coordinate units
            if transform == "log":
                return coord, math.log(value) if value > 0 else -math.inf
            return coord, float(value)
    valid = sorted({p for p, _, _ in model.params} | set(model.coords))
    raise ValueError(
        f"unknown parameter {name!r} for law {model.family!r}; "
        f"valid: {', '.join(valid)}"
    )


def _structure(
    model: Model,
    freeze: Mapping[str, float] | None,
    tie: Sequence[Sequence[str]],
    bounds: Mapping[str, tuple[float | None, float | None]] | None,
    extra: tuple[str, ...] = (),
) -> _Structure:
    coords = list(model.coords) + list(extra)
    k = len(coords)
    frozen: dict[str, float] = {}
    for name, value in (freeze or {}).items():
        coord, v = _to_coord(model, name, value)
        if not math.isfinite(v):
            raise ValueError(f"freeze: {name} = {value} is not a valid value")
        frozen[coord] = v
    # union-find over ties
    parent = {c: c for c in coords}

    def root(c):
        while parent[c] != c:
            c = parent[c]
        return c

    for group in tie:
        cs = []
        for name in group:
            coord, _ = _to_coord(model, name, 1.0)
            cs.append(coord)
        transforms = {t for p, c, t in model.params if c in cs}
        if len(transforms) > 1:
            raise ValueError(f"tie: {list(group)} mix log and linear parameters")
        for c in cs[1:]:
            parent[root(c)] = root(cs[0])
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(coords):
        groups.setdefault(root(c), []).append(i)
    free_groups = []
    offset = np.zeros(k)
    for members in groups.values():
        names = [coords[i] for i in members]
        fixed = [frozen[n] for n in names if n in frozen]
        if fixed:
            for i in members:
                offset[i] = fixed[0]
        else:
            free_groups.append(members)
    m = len(free_groups)
    P = np.zeros((k, m))
    lower = np.full(m, -np.inf)
    upper = np.full(m, np.inf)
    for j, members in enumerate(free_groups):
        P[members, j] = 1.0
    for name, (lo, hi) in (bounds or {}).items():
        coord, _ = _to_coord(model, name, 1.0)
        i = coords.index(coord)
        j = int(np.flatnonzero(P[i])[0]) if P[i].any() else None
        if j is None:
            continue
        if lo is not None:
            lower[j] = max(lower[j], _to_coord(model, name, lo)[1])
        if hi is not None:
            upper[j] = min(upper[j], _to_coord(model, name, hi)[1])
        if not lower[j] < upper[j]:
            raise ValueError(f"bounds: empty range for {name}: ({lo}, {hi})")
    free = tuple("=".join(coords[i] for i in members) for members in free_groups)
    return _Structure(P, offset, lower, upper, free)


# -------------------------------------------------------------------------- objective


def huber(r: ArrayLike, delta: float = 1e-3) -> jax.Array:
    """Huber's loss ``r^2/2`` for ``|r| <= delta``, else ``delta (|r| - delta/2)``.

    Hoffmann 2022, Eq. 3 (applied to log residuals).

    Examples:
      >>> float(huber(0.5, 1.0)), float(huber(3.0, 1.0))
      (0.125, 2.5)
    """
    r = jnp.asarray(r)
    a = jnp.abs(r)
    return jnp.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def huber_log_normalizer(delta: float = 1e-3) -> float:
    """``log Z`` of the Huber density ``exp(-H_delta(t)) / Z`` (unit scale).

    ``Z = sqrt(2 pi) (1 - 2 Phi(-delta)) + 2 exp(-delta^2 / 2) / delta``: the
    Gaussian core on ``|t| <= delta`` plus two exponential tails (Besiroglu 2024).
    """
    phi = 0.5 * math.erfc(delta / math.sqrt(2.0))
    z = math.sqrt(2 * math.pi) * (1 - 2 * phi) + 2 * math.exp(-0.5 * delta**2) / delta
    return math.log(z)


def _autodiff_derivatives(model, theta, xi, hessian):
    """Value, gradient and (upper) Hessian of ``model.log_predict`` by autodiff.

    ``theta`` is a tuple of ``(S, 1)`` arrays and ``xi`` a tuple of ``(1, B)``
    arrays. The prediction is written for one lane and one observation (a scalar
    function of the coordinate vector), differentiated with ``jax.grad`` and
    ``jax.hessian`` and vmapped over observations and lanes: the prediction is
    traced a few times, not once per Hessian entry, which keeps compilation short.
    """
    k = len(theta)
    tv = jnp.concatenate(theta, axis=-1)  # (S, k)
    xs = tuple(x[0] for x in xi)  # (B,) each

    def scalar(t, *x):
        return model.log_predict(tuple(t[i] for i in range(k)), x)

    def per_point(t, *x):
        value, grad = jax.value_and_grad(scalar)(t, *x)
        hess = jax.hessian(scalar)(t, *x) if hessian else None
        return value, grad, hess

    per_lane = jax.vmap(per_point, in_axes=(None,) + (0,) * len(xs))
    value, grad, hess = jax.vmap(per_lane, in_axes=(0,) + (None,) * len(xs))(tv, *xs)
    jac = [grad[..., i] for i in range(k)]
    if not hessian:
        return value, jac, None
    return value, jac, {(i, j): hess[..., i, j] for i in range(k) for j in range(i, k)}


def _point_terms(model, ml, delta, theta, xi, yi, w, newton):
    """One block of observations' weighted terms of (f, g, H) for every lane.

    ``theta`` is a tuple of ``(S, 1)`` arrays and ``xi``, ``yi``, ``w`` hold a block
    of observations as ``(1, B)`` (``w``: ``(S, B)``), so every operation is
    elementwise. Derivatives of the prediction come from ``model.derivatives`` or
    forward-mode autodiff (one tangent per coordinate). ``newton`` is a per-lane
    0/1 array (1: exact Hessian, 0: IRLS majorizer) or ``False`` (IRLS only; no
    second derivatives are formed). Returns ``[f, g_0.., H_00, H_01, ..]`` (upper
    triangle of H, row by row), each ``(S,)``.
    """
    k = len(model.coords)
    th = tuple(theta[:k])
    want_hessian = newton is not False
    if model.derivatives is not None:
        value, jac, hess = model.derivatives(th, xi, want_hessian)
    else:
        value, jac, hess = _autodiff_derivatives(model, th, xi, want_hessian)
    if not want_hessian:
        newton = 0.0
    r = value - yi
    if ml:
        s = theta[k]
        inv = jnp.exp(-s)
        t = r * inv
    else:
        inv = None
        t = r
    a = jnp.abs(t)
    inside = a <= delta
    dpsi = inside.astype(r.dtype)
    psi = jnp.clip(t, -delta, delta)
    irls = jnp.where(inside, 1.0, delta / jnp.where(inside, 1.0, a))
    curv = newton * dpsi + (1.0 - newton) * irls
    rho = jnp.where(inside, 0.5 * t * t, delta * (a - 0.5 * delta))
    if ml:
        rho = rho + s
        rho_r = psi * inv
        rho_rr = curv * inv * inv
        rho_s = 1.0 - psi * t
        rho_rs = -(newton * (dpsi * t + psi) + (1.0 - newton) * 2.0 * psi) * inv
        rho_ss = curv * t * t + psi * t
        grads = [rho_r * j for j in jac] + [rho_s]
    else:
        rho_r = psi
        rho_rr = curv
        grads = [rho_r * j for j in jac]

    def total(x):
        return jnp.sum(w * x, axis=-1)

    out = [total(rho)] + [total(g) for g in grads]
    K = k + (1 if ml else 0)
    lse = want_hessian and isinstance(hess, _LSEHessian)
    if lse:  # rho'' J J^T + rho' (-J J^T + extras)
        outer = rho_rr - newton * rho_r
        second = newton * rho_r
    for i in range(K):
        for j in range(i, K):
            if i < k and j < k and lse:
                h = outer * jac[i] * jac[j]
                if (i, j) in hess.extras:
                    h = h + second * hess.extras[i, j]
            elif i < k and j < k:
                h = rho_rr * jac[i] * jac[j]
                if want_hessian:
                    h = h + newton * rho_r * hess[i, j]
            elif i < k:
                h = rho_rs * jac[i]
            else:
                h = rho_ss
            out.append(total(h))
    return out


#: Lanes times observations evaluated per step of the loop over observations:
#: blocks keep small batches from paying one loop step per observation, and
#: large ones from materializing (lanes x observations) temporaries.
_BLOCK_ELEMENTS = 4096
#: Up to this many lanes times observations, all observations are evaluated at
#: once, without the loop: small fits (most families' grids) then compile about
#: twice as fast, and their temporaries stay small.
_UNBLOCKED_ELEMENTS = 1 << 16


def _evaluate(spec, z, P, offset, log_x, log_y, weights, newton):
    """Objective, gradient and curvature for every lane. z: (S, m)."""
    model, ml, delta = spec
    theta_mat = z @ P.T + offset[None, :]  # (S, K)
    K = P.shape[0]
    S = z.shape[0]
    num = log_y.shape[0]
    theta = tuple(theta_mat[:, i : i + 1] for i in range(K))
    if newton is not False:
        newton = jnp.broadcast_to(jnp.asarray(newton, z.dtype), (S,))[:, None]
    if S * num <= _UNBLOCKED_ELEMENTS:
        acc = _point_terms(
            model,
            ml,
            delta,
            theta,
            tuple(x[None, :] for x in log_x),
            log_y[None, :],
            weights,
            newton,
        )
        return _assemble(acc, P, K, ml, delta, weights)
    block = max(1, min(num, _BLOCK_ELEMENTS // max(S, 1)))
    nblocks = -(-num // block)
    pad = nblocks * block - num
    # Padded observations have weight 0 and harmless finite values.
    log_x = [jnp.pad(x, (0, pad)).reshape(nblocks, 1, block) for x in log_x]
    log_y = jnp.pad(log_y, (0, pad)).reshape(nblocks, 1, block)
    w = jnp.pad(weights, ((0, 0), (0, pad))).reshape(S, nblocks, block)
    w = jnp.moveaxis(w, 1, 0)

    def body(acc, xs):
        xi, yi, wi = xs
        terms = _point_terms(model, ml, delta, theta, tuple(xi), yi, wi, newton)
        return [a + b for a, b in zip(acc, terms, strict=True)], None

    n_out = 1 + K + K * (K + 1) // 2
    init = [jnp.zeros(S, z.dtype) for _ in range(n_out)]
    acc, _ = jax.lax.scan(body, init, (log_x, log_y, w))
    return _assemble(acc, P, K, ml, delta, weights)


def _assemble(acc, P, K, ml, delta, weights):
    """``(f, g, H)`` in the free coordinates from the summed terms."""
    f = acc[0]
    g = jnp.stack(acc[1 : 1 + K], axis=-1)
    upper = acc[1 + K :]
    rows = [[None] * K for _ in range(K)]
    q = 0
    for i in range(K):
        for j in range(i, K):
            rows[i][j] = rows[j][i] = upper[q]
            q += 1
    H = jnp.stack([jnp.stack(row, axis=-1) for row in rows], axis=-2)
    g = g @ P
    H = jnp.einsum("ki,skl,lj->sij", P, H, P)
    if ml:
        f = f + jnp.sum(weights, axis=1) * huber_log_normalizer(delta)
    return f, g, H


def _cholesky_solve(A, b):
    """Solve ``A x = b`` for a batch of small SPD matrices, unrolled.

    Returns ``(x, ok)``; ``ok`` is False where ``A`` is not positive definite.
    """
    m = A.shape[-1]
    tiny = jnp.finfo(A.dtype).tiny
    L = [[None] * m for _ in range(m)]
    ok = jnp.ones(A.shape[:-2], bool)
    for j in range(m):
        s = A[..., j, j] - sum((L[j][q] ** 2 for q in range(j)), 0.0)
        ok = ok & (s > 0)
        L[j][j] = jnp.sqrt(jnp.maximum(s, tiny))
        for i in range(j + 1, m):
            L[i][j] = (
                A[..., i, j] - sum((L[i][q] * L[j][q] for q in range(j)), 0.0)
            ) / L[j][j]
    y = [None] * m
    for i in range(m):
        y[i] = (b[..., i] - sum((L[i][q] * y[q] for q in range(i)), 0.0)) / L[i][i]
    x = [None] * m
    for i in reversed(range(m)):
        x[i] = (y[i] - sum((L[q][i] * x[q] for q in range(i + 1, m)), 0.0)) / L[i][i]
    return jnp.stack(x, axis=-1), ok


class _State(NamedTuple):
    z: jax.Array  # (S, m) current point
    f: jax.Array  # (S,) objective there (inf before the first evaluation)
    g: jax.Array  # (S, m)
    H: jax.Array  # (S, m, m)
    lam: jax.Array  # (S,) damping
    decrement: jax.Array  # (S,) Newton decrement at z (inf if unknown)
    status: jax.Array  # (S,) int32; -1 while running
    steps: jax.Array  # (S,) int32 accepted or rejected trial steps taken


def _damped(H, lam):
    d = jnp.diagonal(H, axis1=-2, axis2=-1)
    scale = jnp.abs(d) + 1e-9 * jnp.max(jnp.abs(d), axis=-1, keepdims=True)
    scale = jnp.maximum(scale, jnp.finfo(H.dtype).tiny)
    eye = jnp.eye(H.shape[-1], dtype=H.dtype)
    return H + (lam[:, None] * scale)[:, :, None] * eye[None]


def _mask_active(H, active):
    eye = jnp.eye(H.shape[-1], dtype=H.dtype)
    keep = ~active
    Hm = jnp.where(keep[:, :, None] & keep[:, None, :], H, 0.0)
    return Hm + jnp.where(active[:, :, None], eye[None], 0.0)


def _active(z, g, lower, upper):
    """Coordinates at a bound with the gradient pushing outwards (held fixed)."""
    return ((z <= lower) & (g > 0)) | ((z >= upper) & (g < 0))


def _decrement(g, H, active):
    """Newton decrement ``g^T H^-1 g / 2`` over the free, inactive coordinates.

    Infinite where ``H`` is not positive definite (not at a minimum yet).
    """
    g = jnp.where(active, 0.0, g)
    Hm = _mask_active(H, active)
    step, ok = _cholesky_solve(Hm, g)
    return jnp.where(ok, jnp.abs(0.5 * jnp.sum(g * step, axis=-1)), jnp.inf)


def _start(z0):
    S = z0.shape[0]
    m = z0.shape[1]
    dt = z0.dtype
    return _State(
        z0,
        jnp.full(S, jnp.inf, dt),
        jnp.zeros((S, m), dt),
        jnp.zeros((S, m, m), dt),
        jnp.full(S, 1e-3, dt),
        jnp.full(S, jnp.inf, dt),
        jnp.full(S, -1, jnp.int32),
        jnp.zeros(S, jnp.int32),
    )


def _iterate(
    spec,
    state,
    P,
    offset,
    data,
    lower,
    upper,
    ftol,
    max_steps,
    newton_after,
    stop_count=0,
):
    """Damped Newton / IRLS trial steps until at most ``stop_count`` lanes are
    still running (every lane has stopped, by default) or ``max_steps``.

    A lane whose objective is still ``inf`` (not yet evaluated) takes a zero step,
    so its first trial evaluates the start itself. Lanes use the IRLS majorizer for
    their first ``newton_after`` steps and the exact Hessian after; only Newton
    steps may declare convergence (the majorizer overstates the curvature, which
    would understate the decrement).
    """
    log_x, log_y, weights = data
    lam_max = 1e16
    # An absolute floor for exact data (objective ~ 0): the Huber sum if every
    # residual were min(delta, 1e-3) (1e-3 in log loss is below the noise of any
    # real run). ftol times it is far below any noise in real data.
    floor = 0.5 * min(spec[2], 1e-3) ** 2 * jnp.sum(weights, axis=1)

    def cond(st):
        running = st.status < 0
        return (jnp.sum(running) > stop_count) & (
            jnp.min(jnp.where(running, st.steps, max_steps)) < max_steps
        )

    def body(st):
        running = st.status < 0
        fresh = ~jnp.isfinite(st.f)
        active = _active(st.z, st.g, lower, upper)
        g = jnp.where(active, 0.0, st.g)
        step, ok = _cholesky_solve(_damped(_mask_active(st.H, active), st.lam), -g)
        step = jnp.where((ok & ~fresh)[:, None], step, 0.0)
        z_t = jnp.clip(st.z + step, lower, upper)
        if newton_after >= max_steps:
            newton = False  # IRLS only: no second derivatives are formed
            is_newton = jnp.zeros(st.steps.shape, bool)
        else:
            newton = (st.steps >= newton_after).astype(z_t.dtype)
            is_newton = newton > 0
        f_t, g_t, H_t = _evaluate(spec, z_t, P, offset, log_x, log_y, weights, newton)
        finite = (
            jnp.isfinite(f_t)
            & jnp.all(jnp.isfinite(g_t), -1)
            & jnp.all(jnp.isfinite(H_t), (-2, -1))
        )
        good = running & finite & ((f_t < st.f) | fresh) & (ok | fresh)
        z = jnp.where(good[:, None], z_t, st.z)
        f = jnp.where(good, f_t, st.f)
        g_new = jnp.where(good[:, None], g_t, st.g)
        H = jnp.where(good[:, None, None], H_t, st.H)
        lam = jnp.where(good, jnp.maximum(st.lam / 5.0, 1e-12), st.lam * 4.0)
        lam = jnp.where(running & ~fresh, lam, st.lam)
        dec = _decrement(g_new, H, _active(z, g_new, lower, upper))
        dec = jnp.where(good, dec, st.decrement)
        steps = st.steps + running.astype(jnp.int32)
        small = dec <= ftol * (jnp.abs(f) + floor)
        stalled = lam > lam_max
        # A Newton decrement is a trustworthy distance to the floor; the IRLS one
        # (larger curvature) understates it, so it only confirms a lane that can no
        # longer decrease the objective at all.
        converged = small & (is_newton | stalled)
        status = jnp.where(running & converged, CONVERGED, st.status)
        status = jnp.where(running & fresh & ~finite, NONFINITE, status)
        status = jnp.where((status < 0) & stalled, STALLED, status)
        status = jnp.where((status < 0) & (steps >= max_steps), MAX_STEPS, status)
        return _State(z, f, g_new, H, lam, dec, status.astype(jnp.int32), steps)

    return jax.lax.while_loop(cond, body, state)


#: Large batches (bootstrap) shrink as their lanes converge: the batch iterates
#: until at most a quarter of its lanes are still running, then those continue in
#: a batch of a quarter of the size, and so on down to ``_COMPACT_MIN_LANES``, so
#: that the slowest few lanes do not keep the whole batch iterating. (A
#: warm-started bootstrap needs a median of ~8 steps and its slowest lanes ~35.)
_COMPACT_FACTOR = 4
_COMPACT_MIN_LANES = 64


def _polish(spec, st, P, offset, data, lower, upper, ftol, max_steps, newton_after):
    S = st.z.shape[0]
    cap = S // _COMPACT_FACTOR
    if cap < _COMPACT_MIN_LANES:
        return _iterate(
            spec, st, P, offset, data, lower, upper, ftol, max_steps, newton_after
        )
    st = _iterate(
        spec, st, P, offset, data, lower, upper, ftol, max_steps, newton_after, cap
    )
    # At most ``cap`` lanes are still running: continue them in a smaller batch.
    log_x, log_y, weights = data
    _, idx = jax.lax.top_k((st.status < 0).astype(jnp.int32), cap)
    sub = _State(*(x[idx] for x in st))
    sub = _polish(
        spec,
        sub,
        P,
        offset,
        (log_x, log_y, weights[idx]),
        lower,
        upper,
        ftol,
        max_steps,
        newton_after,
    )
    return _State(*(x.at[idx].set(y) for x, y in zip(st, sub, strict=True)))


def _start_shared(spec, z0, P, offset, log_x, log_y, weights, lower, upper):
    """The state after every lane's first evaluation, when all lanes start at the
    same point and differ only in their observation weights (a warm-started
    bootstrap): the objective, gradient and curvature are linear in the weights,
    so they are the per-observation terms at that point (one cheap evaluation
    with one-hot weights) times the weight matrix, instead of a full evaluation
    of every lane. The first step's curvature is the IRLS majorizer, as in
    :func:`_iterate`.
    """
    num = log_y.shape[0]
    S, m = z0.shape
    z_one = jnp.broadcast_to(z0[:1], (num, m))
    eye = jnp.eye(num, dtype=z0.dtype)
    f_p, g_p, H_p = _evaluate(spec, z_one, P, offset, log_x, log_y, eye, False)
    f = weights @ f_p
    g = weights @ g_p
    H = (weights @ H_p.reshape(num, m * m)).reshape(S, m, m)
    finite = (
        jnp.isfinite(f)
        & jnp.all(jnp.isfinite(g), -1)
        & jnp.all(jnp.isfinite(H), (-2, -1))
    )
    st = _start(z0)
    z = jnp.broadcast_to(z0[:1], z0.shape)
    dec = _decrement(g, H, _active(z, g, lower, upper))
    return _State(
        z,
        jnp.where(finite, f, jnp.inf),
        jnp.where(finite[:, None], g, 0.0),
        jnp.where(finite[:, None, None], H, 0.0),
        st.lam,
        jnp.where(finite, dec, jnp.inf),
        jnp.where(finite, -1, NONFINITE).astype(jnp.int32),
        jnp.ones(S, jnp.int32),
    )


@partial(
    jax.jit,
    static_argnames=(
        "spec",
        "keep",
        "screen_steps",
        "irls_steps",
        "max_steps",
        "shared_start",
    ),
)
def _solve(
    spec,
    z0,
    P,
    offset,
    log_x,
    log_y,
    weights,
    lower,
    upper,
    ftol,
    *,
    keep,
    screen_steps,
    irls_steps,
    max_steps,
    shared_start=False,
):
    """Screen all starts, keep the best ``keep``, polish them: one compile.

    ``weights`` is ``(S, P)``: a row of observation weights per lane.
    ``shared_start``: every lane starts at ``z0[0]`` (see :func:`_start_shared`).
    """
    data = (log_x, log_y, weights)
    S = z0.shape[0]
    lower, upper = lower[None, :], upper[None, :]
    z0 = jnp.clip(z0, lower, upper)
    if shared_start and keep >= S:
        sk = _start_shared(spec, z0, P, offset, log_x, log_y, weights, lower, upper)
        return _polish(
            spec, sk, P, offset, data, lower, upper, ftol, max_steps, irls_steps + 1
        )
    if keep < S:
        st = _iterate(
            spec,
            _start(z0),
            P,
            offset,
            data,
            lower,
            upper,
            ftol,
            screen_steps + 1,
            screen_steps + 2,
        )
        score = jnp.where(jnp.isfinite(st.f), st.f, jnp.inf)
        _, idx = jax.lax.top_k(-score, keep)
        sub = (log_x, log_y, weights[idx])
        sk = _start(st.z[idx])
    else:
        sub = data
        sk = _start(z0)
    sk = _polish(
        spec, sk, P, offset, sub, lower, upper, ftol, max_steps, irls_steps + 1
    )
    if keep < S:
        status = jnp.where(jnp.isfinite(st.f), PRUNED, NONFINITE).astype(jnp.int32)
        return _State(
            st.z.at[idx].set(sk.z),
            st.f.at[idx].set(sk.f),
            st.g.at[idx].set(sk.g),
            st.H.at[idx].set(sk.H),
            st.lam.at[idx].set(sk.lam),
            st.decrement.at[idx].set(sk.decrement),
            status.at[idx].set(sk.status),
            st.steps.at[idx].add(sk.steps),
        )
    return sk


# ------------------------------------------------------------------------ public API


class FitResult(NamedTuple):
    """A fitted law and how the fit went.

    Attributes:
      params: the best fit as the family's ``*Params`` NamedTuple.
      theta: the best fit's coordinates (``Model.coords``; with ``objective="ml"``
        one more, ``log_scale``), shape ``(k,)``.
      objective: the objective there: the Huber sum (Hoffmann 2022, Eq. 3; summed,
        not averaged, with the observation weights) or, for ``"ml"``, the negative
        log-likelihood.
      status: the best fit's status (:data:`STATUS_MESSAGES`; 0 is converged).
      decrement: the Newton decrement there, the predicted distance to the floor of
        the objective (``<= ftol * objective`` when converged).
      scale: the fitted ``sigma`` of the ``"ml"`` objective (NaN for ``"huber"``).
      starts: per start ``theta`` ``(S, k)``, ``objective`` ``(S,)``, ``status``
        ``(S,)``, ``decrement`` ``(S,)`` and ``steps`` ``(S,)``, as a
        :class:`StartResults`. Pruned starts report their state after screening.
      names: the reported parameter names, in ``params`` order.
      settings: the options used (``objective``, ``delta``, ``ftol``, ``keep``, ...).
    """

    params: Any
    theta: jax.Array
    objective: jax.Array
    status: jax.Array
    decrement: jax.Array
    scale: jax.Array
    starts: StartResults
    names: tuple[str, ...]
    settings: dict


class StartResults(NamedTuple):
    """Every start's (or resample's) outcome, one row each."""

    theta: jax.Array
    objective: jax.Array
    status: jax.Array
    decrement: jax.Array
    steps: jax.Array


class BootstrapResult(NamedTuple):
    """Bootstrap fits (multinomial resamples of the observations).

    Attributes:
      params: the fitted laws with a leading resample axis, ``(K,)`` leaves: ready
        for Monte Carlo (``jax.vmap`` over it, or broadcast).
      stderr: bootstrap standard errors (sample standard deviation, ``ddof=1``)
        of each reported parameter, in its own units (A, not log A), as a
        ``*Params``; computed over the converged resamples.
      low, high: percentile interval bounds at ``confidence`` (``*Params``).
      fits: per resample ``theta``, ``objective``, ``status``, ``decrement`` and
        ``steps`` (:class:`StartResults`).
      weights: the multinomial counts, ``(K, P)``.
      confidence: the interval's coverage, e.g. 0.95.
      names: the reported parameter names.
    """

    params: Any
    stderr: Any
    low: Any
    high: Any
    fits: StartResults
    weights: jax.Array
    confidence: float
    names: tuple[str, ...]


def _default_ftol(dtype) -> float:
    # float64: 1e-13 of the objective. The decrement is the quadratic model's
    # remaining decrease, and Newton steps converge quadratically, so asking for
    # ~1000 ulps of the objective costs about one more step and leaves the fit
    # below (not merely near) what a converged SciPy run reaches; the parameters
    # are then converged to ~sqrt(1e-13) of their standard errors. float32: the
    # objective itself is only accurate to ~1e-7 relative (hundreds of terms
    # summed), so 1e-6 is the most that can be asked.
    return 1e-13 if jnp.dtype(dtype) == jnp.float64 else 1e-6


def _warn_float32(dtype) -> None:
    if jnp.dtype(dtype) != jnp.float64:
        warnings.warn(
            "jscale.fitting: fitting in float32; the objective is accurate to about "
            "1e-7, which leaves fitted exponents uncertain at the 1e-3 level and "
            "coefficients (A, B) at about 1e-2. Enable x64 "
            "(jax.config.update('jax_enable_x64', True)) for published-quality fits.",
            RuntimeWarning,
            stacklevel=3,
        )


def _theta_names(model: Model, ml: bool) -> tuple[str, ...]:
    return tuple(model.coords) + (("log_scale",) if ml else ())


def _public(model: Model, theta: jax.Array) -> dict[str, jax.Array]:
    """Reported parameters (own units) from coordinates, leading axes kept."""
    index = {c: i for i, c in enumerate(model.coords)}
    out = {}
    for name, coord, transform in model.params:
        v = theta[..., index[coord]]
        out[name] = jnp.exp(v) if transform == "log" else v
    return out


def _params_of(model: Model, values: Mapping[str, jax.Array]):
    """A family ``*Params`` from reported values (same names or coords)."""
    theta = []
    for coord in model.coords:
        for name, c, transform in model.params:
            if c == coord:
                v = jnp.asarray(values[name])
                theta.append(jnp.log(v) if transform == "log" else v)
    return model.to_params(jnp.stack(theta, axis=-1))


def _prepare(obs: Observations, model: Model):
    log_x = tuple(jnp.log(obs.inputs[k]) for k in model.inputs)
    log_y = jnp.log(obs.loss)
    return log_x, log_y


def _resolve_starts(starts, model, log_x, structure, ml, dtype):
    if starts is None:
        grid = np.asarray(model.grid(tuple(np.asarray(x) for x in log_x)), np.float64)
    elif isinstance(starts, tuple) and hasattr(starts, "_fields"):  # a *Params
        values = {n: np.asarray(getattr(starts, n), np.float64) for n in starts._fields}
        grid = np.stack(
            [
                np.log(values[n]) if t == "log" else values[n]
                for coord in model.coords
                for n, c, t in model.params
                if c == coord
            ],
            axis=-1,
        ).reshape(-1, len(model.coords))
    else:
        grid = np.asarray(starts, np.float64)
        if grid.ndim == 1:
            grid = grid[None, :]
        if grid.shape[-1] != len(model.coords):
            raise ValueError(
                f"starts must have {len(model.coords)} columns "
                f"({', '.join(model.coords)}); got shape {grid.shape}"
            )
    if ml:
        grid = np.concatenate([grid, np.full((grid.shape[0], 1), np.nan)], axis=1)
    # free coordinates: the first member of each tie group
    P = structure.P
    z = np.stack(
        [grid[:, int(np.flatnonzero(P[:, j])[0])] for j in range(P.shape[1])], 1
    )
    return z


def _initial_log_scale(z, structure, model, log_x, log_y, delta, ml):
    """For ``"ml"``: start log sigma at the value optimal for the start's residuals."""
    if not ml:
        return z
    k = len(model.coords)
    j = P_col = None
    for j in range(structure.P.shape[1]):
        if structure.P[k, j]:
            P_col = j
    if P_col is None:
        return z
    zz = np.where(np.isnan(z), 0.0, z)
    theta = zz @ structure.P.T + structure.offset
    pred = model.log_predict(
        tuple(jnp.asarray(theta[:, i][:, None]) for i in range(k)),
        tuple(x[None, :] for x in log_x),
    )
    r = np.asarray(pred) - np.asarray(log_y)[None, :]
    # In the linear regime the optimal sigma is delta * mean|r| (d NLL / d sigma = 0).
    sigma = np.maximum(delta * np.mean(np.abs(r), axis=1), 1e-12)
    z = z.copy()
    z[:, P_col] = np.where(np.isnan(z[:, P_col]), np.log(sigma), z[:, P_col])
    return z


def _irls_default(irls_steps, ml, max_steps):
    if irls_steps is None:
        return int(max_steps) if ml else 30
    if int(irls_steps) < 0:
        raise ValueError(f"irls_steps must be >= 0; got {irls_steps}")
    return int(irls_steps)


def fit(
    data: Any,
    law: str | Model = "chinchilla",
    *,
    objective: str = "huber",
    delta: float = 1e-3,
    starts: Any = None,
    freeze: Mapping[str, float] | None = None,
    tie: Sequence[Sequence[str]] = (),
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    weights: ArrayLike | None = None,
    columns: Mapping[str, str] | None = None,
    where: Mapping[str, Any] | None = None,
    keep: int | None = None,
    screen_steps: int = 12,
    irls_steps: int | None = None,
    max_steps: int = 300,
    ftol: float | None = None,
) -> FitResult:
    """Fit a law family to observations (Hoffmann 2022's Approach 3).

    Minimizes ``sum_i w_i H_delta(log L_hat_i - log L_i)`` (``objective="huber"``,
    Hoffmann 2022 Eq. 3) or the negative log-likelihood of a Huber-shaped density
    with a free scale (``"ml"``, Besiroglu et al. 2024) from every start, and keeps
    the best. All starts run as one batch (see the module docstring for the solver).

    Args:
      data: observations: a CSV path, a column mapping (dict or DataFrame) or
        :class:`Observations` (see :func:`observations`).
      law: a family name from :data:`MODELS` or a :class:`Model`.
      objective: ``"huber"`` or ``"ml"``.
      delta: the Huber threshold on log residuals (Hoffmann: 1e-3).
      starts: initial coordinates ``(S, k)`` in ``Model.coords`` order, a
        ``*Params`` (one start, or leaves with a leading axis), or ``None`` for the
        family's default grid (Hoffmann's 4500 starts for ``chinchilla``).
      freeze: parameter values held fixed, by reported name (``{"E": 1.69}``) or
        coordinate (``{"e": 0.52}``).
      tie: groups of parameters constrained equal, e.g. ``[("alpha", "beta")]``.
      bounds: ``{name: (low, high)}`` in the parameter's units (``None`` for open).
      weights: optional non-negative weight per observation, ``(P,)``.
      columns, where: column names and row selection, as for
        :func:`observations`.
      keep: how many screened starts are polished to convergence (default: all
        of them up to 256 starts, as one loop that compiles fast; the best 64 of
        larger grids such as Hoffmann's 4500).
      screen_steps: IRLS steps every start takes before the best ``keep`` are kept.
      irls_steps: IRLS steps of the polished starts before exact Newton steps
        (default 30 for ``"huber"``; for ``"ml"`` all steps are IRLS steps: its
        fitted scale makes the effective Huber threshold ``delta * sigma`` tiny
        (about 5e-9 on Epoch's data), a nearly non-smooth problem on which the
        majorizer's monotone steps reach the floor and Newton steps stall).
      max_steps: bound on the steps of the polishing loop.
      ftol: convergence tolerance relative to the objective (default 1e-13 in
        float64, 1e-6 in float32).

    Returns:
      A :class:`FitResult`.

    Raises:
      ValueError: for bad data (naming rows or columns), fewer observations than
        free parameters, unknown names, or bad options.

    Examples:
      >>> import jax
      >>> import numpy as np
      >>> from jscale import fitting, laws
      >>> n = np.repeat(np.logspace(8, 10, 6), 4)
      >>> d = np.tile(np.logspace(9.5, 11.5, 4), 6)
      >>> loss = np.asarray(laws.get("chinchilla-besiroglu2024").loss(n, d))
      >>> with jax.enable_x64(True):  # fits want float64 (float32 warns)
      ...     r = fitting.fit({"n_params": n, "n_tokens": d, "loss": loss},
      ...                     starts=[[6.0, 7.0, 0.5, 0.3, 0.3]])
      >>> int(r.status), round(float(r.params.alpha), 4)
      (0, 0.3478)
    """
    model = get_model(law)
    _checks.check_choice("objective", objective, ("huber", "ml"))
    if not (isinstance(delta, (int, float)) and delta > 0 and math.isfinite(delta)):
        raise ValueError(f"delta must be a finite number > 0; got {delta!r}")
    for name, v in (("keep", 1 if keep is None else keep), ("max_steps", max_steps)):
        if int(v) < 1:
            raise ValueError(f"{name} must be >= 1; got {v}")
    obs = observations(data, model, columns=columns, where=where)
    ml = objective == "ml"
    irls_steps = _irls_default(irls_steps, ml, max_steps)
    extra = ("log_scale",) if ml else ()
    structure = _structure(model, freeze, tie, bounds, extra)
    num, m = int(obs.loss.shape[0]), len(structure.free)
    if num < m:
        raise ValueError(
            f"{num} observations cannot determine {m} free parameters "
            f"({', '.join(structure.free)}); give more rows or freeze/tie parameters"
        )
    dtype = obs.loss.dtype
    _warn_float32(dtype)
    log_x, log_y = _prepare(obs, model)
    z0 = _resolve_starts(starts, model, log_x, structure, ml, dtype)
    z0 = _initial_log_scale(z0, structure, model, log_x, log_y, delta, ml)
    S = z0.shape[0]
    if weights is None:
        w = jnp.ones((num,), dtype)
    else:
        w = _checks.check_range("weights", weights, lower=0.0, lower_inclusive=True)
        if w.shape != (num,):
            raise ValueError(f"weights must have shape ({num},); got {w.shape}")
        w = w.astype(dtype)
    ftol = _default_ftol(dtype) if ftol is None else float(ftol)
    if keep is None:
        keep = S if S <= _POLISH_ALL else 64
    keep = min(int(keep), S)
    st = _solve(
        (model, ml, float(delta)),
        jnp.asarray(z0, dtype),
        jnp.asarray(structure.P, dtype),
        jnp.asarray(structure.offset, dtype),
        log_x,
        log_y,
        jnp.broadcast_to(w, (S, num)),
        jnp.asarray(structure.lower, dtype),
        jnp.asarray(structure.upper, dtype),
        jnp.asarray(ftol, dtype),
        keep=keep,
        screen_steps=int(screen_steps),
        irls_steps=int(irls_steps),
        max_steps=int(max_steps),
    )
    theta = (
        st.z @ jnp.asarray(structure.P.T, dtype)
        + jnp.asarray(structure.offset, dtype)[None, :]
    )
    score = jnp.where(jnp.isfinite(st.f) & (st.status != NONFINITE), st.f, jnp.inf)
    best = jnp.argmin(score)
    k = len(model.coords)
    starts_out = StartResults(theta, st.f, st.status, st.decrement, st.steps)
    settings = {
        "law": model.family,
        "objective": objective,
        "delta": float(delta),
        "ftol": ftol,
        "starts": S,
        "keep": keep,
        "screen_steps": int(screen_steps),
        "irls_steps": int(irls_steps),
        "max_steps": int(max_steps),
        "dtype": str(jnp.dtype(dtype)),
        "frozen": dict(freeze or {}),
        "tied": [list(g) for g in tie],
        "bounds": {k2: list(v) for k2, v in (bounds or {}).items()},
        "observations": num,
    }
    return FitResult(
        params=model.to_params(theta[best, :k]),
        theta=theta[best],
        objective=st.f[best],
        status=st.status[best],
        decrement=st.decrement[best],
        scale=jnp.exp(theta[best, k]) if ml else jnp.asarray(jnp.nan, dtype),
        starts=starts_out,
        names=tuple(p for p, _, _ in model.params),
        settings=settings,
    )


def resample_weights(key: jax.Array, num_points: int, num_resamples: int) -> jax.Array:
    """Multinomial bootstrap counts, ``(num_resamples, num_points)``.

    Resample ``i`` draws ``num_points`` indices uniformly with replacement using
    ``jax.random.fold_in(key, i)``, so a resample does not depend on how many are
    drawn; its counts sum to ``num_points``.

    Examples:
      >>> import jax
      >>> w = resample_weights(jax.random.key(0), 5, 3)
      >>> w.shape, [int(s) for s in w.sum(axis=1)]
      ((3, 5), [5, 5, 5])
    """

    pieces = [
        _resample_chunk(key, jnp.asarray(start, jnp.int32), num_points=num_points)
        for start in range(0, int(num_resamples), _RESAMPLE_CHUNK)
    ]
    return jnp.concatenate(pieces)[: int(num_resamples)]


#: Resamples are drawn in chunks of this many: one compilation serves any number.
_RESAMPLE_CHUNK = 256


@partial(jax.jit, static_argnames=("num_points",))
def _resample_chunk(key, start, *, num_points):
    def one(i):
        idx = jax.random.randint(
            jax.random.fold_in(key, i), (num_points,), 0, num_points
        )
        return jnp.zeros(num_points, default_float()).at[idx].add(1.0)

    # a sequential map compiles faster than vmap over the random draws
    return jax.lax.map(one, start + jnp.arange(_RESAMPLE_CHUNK))


def bootstrap(
    key: jax.Array,
    data: Any,
    law: str | Model = "chinchilla",
    *,
    num_resamples: int = 1000,
    init: FitResult | Any = None,
    confidence: float = 0.95,
    objective: str = "huber",
    delta: float = 1e-3,
    freeze: Mapping[str, float] | None = None,
    tie: Sequence[Sequence[str]] = (),
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    columns: Mapping[str, str] | None = None,
    where: Mapping[str, Any] | None = None,
    weights: ArrayLike | None = None,
    irls_steps: int | None = None,
    max_steps: int = 300,
    ftol: float | None = None,
) -> BootstrapResult:
    """Bootstrap the fit: refit on multinomial resamples, all in one batch.

    Each resample is a vector of counts over the observations
    (:func:`resample_weights`), so every fit has the same shapes; all of them run
    as one batch of lanes, warm-started from ``init`` (the full-data fit; by
    default :func:`fit` with the same options), as Besiroglu et al. 2024 did
    (their bootstrap refits start from one point).

    Args:
      key: a ``jax.random`` key; resample ``i`` uses ``fold_in(key, i)``.
      data: the observations (see :func:`fit`).
      law: the family name or :class:`Model`.
      num_resamples: K.
      init: the starting point: a :class:`FitResult`, a ``*Params``, or ``None``.
      confidence: coverage of the percentile intervals (0 < confidence < 1).
      objective, delta, freeze, tie, bounds, columns, where, max_steps, ftol: as for
        :func:`fit`.
      weights: explicit resamples as counts ``(K, P)`` (then ``key`` and
        ``num_resamples`` are ignored), e.g. to reuse another study's resamples.
      irls_steps: IRLS steps before Newton steps (default 0 for ``"huber"``:
        Newton from the warm start; all IRLS for ``"ml"``).

    Returns:
      A :class:`BootstrapResult`: standard errors, percentile intervals, and the
      fitted laws with a leading axis of K.
    """
    model = get_model(law)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")
    obs = observations(data, model, columns=columns, where=where)
    num = int(obs.loss.shape[0])
    if weights is not None:
        weights = np.asarray(weights, np.float64)
        if weights.ndim != 2 or weights.shape[1] != num or weights.shape[0] < 2:
            raise ValueError(
                f"weights must have shape (K, {num}) with K >= 2; got {weights.shape}"
            )
        num_resamples = weights.shape[0]
    if int(num_resamples) < 2:
        raise ValueError(f"num_resamples must be >= 2; got {num_resamples}")
    options = dict(
        objective=objective, delta=delta, freeze=freeze, tie=tie, bounds=bounds
    )
    if init is None:
        init = fit(obs, model, **options)
    ml = objective == "ml"
    if irls_steps is None:
        irls_steps = int(max_steps) if ml else 0
    structure = _structure(model, freeze, tie, bounds, ("log_scale",) if ml else ())
    dtype = obs.loss.dtype
    log_x, log_y = _prepare(obs, model)
    if isinstance(init, FitResult):
        theta0 = np.asarray(init.theta, np.float64)[None, :]
        z0 = np.stack(
            [
                theta0[:, int(np.flatnonzero(structure.P[:, j])[0])]
                for j in range(structure.P.shape[1])
            ],
            1,
        )
    else:
        z0 = _resolve_starts(init, model, log_x, structure, ml, dtype)
        z0 = _initial_log_scale(z0, structure, model, log_x, log_y, delta, ml)
    K = int(num_resamples)
    if weights is None:
        w = resample_weights(key, num, K).astype(dtype)
    else:
        w = jnp.asarray(weights, dtype)
    z0 = np.broadcast_to(z0[:1], (K, z0.shape[1]))
    ftol = _default_ftol(dtype) if ftol is None else float(ftol)
    st = _solve(
        (model, ml, float(delta)),
        jnp.asarray(z0, dtype),
        jnp.asarray(structure.P, dtype),
        jnp.asarray(structure.offset, dtype),
        log_x,
        log_y,
        w,
        jnp.asarray(structure.lower, dtype),
        jnp.asarray(structure.upper, dtype),
        jnp.asarray(ftol, dtype),
        keep=K,
        screen_steps=0,
        irls_steps=int(irls_steps),
        max_steps=int(max_steps),
        shared_start=True,
    )
    theta = (
        st.z @ jnp.asarray(structure.P.T, dtype)
        + jnp.asarray(structure.offset, dtype)[None, :]
    )
    k = len(model.coords)
    public = _public(model, theta[:, :k])
    ok = np.asarray(st.status) == CONVERGED
    if ok.sum() < 2:
        ok = np.ones_like(ok)
    tail = 100.0 * (1.0 - confidence) / 2.0
    stderr, low, high = {}, {}, {}
    for name, values in public.items():
        v = np.asarray(values, np.float64)[ok]
        stderr[name] = np.std(v, ddof=1)
        low[name], high[name] = np.percentile(v, [tail, 100.0 - tail])
    return BootstrapResult(
        params=model.to_params(theta[:, :k]),
        stderr=_params_of(model, stderr),
        low=_params_of(model, low),
        high=_params_of(model, high),
        fits=StartResults(theta, st.f, st.status, st.decrement, st.steps),
        weights=w,
        confidence=float(confidence),
        names=tuple(p for p, _, _ in model.params),
    )


def named(
    result: FitResult | BootstrapResult, which: str = "params"
) -> dict[str, float]:
    """Reported parameters as ``{name: float}`` (e.g. ``E, A, B, alpha, beta``).

    ``which`` selects ``"params"`` (a :class:`FitResult`'s estimates) or, for a
    :class:`BootstrapResult`, ``"stderr"``, ``"low"`` or ``"high"``.
    """
    params = getattr(result, which)
    out = {}
    for name in result.names:
        if hasattr(params, name):
            out[name] = float(np.asarray(getattr(params, name)))
        else:  # bnsl break parameters live in arrays c, d, f
            base, i = name.rsplit("_", 1)
            out[name] = float(np.asarray(getattr(params, base))[..., int(i) - 1])
    return out


#: Example data shipped with jscale (permissively licensed; see each SOURCE.md):
#: name -> (file, column mapping for :func:`observations` / :func:`read_columns`).
EXAMPLES = {
    # Sardana et al. 2024, 47 runs (Apache-2.0): law "chinchilla".
    "beyond_chinchilla": (
        "beyond_chinchilla/trainingresults.csv",
        {"n_params": "Parameters", "n_tokens": "Tokens", "loss": "Smoothed Loss"},
    ),
    # Muennighoff et al. 2023, 182 C4 runs with repeated data (Apache-2.0): law
    # "data-constrained".
    "datablations": (
        "datablations/datablations_c4_182runs.csv",
        {"n_params": "params", "n_tokens": "tokens", "loss": "val_loss"},
    ),
    # Porian et al. 2024, isoFLOP points (MIT): Approach 2 (jscale.isoflop); select
    # a configuration with where={"dataset": ..., "config_label": ...}.
    "porian_isoflops": (
        "porian_isoflops/porian_isoflop_points.csv",
        {"compute_flops": "flops", "n_params": "params", "n_tokens": "tokens"},
    ),
    # Clark et al. 2022, final losses of routed models (CC-BY 4.0): law "moe";
    # select a router with where={"router": "S-Base"} (or "RL-R", "Hash").
    "routing_moe": ("routing_moe/clark2022_routed.csv", {}),
}


def example_path(name: str) -> str:
    """Path of a shipped example CSV (:data:`EXAMPLES`); its columns mapping is
    ``EXAMPLES[name][1]``.

    Examples:
      >>> obs = observations(example_path("beyond_chinchilla"),
      ...                    columns=EXAMPLES["beyond_chinchilla"][1])
      >>> int(obs.loss.shape[0])
      47
    """
    _checks.check_choice("example", name, EXAMPLES)
    return os.path.join(os.path.dirname(__file__), "data", EXAMPLES[name][0])
