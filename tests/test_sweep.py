"""Tests for jscale.sweep: run_chunks (checkpoints, resume, damage), labelled grids,
sweeps (bit-identical across chunk sizes, devices and interruptions) and
``jscale sweep``.

References: the Chinchilla closed form (Hoffmann et al. 2022, Eq. 4) in NumPy
float64; device-hours ``C / (3600 x peak x MFU)`` from the vendor datasheets
(NVIDIA H100 SXM: 989 TFLOP/s dense BF16); NumPy reductions for run_chunks; and,
for bit-identity, the same computation run in one piece.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import rtol

from jscale import accounting, allocation, laws
from jscale.cli import main
from jscale.sweep import (
    LANES,
    CheckpointError,
    Grid,
    SweepResult,
    run_chunks,
    sweep,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOFFMANN = laws.get("chinchilla-hoffmann2022").params
MUENNIGHOFF = laws.get("muennighoff2023").params


# --------------------------------------------------------------------------- helpers


@jax.jit
def _chunk_stats(total, start):
    """Ten items per chunk: x = start + 0..9; carry the sum, output x^2 and a mean."""
    x = start + jnp.arange(10.0)
    return total + x.sum(), {"sq": x * x, "mean": x.mean()}


def _step(calls=None, fail_at=None):
    def step(carry, i):
        if fail_at is not None and i == fail_at:
            raise KeyboardInterrupt(f"interrupted at chunk {i}")
        if calls is not None and not isinstance(carry, jax.core.Tracer):
            calls.append(i)  # computed, not only traced by jax.eval_shape
        return _chunk_stats(carry, jnp.float32(10.0 * i))

    return step


def _run(tmp_path, n=6, **kw):
    kw.setdefault("config", {"fn": "chunk_stats", "size": 10})
    return run_chunks(
        kw.pop("step", _step()),
        jnp.zeros((), jnp.float32),
        n,
        checkpoint=tmp_path / "ckpt",
        progress=False,
        **kw,
    )


def _same(a, b):
    """Bit-for-bit equality of two pytrees (NaN equal to NaN)."""
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f")


def _chinchilla_numpy(c):
    """Hoffmann 2022 Eq. 4 in float64: N = G (C/6)^a, D = (C/6)^b / G."""
    E, A, B, alpha, beta = (float(v) for v in HOFFMANN)
    s = alpha + beta
    g = (alpha * A / (beta * B)) ** (1.0 / s)
    n = g * (np.asarray(c, np.float64) / 6.0) ** (beta / s)
    d = (np.asarray(c, np.float64) / 6.0) ** (alpha / s) / g
    return n, d, E + A / n**alpha + B / d**beta


# ------------------------------------------------------------------------ run_chunks


def test_run_chunks_matches_numpy():
    carry, outs = run_chunks(_step(), jnp.zeros((), jnp.float32), 5, progress=False)
    x = np.arange(50.0)  # the five chunks' items, 0..49
    assert float(carry) == x.sum()  # integers below 2^24: exact in float32
    assert len(outs) == 5
    np.testing.assert_array_equal(np.concatenate([o["sq"] for o in outs]), x * x)
    np.testing.assert_array_equal([o["mean"] for o in outs], x.reshape(5, 10).mean(1))
    assert all(isinstance(o["sq"], np.ndarray) for o in outs)


def test_run_chunks_without_outputs_and_zero_chunks():
    def step(c, i):
        return c + i, None

    carry, outs = run_chunks(step, jnp.zeros((), jnp.int32), 4, progress=False)
    assert int(carry) == 6 and outs is None
    carry, outs = run_chunks(step, jnp.ones(()), 0, progress=False)
    assert float(carry) == 1.0 and outs is None


def test_run_chunks_carry_is_never_weakly_typed():
    seen = []

    def step(c, i):
        seen.append(c.weak_type)
        return c * 2, None  # a weakly typed init stays weak through jnp ops

    run_chunks(step, jnp.asarray(1.0), 3, progress=False)
    assert seen == [False, False, False]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_chunks": -1}, "num_chunks must be a whole number >= 0; got -1"),
        ({"num_chunks": 2.5}, "num_chunks must be a whole number"),
        ({"resume": True}, "resume=True needs checkpoint"),
        ({"checkpoint": "x"}, "config is required with checkpoint"),
        ({"progress": 3}, "progress must be True, False or a text stream"),
        ({"chunk_items": 0}, "chunk_items must be a whole number >= 1"),
    ],
)
def test_run_chunks_bad_arguments(kwargs, match):
    kw = {"num_chunks": 2, "progress": False} | kwargs
    n = kw.pop("num_chunks")
    with pytest.raises(ValueError, match=match):
        run_chunks(_step(), jnp.zeros(()), n, **kw)


def test_run_chunks_refuses_a_changing_carry(tmp_path):
    def step(c, i):
        return (c, c), None

    with pytest.raises(ValueError, match=r"step\(0\) returned a carry with structure"):
        run_chunks(step, jnp.zeros(()), 2, progress=False)
    with pytest.raises(ValueError, match="config must be a JSON-serializable dict"):
        _run(tmp_path, config={"x": object()})


def test_progress_bar_format():
    stream = io.StringIO()
    run_chunks(
        _step(), jnp.zeros(()), 4, progress=stream, chunk_items=10, description="demo"
    )
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4  # a non-terminal stream passed explicitly: every chunk
    assert lines[0].startswith("demo: [")
    assert "chunk 1/4" in lines[0] and "items/s" in lines[0] and "ETA" in lines[0]
    assert "chunk 4/4 100%" in lines[-1] and "elapsed" in lines[-1]


def test_progress_default_is_quiet_off_a_terminal(capsys):
    # stderr is captured (not a terminal): a short run prints nothing
    run_chunks(_step(), jnp.zeros(()), 3)
    run_chunks(_step(), jnp.zeros(()), 3, progress=False)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------ checkpoints


def test_checkpoint_files_and_resume_after_interruption(tmp_path):
    ref_carry, ref_outs = run_chunks(
        _step(), jnp.zeros((), jnp.float32), 6, progress=False
    )
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, step=_step(fail_at=4))
    files = sorted(os.listdir(tmp_path / "ckpt"))
    # chunks 0..3 done: their outputs, checksums, the newest carry only, the state
    assert files == [
        "carry-000003.npz",
        *[f"chunk-00000{i}.{e}" for i in range(4) for e in ("json", "npz")],
        "manifest.json",
        "state.json",
    ]
    state = json.loads((tmp_path / "ckpt" / "state.json").read_text())
    assert state["completed"] == 4
    # what a kill inside chunk 4 could leave: a temporary file, a newer carry
    (tmp_path / "ckpt" / ".chunk-000004.npz.x1.tmp").write_bytes(b"partial")
    (tmp_path / "ckpt" / "carry-000004.npz").write_bytes(b"not named by the state")
    calls = []
    carry, outs = _run(tmp_path, step=_step(calls), resume=True)
    assert calls == [4, 5]  # only the chunks that were not done
    files = sorted(os.listdir(tmp_path / "ckpt"))
    assert files[0] == "carry-000005.npz" and len(files) == 1 + 12 + 2
    _same((carry, outs), (ref_carry, ref_outs))
    # a finished run resumes to the same answer without running any chunk
    calls.clear()
    _same(_run(tmp_path, step=_step(calls), resume=True), (ref_carry, ref_outs))
    assert calls == []


def test_resume_with_nothing_saved_starts_afresh(tmp_path):
    carry, _ = _run(tmp_path, resume=True)  # no directory yet
    assert float(carry) == np.arange(60.0).sum()


def test_existing_checkpoint_needs_resume_or_overwrite(tmp_path):
    _run(tmp_path)
    with pytest.raises(
        CheckpointError, match=r"not empty; pass resume=True \(--resume"
    ):
        _run(tmp_path)
    calls = []
    _run(tmp_path, step=_step(calls), overwrite=True)
    assert calls == list(range(6))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="holds files not written by run_chunks"):
        run_chunks(
            _step(),
            jnp.zeros(()),
            2,
            checkpoint=tmp_path / "other",
            config={"a": 1},
            overwrite=True,
            progress=False,
        )
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        run_chunks(
            _step(),
            jnp.zeros(()),
            2,
            checkpoint=tmp_path / "other",
            config={"a": 1},
            resume=True,
            progress=False,
        )


def test_checkpoint_of_another_configuration_is_refused(tmp_path):
    _run(tmp_path)
    with pytest.raises(CheckpointError, match="config.size was 10, now 20"):
        _run(tmp_path, resume=True, config={"fn": "chunk_stats", "size": 20})
    with pytest.raises(CheckpointError, match="num_chunks was 6, now 7"):
        _run(tmp_path, n=7, resume=True)
    with pytest.raises(CheckpointError, match="config.extra is new"):
        _run(
            tmp_path, resume=True, config={"fn": "chunk_stats", "size": 10, "extra": 1}
        )


def _corrupt_truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt_flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _corrupt_state(path):
    state = json.loads(path.read_text())
    state["completed"] = 2  # rewinding without the checksum: detected
    path.write_text(json.dumps(state))


@pytest.mark.parametrize(
    ("name", "damage", "match"),
    [
        ("chunk-000002.npz", _corrupt_truncate, "chunk 2 outputs .* fails its sha256"),
        ("chunk-000001.npz", _corrupt_flip, "chunk 1 outputs .* fails its sha256"),
        ("carry-000003.npz", _corrupt_flip, "carry file .* fails its sha256"),
        ("chunk-000000.npz", os.unlink, "chunk 0 outputs .* missing"),
        ("chunk-000003.json", _corrupt_flip, "chunk 3 checksum file"),
        ("state.json", _corrupt_state, "state file .* fails its checksum"),
        ("manifest.json", _corrupt_truncate, "manifest .* fails its checksum"),
    ],
)
def test_damaged_checkpoint_is_detected(tmp_path, name, damage, match):
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, step=_step(fail_at=4))
    damage(tmp_path / "ckpt" / name)
    with pytest.raises(CheckpointError, match="damaged checkpoint: " + match):
        _run(tmp_path, resume=True)


# ------------------------------------------------------------------------------ grids


def test_grid_is_row_major_cartesian_product():
    c, u = [1e20, 1e21, 1e22], [1e9, 1e10]
    g = Grid({"compute_flops": c, "unique_tokens": u})
    assert g.dims == ("compute_flops", "unique_tokens") and g.shape == (3, 2)
    cc, uu = np.meshgrid(c, u, indexing="ij")
    p = g.points()
    np.testing.assert_array_equal(p["compute_flops"], cc.ravel())
    np.testing.assert_array_equal(p["unique_tokens"], uu.ravel())
    np.testing.assert_array_equal(g.points(2, 5)["unique_tokens"], uu.ravel()[2:5])
    assert g.size == len(g) == 6


def test_scenarios_and_products():
    s = Grid.scenarios(
        {"compute_flops": [1e21, 1e23], "hardware": ["h100-sxm", "a100-80gb"]}
    )
    g = Grid(unique_tokens=[1e9, 1e10, 1e11]) * s
    assert g.dims == ("unique_tokens", "scenario") and g.shape == (3, 2)
    assert g.coord_dims == {
        "unique_tokens": "unique_tokens",
        "compute_flops": "scenario",
        "hardware": "scenario",
    }
    p = g.points()
    assert list(p["hardware"][:2]) == ["h100-sxm", "a100-80gb"]
    np.testing.assert_array_equal(p["compute_flops"], [1e21, 1e23] * 3)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Grid(c=[]), "coordinate 'c' must be a non-empty 1-D sequence"),
        (lambda: Grid(c=[[1.0, 2.0]]), "non-empty 1-D"),
        (
            lambda: Grid(c=[1.0, np.nan]),
            "coordinate 'c' must be finite; got nan at index 1",
        ),
        (lambda: Grid({"c": [1.0]}, c=[2.0]), "axis names given twice"),
        (lambda: Grid.scenarios({"a": [1, 2], "b": [1]}), "must have equal lengths"),
        (lambda: Grid(c=[1.0]) * Grid(c=[2.0]), "dimension 'c' appears twice"),
        (lambda: Grid(c=[object()]), "must hold numbers or strings"),
    ],
)
def test_grid_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# ----------------------------------------------------------------------------- sweeps


def test_sweep_matches_the_closed_form():
    c = np.logspace(18, 26, 17)
    r = sweep(
        lambda compute_flops: allocation.chinchilla_optimal(HOFFMANN, compute_flops),
        Grid(compute_flops=c),
        chunk_size=5,
        progress=False,
    )
    n, d, loss = _chinchilla_numpy(c)
    np.testing.assert_allclose(r["n_params"], n, rtol=rtol())
    np.testing.assert_allclose(r["n_tokens"], d, rtol=rtol())
    np.testing.assert_allclose(r["loss"], loss, rtol=rtol())
    assert (r["status"] == 0).all() and "iterations" not in r.data  # None: skipped
    np.testing.assert_array_equal(r.coords["compute_flops"], c)
    assert r.info == {
        "chunk_size": 5,
        "padded_chunk": LANES,
        "num_chunks": 4,
        "devices": 1,
    }


def _dc_plan(compute_flops, unique_tokens):
    return allocation.data_constrained_optimal(
        MUENNIGHOFF, compute_flops, unique_tokens
    )


DC_GRID = Grid(
    compute_flops=np.logspace(19, 25, 15), unique_tokens=np.logspace(9, 12, 8)
)


def test_sweep_is_bit_identical_whatever_the_chunk_size():
    # The data-constrained solver (Newton steps, kinks) on 120 points. Without
    # padding every chunk to a multiple of LANES, chunks of one point compile to
    # scalar code whose results differ in the last bits (float32 and float64).
    results = {
        cs: sweep(_dc_plan, DC_GRID, chunk_size=cs, progress=False)
        for cs in (1, 7, 64, DC_GRID.size)
    }
    whole = results[DC_GRID.size]
    assert whole.info["num_chunks"] == 1 and results[1].info["num_chunks"] == 120
    assert set(whole.data) >= {"n_params", "n_tokens", "loss", "epochs", "status"}
    assert (whole["status"] == 0).all()
    for r in results.values():
        _same(r.data, whole.data)


def test_one_trace_per_combination_of_labels():
    traces = []

    def fn(compute_flops, hardware, precision):
        traces.append((hardware, precision))
        return accounting.flops_to_device_hours(compute_flops, hardware, precision, 0.4)

    c = np.logspace(20, 24, 9)
    g = Grid(compute_flops=c, hardware=["h100-sxm", "b200"], precision=["bf16", "fp8"])
    r = sweep(fn, g, chunk_size=4, progress=False)
    assert sorted(traces) == sorted(
        (h, p) for h in ("h100-sxm", "b200") for p in ("bf16", "fp8")
    )
    assert r.info["num_chunks"] == 4 * 3  # 9 budgets in chunks of 4, per label pair
    for j, h in enumerate(g.coords["hardware"]):
        for k, p in enumerate(g.coords["precision"]):
            peak = accounting.HARDWARE[str(h)].peak_flops[str(p)]
            np.testing.assert_allclose(
                r["value"][:, j, k], c / (3600.0 * peak * 0.4), rtol=rtol()
            )
    # NVIDIA H100 SXM datasheet: 989 TFLOP/s dense BF16; 1e24 FLOPs at 40% MFU
    np.testing.assert_allclose(
        r["value"][-1, 0, 0], 1e24 / (3600 * 989e12 * 0.4), rtol=rtol()
    )
    traces.clear()
    sweep(fn, g, chunk_size=9, progress=False)  # same shapes: compiled already
    assert traces == []


def test_numeric_axes_compile_once():
    traces = []

    def fn(compute_flops):
        traces.append(compute_flops.shape)
        return compute_flops * 2.0

    sweep(fn, Grid(compute_flops=np.arange(1.0, 301.0)), chunk_size=100, progress=False)
    assert traces == [(LANES,)]


def test_scenarios_with_categorical_columns():
    s = Grid.scenarios(
        {
            "compute_flops": [1e21, 1e22, 1e23, 1e24],
            "hardware": ["h100-sxm", "a100-80gb", "h100-sxm", "a100-80gb"],
        }
    )
    r = sweep(
        lambda compute_flops, hardware: {
            "hours": accounting.flops_to_device_hours(compute_flops, hardware)
        },
        s,
        progress=False,
    )
    # default bf16 at MFU 0.4; the rows alternate H100 SXM and A100 80GB (the
    # datasheets: 989 and 312 TFLOP/s dense BF16), so each label went to its rows
    peak = np.array([989e12, 312e12, 989e12, 312e12])
    expected = s.coords["compute_flops"] / (3600.0 * peak * 0.4)
    np.testing.assert_allclose(r["hours"], expected, rtol=rtol())


def test_output_names_and_trailing_axes():
    g = Grid(x=[1.0, 2.0, 3.0])
    assert list(sweep(lambda x: x, g, progress=False).data) == ["value"]
    assert list(sweep(lambda x: (x, -x), g, progress=False).data) == [
        "output_0",
        "output_1",
    ]
    r = sweep(
        lambda x: {"b": x, "a": {"v": jnp.stack([x, 2 * x], 1)}}, g, progress=False
    )
    assert sorted(r.data) == ["a.v", "b"] and r["a.v"].shape == (3, 2)
    assert list(r.columns()) == ["x", "a.v[0]", "a.v[1]", "b"]
    with pytest.raises(ValueError, match="needs the batch of points as its leading"):
        sweep(lambda x: x.sum(), g, progress=False)


@pytest.mark.parametrize("fn", [None, "x"])
def test_sweep_bad_arguments(fn):
    with pytest.raises(ValueError, match="fn must be callable"):
        sweep(fn, Grid(x=[1.0]))
    with pytest.raises(ValueError, match="grid must be a Grid"):
        sweep(lambda x: x, {"x": [1.0]})
    with pytest.raises(
        ValueError, match="chunk_size must be a whole number >= 1; got 0"
    ):
        sweep(lambda x: x, Grid(x=[1.0]), chunk_size=0)
    with pytest.raises(ValueError, match="mesh must be a jax.sharding.Mesh"):
        sweep(lambda x: x, Grid(x=[1.0]), mesh="cpu")


def test_save_and_load(tmp_path):
    g = Grid(compute_flops=[1e21, 1e23], hardware=["h100-sxm", "a100-80gb"])
    r = sweep(
        lambda compute_flops, hardware: {
            "hours": accounting.flops_to_device_hours(compute_flops, hardware),
            "big": compute_flops > 1e22,
        },
        g,
        progress=False,
    )
    r.save(tmp_path / "r.npz")
    back = SweepResult.load_npz(tmp_path / "r.npz")
    assert back.dims == r.dims and back.coord_dims == r.coord_dims
    _same(back.coords, r.coords)
    _same(back.data, r.data)
    assert back.info == r.info
    r.save(tmp_path / "r.csv")
    with open(tmp_path / "r.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["compute_flops", "hardware", "big", "hours"]
    assert [row["hardware"] for row in rows] == ["h100-sxm", "a100-80gb"] * 2
    hours = np.array([float(row["hours"]) for row in rows], r["hours"].dtype)
    np.testing.assert_array_equal(hours, r["hours"].ravel())  # written exactly
    assert [row["big"] for row in rows] == ["False", "False", "True", "True"]
    with pytest.raises(ValueError, match="use a .csv, .npz or .parquet suffix"):
        r.save(tmp_path / "r.txt")


def test_parquet_only_with_pyarrow(tmp_path):
    r = sweep(lambda x: x * 2, Grid(x=[1.0, 2.0]), progress=False)
    try:
        import pyarrow.parquet as pq
    except ImportError:
        with pytest.raises(ModuleNotFoundError, match="to_parquet needs pyarrow"):
            r.to_parquet(tmp_path / "r.parquet")
        return
    r.to_parquet(tmp_path / "r.parquet")
    table = pq.read_table(tmp_path / "r.parquet").to_pydict()
    assert table["value"] == [2.0, 4.0]


def test_sweep_checkpoint_records_the_grid(tmp_path):
    g = Grid(compute_flops=np.logspace(20, 22, 5))

    def fn(compute_flops):
        return allocation.chinchilla_optimal(HOFFMANN, compute_flops)

    ckpt = tmp_path / "s"
    first = sweep(fn, g, chunk_size=2, checkpoint=ckpt, progress=False)
    again = sweep(fn, g, chunk_size=2, checkpoint=ckpt, resume=True, progress=False)
    _same(first.data, again.data)
    g2 = Grid(compute_flops=np.logspace(20, 22.5, 5))
    with pytest.raises(CheckpointError, match=r"config.grid.coords.compute_flops"):
        sweep(fn, g2, chunk_size=2, checkpoint=ckpt, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="config.chunk_size was 2, now 3"):
        sweep(fn, g, chunk_size=3, checkpoint=ckpt, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="config.user.law is new"):
        sweep(
            fn,
            g,
            chunk_size=2,
            checkpoint=ckpt,
            resume=True,
            progress=False,
            config={"law": "x"},
        )


# --------------------------------------------------------------- SIGKILL and devices

_SIGKILL_SCRIPT = """
import sys, time
import numpy as np
from jscale import allocation, laws
from jscale.sweep import Grid, sweep

