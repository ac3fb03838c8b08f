"""Monte Carlo: Besiroglu 2024 parameters through the closed-form optimum, streamed.

Draws the Chinchilla constants from Besiroglu et al. 2024's bootstrap uncertainty
(a multivariate normal in log E, log A, log B, alpha, beta;
``jscale.montecarlo.law_uncertainty``), pushes each draw through the compute-optimal
allocation at 1e24 FLOPs (Hoffmann 2022 Eq. 4) and streams N*, D* and the loss into
statistics (moments, min/max, 8192-bin log-space histograms, quantiles p5/p50/p95)
that never hold all draws.

Rows per dtype and number of draws (1e6, 1e7, 1e8; 1e9 added on a GPU):

- ``jscale propagate``: :func:`jscale.montecarlo.propagate`, the whole pipeline in
  chunks of 2^20 draws (2^23 on a GPU), compiled before the timed run (``compile
  s``: the first run at that chunk shape, compilation included).
- ``numpy, chunked``: what a researcher writes: ``np.random.default_rng``
  (PCG64) normals times the Cholesky factor, the closed form, and per chunk
  ``np.histogram`` on the same bins plus running sums, in chunks of 2^20.
- ``... sampling + closed form``: the same without the statistics, at 1e7 draws:
  jscale's staged draws, a plain jitted JAX version with ``jax.random`` (threefry)
  keys, and NumPy, to show what the key scheme and the generator cost.

``peak RSS MB`` is the process's peak resident memory during the row (the kernel's
high-water mark is reset before it, ``/proc/self/clear_refs``); the jscale rows run
first, in increasing size, and flat values across sizes mean the statistics
stream. Agreement (``ok``): jscale's streamed quantiles contain
``np.quantile`` of the same draws held in memory (at the smallest size), and
jscale's and NumPy's means agree within 6 standard errors (they draw different
random numbers).
"""

from __future__ import annotations

import gc
import math
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

from jscale import allocation, montecarlo
from jscale.montecarlo.propagate import _stages
from jscale.montecarlo.random import _key_words

COMPUTE = 1e24
OUTPUTS = ("n_params", "n_tokens", "loss")
NUMPY_CHUNK = 1 << 20


def plan(p):
    r = allocation.chinchilla_optimal(p, COMPUTE)
    return {"n_params": r.n_params, "n_tokens": r.n_tokens, "loss": r.loss}


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _numpy_setup(dist, dtype):
    L = np.asarray(dist.scale_tril, np.float64)
    c = dist.center
    mean = np.array([math.log(c.E), math.log(c.A), math.log(c.B), c.alpha, c.beta])
    return L.T.astype(dtype), mean.astype(dtype)


def _numpy_plan(z, LT, mean, dtype):
    """The closed form at the parameters of normals ``z`` (NumPy, ``dtype``)."""
    y = z @ LT + mean
    E = np.exp(y[:, 0])
    log_a, log_b, al, be = y[:, 1], y[:, 2], y[:, 3], y[:, 4]
    s = al + be
    log_c6 = dtype(math.log(COMPUTE / 6))
    log_g = (np.log(al) + log_a - np.log(be) - log_b) / s
    log_n = log_g + be / s * log_c6
    log_d = -log_g + al / s * log_c6
    loss = E + np.exp(log_a - al * log_n) + np.exp(log_b - be * log_d)
    return np.exp(log_n), np.exp(log_d), loss


def _numpy_stream(dist, num, dtype, edges, seed=0):
    """The NumPy way: chunks of normals, the closed form, histograms and sums."""
    rng = np.random.default_rng(seed)
    LT, mean = _numpy_setup(dist, dtype)
    counts = [np.zeros(len(e) - 1, np.int64) for e in edges]
    total = np.zeros(3)
    square = np.zeros(3)
    n = 0
    for start in range(0, num, NUMPY_CHUNK):
        size = min(NUMPY_CHUNK, num - start)
        z = rng.standard_normal((size, 5), dtype=dtype)
        for j, x in enumerate(_numpy_plan(z, LT, mean, dtype)):
            counts[j] += np.histogram(np.log(x), bins=edges[j])[0]
            total[j] += x.sum(dtype=np.float64)
            square[j] += np.square(x, dtype=np.float64).sum()
        n += size
    out = {}
    for j, name in enumerate(OUTPUTS):
        m = total[j] / n
        cdf = np.cumsum(counts[j]) / counts[j].sum()
        q = [float(np.exp(np.interp(p, cdf, edges[j][1:]))) for p in (0.05, 0.5, 0.95)]
        out[name] = {"mean": m, "var": square[j] / n - m * m, "quantiles": q}
    return out