LAW = laws.get("chinchilla-besiroglu2024").params


def fn(compute_flops, tokens):
    r = allocation.chinchilla_optimal(LAW, compute_flops)
    other = laws.chinchilla.loss(LAW, r.n_params, tokens)
    return {"n": r.n_params, "loss": r.loss, "other": other}


GRID = Grid(compute_flops=np.logspace(19, 25, 10), tokens=np.logspace(9, 12, 6))


class Slow:  # the progress stream sleeps: a slow chunk to kill mid-run
    lines = 0

    def write(self, text):
        Slow.lines += 1
        time.sleep(float(sys.argv[4]))

    def flush(self):
        pass

resume = sys.argv[2] == "resume"
r = sweep(fn, GRID, chunk_size=4, checkpoint=sys.argv[1], resume=resume,
          progress=Slow(), config={"test": "sigkill"})
r.to_npz(sys.argv[3])
print(Slow.lines)
"""


def _script_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.update(extra)
    return env


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_SIGKILL_SCRIPT)
    ckpt, out = tmp_path / "ckpt", tmp_path / "out.npz"
    num_chunks = 15  # 60 points in chunks of 4
    proc = subprocess.Popen(
        [sys.executable, str(script), str(ckpt), "fresh", str(out), "0.25"],
        env=_script_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    state, completed = ckpt / "state.json", 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if state.exists():
                completed = json.loads(state.read_text())["completed"]
                if completed >= 3:
                    break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert 3 <= completed < num_chunks and not out.exists()

    done = subprocess.run(
        [sys.executable, str(script), str(ckpt), "resume", str(out), "0"],
        env=_script_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    resumed_chunks = int(done.stdout.split()[-1])
    assert resumed_chunks <= num_chunks - 3  # it continued; it did not start over

    # the uninterrupted run, here, with the same function
    namespace = {}
    exec(compile(_SIGKILL_SCRIPT.split("class Slow")[0], "sigkill", "exec"), namespace)
    whole = sweep(namespace["fn"], namespace["GRID"], chunk_size=4, progress=False)
    resumed = SweepResult.load_npz(out)
    assert not [f for f in os.listdir(ckpt) if f.endswith(".tmp")]
    assert resumed.info["num_chunks"] == num_chunks
    _same(resumed.data, whole.data)


_DEVICES_SCRIPT = """
import sys
import jax
import numpy as np
from jscale import allocation, laws
from jscale.sweep import Grid, sweep