def _numpy_sample_only(dist, num, dtype):
    rng = np.random.default_rng(1)
    LT, mean = _numpy_setup(dist, dtype)
    acc = 0.0
    for start in range(0, num, NUMPY_CHUNK):
        size = min(NUMPY_CHUNK, num - start)
        n, d, loss = _numpy_plan(rng.standard_normal((size, 5), dtype), LT, mean, dtype)
        acc += float(loss[0])
    return acc


def _plain_jax(dist, dtype, chunk):
    """A plain jitted JAX version: jax.random normals (threefry) per chunk key."""
    LT, mean = _numpy_setup(dist, dtype)
    LT, mean = jnp.asarray(LT), jnp.asarray(mean)
    key = jax.random.key(0)

    @jax.jit
    def one(i):
        z = jax.random.normal(jax.random.fold_in(key, i), (chunk, 5), dtype)
        y = z @ LT + mean
        E, A, B = jnp.exp(y[:, 0]), y[:, 1], y[:, 2]
        al, be = y[:, 3], y[:, 4]
        s = al + be
        log_c6 = math.log(COMPUTE / 6)
        log_g = (jnp.log(al) + A - jnp.log(be) - B) / s
        log_n = log_g + be / s * log_c6
        log_d = -log_g + al / s * log_c6
        loss = E + jnp.exp(A - al * log_n) + jnp.exp(B - be * log_d)
        return jnp.exp(log_n), jnp.exp(log_d), loss

    return one


def _timed(fn):
    gc.collect()
    measured = _reset_peak()
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    seconds = time.perf_counter() - start
    return out, seconds, (_peak_mb() if measured else None)


def _case(dtype_name: str, sizes, chunk: int, smoke: bool) -> list[dict]:
    dtype = np.dtype(dtype_name).type
    dist = montecarlo.law_uncertainty("chinchilla-besiroglu2024")
    key = jax.random.key(0)

    def propagate(num):
        return montecarlo.propagate(key, plan, dist, num, chunk_size=chunk, exact=False)

    # Compile (and cache) the stages and statistics at every chunk shape used:
    # runs shorter than a chunk use a chunk of their own length.
    compile_s = {}
    for num in sizes:
        shape = min(num, chunk)
        if shape not in compile_s:
            start = time.perf_counter()
            warm = propagate(shape)
            compile_s[shape] = time.perf_counter() - start
    index = {name: j for j, name in enumerate(warm.names)}
    lo = np.asarray(warm.state.lo, np.float64)
    hi = np.asarray(warm.state.hi, np.float64)
    bins = warm.state.hist.shape[1] - 2
    edges = [np.linspace(lo[index[n]], hi[index[n]], bins + 1) for n in OUTPUTS]
    # jscale rows first, sizes ascending, so that the peak memory of each shows
    # what the run itself needs.
    results = {}
    for num in sizes:
        results[num] = _timed(lambda num=num: propagate(num))
    rows = []
    for num in sizes:
        result, seconds, peak = results[num]
        ok = True
        if num == sizes[0]:  # streamed quantiles contain the in-memory ones
            params = montecarlo.sample(key, dist, jnp.arange(num))
            ref = jax.jit(jax.vmap(plan))(params)
            for name in OUTPUTS:
                s = result.summaries[name]
                v = np.asarray(ref[name], np.float64)
                for q, (a, b) in s.quantile_bounds.items():
                    want = np.quantile(v, q)
                    ok &= a * (1 - 1e-6) <= want <= b * (1 + 1e-6)
                ok &= s.count == num
            del params, ref
        ref_np = np_seconds = np_peak = None
        if num <= 10**8:  # NumPy at 1e9 (GPU runs) would take minutes
            ref_np, np_seconds, np_peak = _timed(
                lambda num=num: _numpy_stream(dist, num, dtype, edges)
            )
            for name in OUTPUTS:
                s = result.summaries[name]
                r = ref_np[name]
                se = math.sqrt(s.std**2 / num + max(r["var"], 0.0) / num)
                ok &= abs(s.mean - r["mean"]) <= 6 * se
        s_n, s_loss = result.summaries["n_params"], result.summaries["loss"]
        row = {
            "dtype": dtype_name,
            "draws": num,
            "impl": "jscale propagate",
            "seconds": seconds,
            "draws/s": num / seconds,
            "vs numpy": None if np_seconds is None else np_seconds / seconds,
            "peak RSS MB": peak,
            "compile s": compile_s[min(num, chunk)],
            "p5 N*": s_n.quantiles[0.05],
            "p50 N*": s_n.quantiles[0.5],
            "p95 N*": s_n.quantiles[0.95],
            "p50 loss": s_loss.quantiles[0.5],
            "ok": bool(ok),
        }
        if num == 10**8 and not smoke:
            row["target <= 10 s"] = "met" if seconds <= 10 else "not met"
        rows.append(row)
        if ref_np is not None:
            rows.append(
                {
                    "dtype": dtype_name,
                    "draws": num,
                    "impl": "numpy, chunked (PCG64, np.histogram)",
                    "seconds": np_seconds,
                    "draws/s": num / np_seconds,
                    "vs numpy": 1.0,
                    "peak RSS MB": np_peak,
                    "p5 N*": ref_np["n_params"]["quantiles"][0],
                    "p50 N*": ref_np["n_params"]["quantiles"][1],
                    "p95 N*": ref_np["n_params"]["quantiles"][2],
                    "p50 loss": ref_np["loss"]["quantiles"][1],
                }
            )
    results.clear()
    gc.collect()
    return rows