assert jax.device_count() == 4, jax.devices()
P = laws.get("muennighoff2023").params
seen = []


def fn(compute_flops, unique_tokens):
    jax.debug.inspect_array_sharding(
        compute_flops, callback=lambda s: seen.append(len(s.device_set))
    )
    return allocation.data_constrained_optimal(P, compute_flops, unique_tokens)


g = Grid(compute_flops=np.logspace(19, 25, 15), unique_tokens=np.logspace(9, 12, 8))
r = sweep(fn, g, chunk_size=int(sys.argv[2]), progress=False)
assert seen == [4], seen  # one compile, inputs laid out over the four devices
r.to_npz(sys.argv[1])
"""


def test_four_devices_give_the_one_device_results(tmp_path):
    script = tmp_path / "devices.py"
    script.write_text(_DEVICES_SCRIPT)
    flags = os.environ.get("XLA_FLAGS", "")
    env = _script_env(
        XLA_FLAGS=f"{flags} --xla_force_host_platform_device_count=4".strip(),
        JAX_PLATFORMS="cpu",
    )
    out = tmp_path / "four.npz"
    done = subprocess.run(
        [sys.executable, str(script), str(out), "7"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    four = SweepResult.load_npz(out)
    assert four.info["devices"] == 4 and four.info["padded_chunk"] == 4 * LANES
    one = sweep(_dc_plan, DC_GRID, chunk_size=64, progress=False)
    assert one.info["devices"] == 1
    # Each device compiles the chunk at a quarter of the width, and XLA's CPU code
    # for the allocation's transcendental kernels may then vectorize differently:
    # bit-identical in float64, within a few float32 ulps (8 eps relative) otherwise.
    # Chunk-size invariance on one device stays bit for bit (tests above).
    for k in one.data:
        x, y = np.asarray(four.data[k]), np.asarray(one.data[k])
        assert x.dtype == y.dtype and x.shape == y.shape, k
        if x.dtype.kind != "f" or x.dtype == np.float64:
            assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), k
        elif k.endswith(("grad_norm", "violation")):
            # Solver diagnostics at the level of rounding: both must be tiny.
            assert np.nanmax(np.abs(x - y)) < 1e-5, k
        else:
            np.testing.assert_allclose(x, y, rtol=8 * np.finfo(x.dtype).eps, err_msg=k)


# -------------------------------------------------------------------------------- CLI


def _cli(capsys, *argv):
    code = main(["sweep", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_default_plan_over_budgets(capsys):
    code, out, err = _cli(capsys, "--json", "--no-progress")
    assert code == 0, err
    result = json.loads(out)  # exactly one JSON object
    assert result["dims"] == ["law", "compute_flops"] and result["shape"] == [1, 9]
    points = result["points"]
    c = np.array([p["compute_flops"] for p in points])
    np.testing.assert_allclose(c, np.logspace(18, 26, 9), rtol=1e-15)
    n, d, loss = _chinchilla_numpy(c)
    # the CLI computes in float64: the closed form to 1e-12 (conftest.rtol)
    np.testing.assert_allclose([p["n_params"] for p in points], n, rtol=1e-12)
    np.testing.assert_allclose([p["loss"] for p in points], loss, rtol=1e-12)
    assert {p["status"] for p in points} == {"converged"}
    assert {p["law"] for p in points} == {"chinchilla-hoffmann2022"}


def test_cli_text_table_and_outputs(capsys, tmp_path):
    code, out, err = _cli(
        capsys,
        "--compute",
        "1e22",
        "1e24",
        "--hardware",
        "h100-sxm",
        "a100-80gb",
        "--precision",
        "bf16",
        "fp8",
        "--price",
        "2",
        "--out",
        str(tmp_path / "r.csv"),
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("8 points (law 1 x compute_flops 2 x hardware 2 x")
    assert lines[1].split()[:4] == ["law", "compute_flops", "hardware", "precision"]
    assert "device_hours" in lines[1] and "cost_usd" in lines[1]
    with open(tmp_path / "r.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    a100_fp8 = [
        r for r in rows if r["hardware"] == "a100-80gb" and r["precision"] == "fp8"
    ]
    assert all(r["device_hours"] == "nan" for r in a100_fp8)  # no FP8 on the A100
    h100 = next(
        r for r in rows if r["hardware"] == "h100-sxm" and r["precision"] == "bf16"
    )
    hours = float(h100["compute_flops"]) / (3600 * 989e12 * 0.4)
    np.testing.assert_allclose(float(h100["device_hours"]), hours, rtol=1e-12)
    np.testing.assert_allclose(float(h100["cost_usd"]), 2 * hours, rtol=1e-12)


def test_cli_checkpoint_and_resume(capsys, tmp_path):
    args = [
        "--json",
        "--no-progress",
        "--law",
        "muennighoff2023",
        "--compute",
        "1e21",
        "1e23",
        "--unique-tokens",
        "1e10",
        "1e11",
        "--chunk-size",
        "1",
        "--checkpoint",
        str(tmp_path / "ck"),
        "--out",
        str(tmp_path / "r.npz"),
    ]
    code, first, err = _cli(capsys, *args)
    assert code == 0, err
    assert json.loads(first)["num_chunks"] == 4
    code, _, err = _cli(capsys, *args)
    assert code == 2 and "--resume" in err and len(err.strip().splitlines()) == 1
    code, again, err = _cli(capsys, *args, "--resume")
    assert code == 0, err
    assert json.loads(again) == json.loads(first)
    code, _, err = _cli(capsys, *args, "--resume", "--mfu", "0.5")
    assert code == 2 and "config.user.mfu was 0.4, now 0.5" in err
    saved = SweepResult.load_npz(tmp_path / "r.npz")
    assert saved.dims == ("law", "compute_flops", "unique_tokens")
    assert saved["epochs"].shape == (1, 2, 2)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (
            ["--compute-min", "1e22", "--compute-max", "1e20"],
            "must exceed --compute-min",
        ),
        (["--compute", "1e22", "--compute-min", "1e20"], "not both"),
        (["--price", "2"], "--price needs --hardware"),
        (["--precision", "fp8"], "--precision needs --hardware"),
        (["--compute", "-1"], "argument --compute"),
        (["--law", "nope"], "unknown law 'nope'"),
        (["--chunk-size", "0"], "argument --chunk-size"),
        (["--unique-tokens", "1e10"], "unique_tokens applies only to data-constrained"),
        (["--out", "x.txt"], "use a .csv, .npz or .parquet suffix"),
    ],
)
def test_cli_errors(capsys, argv, match):
    code, out, err = _cli(capsys, "--no-progress", "--num-budgets", "2", *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and match in err