def _sampling_rows(dtype_name: str, num: int, chunk: int) -> list[dict]:
    """Sampling plus the closed form alone: the key scheme and the generator."""
    dtype = np.dtype(dtype_name).type
    dist = montecarlo.law_uncertainty("chinchilla-besiroglu2024")
    stages = _stages(plan, dist, chunk, dtype)
    k0, k1 = _key_words(jax.random.key(0))
    plain = _plain_jax(dist, dtype, chunk)
    chunks = -(-num // chunk)
    jax.block_until_ready((stages(k0, k1, 0), plain(0)))  # compile

    def run_jscale():
        return [stages(k0, k1, i * chunk)[0, 0] for i in range(chunks)]

    def run_plain():
        return [plain(i)[2][0] for i in range(chunks)]

    rows = []
    for impl, fn in (
        ("jscale draws (counter threefry) + closed form", run_jscale),
        ("plain jax.random (fold_in + normal) + closed form", run_plain),
        ("numpy (PCG64) + closed form", lambda: _numpy_sample_only(dist, num, dtype)),
    ):
        _, seconds, peak = _timed(fn)
        rows.append(
            {
                "dtype": dtype_name,
                "draws": chunks * chunk if "numpy" not in impl else num,
                "impl": impl,
                "seconds": seconds,
                "draws/s": (chunks * chunk if "numpy" not in impl else num) / seconds,
                "peak RSS MB": peak,
            }
        )
    base = rows[-1]["draws/s"]
    for row in rows:
        row["vs numpy"] = row["draws/s"] / base
    return rows


def run(smoke: bool) -> list[dict]:
    gpu = jax.default_backend() == "gpu"
    if smoke:
        sizes, chunk = (20_000, 50_000), 1 << 14
    else:
        sizes = (10**6, 10**7, 10**8) + ((10**9,) if gpu else ())
        chunk = 1 << (23 if gpu else 20)
    rows = _case("float32", sizes, chunk, smoke)
    if not smoke:  # the same code in float64 (the test suite runs it in both)
        with jax.enable_x64(True):
            rows += _case("float64", sizes[:2], chunk, smoke)
    rows += _sampling_rows("float32", sizes[0] if smoke else 10**7, chunk)
    return rows
