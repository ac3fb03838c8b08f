"""FLOPs, memory, energy and money: what a training or serving run costs.

Three layers, each a set of pure, elementwise functions of arrays (safe under
``jax.jit``, ``jax.vmap`` and ``jax.grad``):

* **FLOPs.** The ``C = 6ND`` rule (Kaplan et al. 2020, "Scaling Laws for Neural
  Language Models", arXiv:2001.08361, Sec. 2.1; Hoffmann et al. 2022, "Training
  Compute-Optimal Large Language Models", arXiv:2203.15556, Sec. 3.3) and the two
  detailed per-token counts from a :class:`TransformerShape`: Kaplan's Table 1 and
  Hoffmann's App. F.
* **Memory.** Weights, gradients, optimizer state and fp32 master weights
  (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training Trillion
  Parameter Models", arXiv:1910.02054, Sec. 3.1), and the KV cache.
* **Hardware.** Dense peak FLOP/s per precision from vendor datasheets
  (:data:`HARDWARE`), turned into device-hours, joules, kWh and dollars, in both
  directions, and a one-call :func:`budget` for a fleet.

Conventions. Sizes are floats (3e9 tokens overflow int32); the dtype of a result
follows its array inputs. Hardware and precision are *static*: give a name (or a
:class:`Hardware` / :class:`Precision` object) and it is resolved in Python before
any tracing, so wrap calls as ``jax.jit(lambda h: device_hours_to_flops(h,
"h100-sxm"))``. Concrete bad values raise ``ValueError`` naming the argument, its
valid range and the offending value; under ``jax.jit`` bad elements come back NaN.

Every peak figure is the **dense** one. NVIDIA's datasheets print Tensor Core
throughput "with sparsity" (2:4 structured sparsity), twice the dense rate a
training run can reach; the presets hold half of those figures.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import _checks
from ._numerics import asfloat, broadcast

#: Seconds in an hour.
SECONDS_PER_HOUR = 3600.0
#: Joules in a kilowatt-hour.
JOULES_PER_KWH = 3.6e6
#: FLOPs in a petaFLOP/s-day, Kaplan's compute unit (Kaplan 2020, Sec. 1.3).
FLOPS_PER_PF_DAY = 8.64e19

_POSITIVE = {"lower": 0.0}
_FRACTION = {"lower": 0.0, "upper": 1.0, "upper_inclusive": True}
_AT_LEAST_ONE = {"lower": 1.0, "lower_inclusive": True}
_FLAG = {"lower": 0.0, "upper": 1.0, "lower_inclusive": True, "upper_inclusive": True}


def _weak(x):
    """Python ``bool``/``int`` scalars as Python floats (weakly typed in JAX).

    A Python number then takes the dtype of the arrays it meets, so a float32
    array stays float32 under x64 even next to ``n_devices=1000``.
    """
    if isinstance(x, (bool, int)):
        return float(x)
    return x


def _prepare(*specs) -> tuple[list[jax.Array], jax.Array | bool]:
    """Check, broadcast and mask named inputs.

    Args:
      *specs: ``(name, value, rule)`` triples; ``rule`` holds the bounds keywords of
        :func:`_checks.check_range`.

    Returns:
      The inputs as float arrays broadcast to one shape, with invalid elements
      replaced by 1 (valid under every rule here, so gradients stay finite), and
      the elementwise validity mask: Python ``True`` when every input is concrete
      (and so already checked), which skips the masking.
    """
    arrays = [
        _checks.check_range(name, _weak(value), **rule) for name, value, rule in specs
    ]
    _checks.check_shapes(**{spec[0]: a for spec, a in zip(specs, arrays, strict=True)})
    arrays = broadcast(*arrays)
    if all(_checks.is_concrete(a) for a in arrays):
        return arrays, True
    valid = jnp.ones(jnp.shape(arrays[0]), dtype=bool)
    for (_, _, rule), a in zip(specs, arrays, strict=True):
        valid = valid & _checks.in_range(a, **rule)
    return [jnp.where(valid, a, 1.0) for a in arrays], valid


def _nan_unless(valid: jax.Array | bool, *values: jax.Array):
    """``values`` with NaN where ``valid`` is False (one value, or a list)."""
    if valid is not True:
        values = _checks.flag(valid, *values)
    return values[0] if len(values) == 1 else list(values)


# --------------------------------------------------------------------------------
# FLOPs from parameters and tokens
# --------------------------------------------------------------------------------


def forward_flops_per_token(n_params: ArrayLike) -> jax.Array:
    """Forward-pass FLOPs per token, ``2 N``.

    Each weight takes part in one multiply-accumulate (2 FLOPs) per token (Kaplan
    2020, Sec. 2.1 and Table 1). Attention over the context is left out; see
    :func:`forward_flops_per_token_from_shape` for it.

    Args:
      n_params: parameters N (> 0), any shape.

    Returns:
      FLOPs per token, the shape and dtype of ``n_params``; NaN for bad elements
      under jit.

    Raises:
      ValueError: for concrete non-positive, NaN or infinite N.

    Examples:
      >>> from jscale import accounting
      >>> float(accounting.forward_flops_per_token(1e9))
      2000000000.0
    """
    (n,), valid = _prepare(("n_params", n_params, _POSITIVE))
    return _nan_unless(valid, 2.0 * n)


def backward_flops_per_token(n_params: ArrayLike) -> jax.Array:
    """Backward-pass FLOPs per token, ``4 N``: twice the forward pass.

    The backward pass computes gradients with respect to both the activations and
    the weights, two multiply-accumulates per weight (Kaplan 2020, Sec. 2.1).

    Args:
      n_params: parameters N (> 0), any shape.

    Returns:
      FLOPs per token; NaN for bad elements under jit.

    Raises:
      ValueError: for concrete non-positive, NaN or infinite N.

    Examples:
      >>> from jscale import accounting
      >>> float(accounting.backward_flops_per_token(1e9))
      4000000000.0
    """
    (n,), valid = _prepare(("n_params", n_params, _POSITIVE))
    return _nan_unless(valid, 4.0 * n)


def training_flops(n_params: ArrayLike, n_tokens: ArrayLike) -> jax.Array:
    """Training compute ``C = 6 N D``: forward ``2N`` plus backward ``4N`` per token.

    Kaplan 2020, Sec. 2.1 (``C ≈ 6NBS``), and Hoffmann 2022, Sec. 3.3 (``C ≈ 6ND``).

    Args:
      n_params: parameters N (> 0).
      n_tokens: training tokens D (> 0), broadcastable against ``n_params``.

    Returns:
      FLOPs with the broadcast shape; NaN for bad elements under jit. Products stay
      well inside float32's range (3.4e38).

    Raises:
      ValueError: for concrete non-positive, NaN or infinite inputs, or shapes that
        do not broadcast.

    Examples:
      >>> from jscale import accounting
      >>> f"{float(accounting.training_flops(70e9, 1.4e12)):.3e}"  # Chinchilla
      '5.880e+23'
    """
    (n, d), valid = _prepare(
        ("n_params", n_params, _POSITIVE), ("n_tokens", n_tokens, _POSITIVE)
    )
    return _nan_unless(valid, 6.0 * n * d)


# --------------------------------------------------------------------------------
# FLOPs and parameters from the shape of a transformer
# --------------------------------------------------------------------------------


class TransformerShape(NamedTuple):
    """The shape of a decoder-only transformer.

    Fields may be Python numbers or arrays (all broadcastable together), so one
    call can count many configurations; a ``TransformerShape`` of arrays is a
    pytree and passes through ``jax.jit`` and ``jax.vmap``.

    Attributes:
      n_layers: number of transformer blocks.
      d_model: width of the residual stream.
      n_heads: attention heads per layer.
      d_head: key/query (and value) size per head; ``None`` means
        ``d_model / n_heads``, so the attention width ``d_attn = n_heads * d_head``
        equals ``d_model`` (Kaplan 2020, Sec. 2.1).
      d_ff: hidden width of the feed-forward block; ``None`` means ``4 * d_model``
        (Kaplan 2020, Sec. 2.1: "the standard d_attn = d_ff/4 = d_model").
      n_ctx: context length in tokens. Default 2048, GPT-3's context (Brown et al.
        2020, arXiv:2005.14165, Sec. 2.1).
      vocab_size: vocabulary size. Default 32,000, Chinchilla's SentencePiece
        vocabulary (Hoffmann 2022, Table A8).
      learned_positions: whether (``True`` / 1) or not (``False`` / 0) the model
        has a learned absolute position embedding, ``n_ctx * d_model`` parameters
        (Kaplan 2020, Table 1). Default ``False``: Chinchilla, like Gopher, uses
        relative positions.
    """

    n_layers: ArrayLike
    d_model: ArrayLike
    n_heads: ArrayLike
    d_head: ArrayLike | None = None
    d_ff: ArrayLike | None = None
    n_ctx: ArrayLike = 2048
    vocab_size: ArrayLike = 32000
    learned_positions: ArrayLike = False


class _Shape(NamedTuple):
    """A shape resolved to broadcast float arrays (defaults filled in)."""

    n_layers: jax.Array
    d_model: jax.Array
    n_heads: jax.Array
    d_attn: jax.Array
    d_ff: jax.Array
    n_ctx: jax.Array
    vocab_size: jax.Array
    learned_positions: jax.Array


def _resolve_shape(shape: TransformerShape) -> tuple[_Shape, jax.Array]:
    if not isinstance(shape, TransformerShape):
        raise ValueError(
            f"shape must be a TransformerShape; got {type(shape).__name__}"
        )
    fields = ["n_layers", "d_model", "n_heads", "n_ctx", "vocab_size"]
    fields += [f for f in ("d_head", "d_ff") if getattr(shape, f) is not None]
    specs = [(f"shape.{f}", getattr(shape, f), _POSITIVE) for f in fields]
    specs.append(("shape.learned_positions", shape.learned_positions, _FLAG))
    arrays, valid = _prepare(*specs)
    a = dict(zip([*fields, "learned_positions"], arrays, strict=True))
    d_head = a["d_head"] if "d_head" in a else a["d_model"] / a["n_heads"]
    d_ff = a["d_ff"] if "d_ff" in a else 4.0 * a["d_model"]
    return (
        _Shape(
            n_layers=a["n_layers"],
            d_model=a["d_model"],
            n_heads=a["n_heads"],
            d_attn=a["n_heads"] * d_head,
            d_ff=d_ff,
            n_ctx=a["n_ctx"],
            vocab_size=a["vocab_size"],
            learned_positions=a["learned_positions"],
        ),
        valid,
    )


def _non_embedding_params(s: _Shape) -> jax.Array:
    # Per layer: Q, K, V (3 d_model d_attn) and the output projection
    # (d_attn d_model) make 4 d_model d_attn; the feed-forward block has two
    # matrices, 2 d_model d_ff. Kaplan 2020, Table 1.
    return 2.0 * s.n_layers * s.d_model * (2.0 * s.d_attn + s.d_ff)


def params_from_shape(
    shape: TransformerShape, include_embeddings: bool = True
) -> jax.Array:
    """Parameter count of a transformer from its shape.

    Non-embedding parameters (Kaplan 2020, Table 1)::

        N = 2 n_layers d_model (2 d_attn + d_ff),   d_attn = n_heads d_head

    which is ``12 n_layers d_model^2`` when ``d_attn = d_model`` and
    ``d_ff = 4 d_model``. Counted: the Q, K, V and output projections and the two
    feed-forward matrices of every layer. Not counted: biases and layer-norm gains
    (sub-leading, as in Kaplan's Table 1), gated (three-matrix) feed-forward blocks,
    and grouped-query sharing of K and V.

    With ``include_embeddings`` (Hoffmann 2022's convention, App. F) the token
    embedding adds ``vocab_size * d_model`` (counted once: tied with, or standing
    for, the output projection), plus ``n_ctx * d_model`` when
    ``shape.learned_positions``.

    Args:
      shape: the :class:`TransformerShape`.
      include_embeddings: add the embedding matrices.

    Returns:
      Parameters, with the broadcast shape of the shape's fields; NaN for bad
      elements under jit.

    Raises:
      ValueError: for a concrete non-positive, NaN or infinite field (named
        ``shape.<field>``) or fields that do not broadcast.

    Examples:
      >>> from jscale import accounting
      >>> s = accounting.TransformerShape(n_layers=12, d_model=768, n_heads=12)
      >>> int(accounting.params_from_shape(s, include_embeddings=False))
      84934656
      >>> int(accounting.params_from_shape(s._replace(vocab_size=50257)))
      123532032
    """
    s, valid = _resolve_shape(shape)
    n = _non_embedding_params(s)
    if include_embeddings:
        positions = s.learned_positions * s.n_ctx * s.d_model
        n = n + s.vocab_size * s.d_model + positions
    return _nan_unless(valid, n)


_FLOP_METHODS = ("hoffmann", "kaplan")


def forward_flops_per_token_from_shape(
    shape: TransformerShape,
    method: str = "hoffmann",
    include_embeddings: bool | None = None,
) -> jax.Array:
    """Forward-pass FLOPs per token, counted from the shape.

    ``method="kaplan"`` is Kaplan 2020, Table 1::

        C_forward = 2 N + 2 n_layers n_ctx d_attn        (non-embedding)
                  + 4 d_model + 2 d_model vocab_size     (embed, de-embed rows)

    ``method="hoffmann"`` is Hoffmann 2022, App. F, per sequence of ``n_ctx`` tokens
    and divided by ``n_ctx`` here (``s = n_ctx``, ``a = d_attn = n_heads d_head``)::

        embeddings             2 s vocab d_model
        per layer:
          K, Q, V projections  2 * 3 s d_model a
          K @ Q logits         2 s s a
          softmax              3 n_heads s s
          softmax @ V          2 s s a      ("softmax @ query reductions")
          final linear         2 s a d_model
          dense block          2 s (d_model d_ff + d_model d_ff)
        final logits           2 s d_model vocab

    The Hoffmann count has both ``s^2`` products of attention (logits and the
    weighted sum of values) and the softmax; Kaplan's has one ``s^2`` term. Neither
    halves attention for the causal mask.

    ``include_embeddings=None`` keeps each paper's own convention: Kaplan's total
    leaves the embedding rows out, Hoffmann's App. F includes the embedding and
    final-logit terms. Note that Hoffmann's Table A4 (ratios 0.99-1.10 to 6ND) is
    reproduced by this count *without* the embedding and logit terms, with N the
    total parameters of Table A9 and ``n_ctx = 2048``; with them the ratios run from
    1.58 (73M parameters) down to 1.03 (6.8B). See the tests.

    Args:
      shape: the :class:`TransformerShape`.
      method: ``"hoffmann"`` or ``"kaplan"`` (static).
      include_embeddings: ``True`` / ``False`` to force the embedding and output
        logit terms in or out; ``None`` for the method's convention (static).

    Returns:
      FLOPs per token, with the broadcast shape of the shape's fields; NaN for bad
      elements under jit.

    Raises:
      ValueError: for an unknown method or a bad field of ``shape``.

    Examples:
      >>> from jscale import accounting
      >>> s = accounting.TransformerShape(n_layers=12, d_model=768, n_heads=12)
      >>> int(accounting.forward_flops_per_token_from_shape(s, "kaplan"))
      207618048
      >>> int(accounting.forward_flops_per_token_from_shape(s, "hoffmann"))
      344555520
    """
    _checks.check_choice("method", method, _FLOP_METHODS)
    if include_embeddings is None:
        include_embeddings = method == "hoffmann"
    s, valid = _resolve_shape(shape)
    if method == "kaplan":
        flops = 2.0 * _non_embedding_params(s) + 2.0 * s.n_layers * s.n_ctx * s.d_attn
        if include_embeddings:
            flops = flops + 4.0 * s.d_model + 2.0 * s.d_model * s.vocab_size
    else:
        per_layer = (
            2.0 * 3.0 * s.d_model * s.d_attn  # key, query and value projections
            + 2.0 * s.n_ctx * s.d_attn  # key @ query logits
            + 3.0 * s.n_heads * s.n_ctx  # softmax
            + 2.0 * s.n_ctx * s.d_attn  # softmax @ value ("query") reductions
            + 2.0 * s.d_attn * s.d_model  # final linear
            + 2.0 * (2.0 * s.d_model * s.d_ff)  # dense block
        )
        flops = s.n_layers * per_layer
        if include_embeddings:
            # Embeddings and final logits, 2 vocab d_model each.
            flops = flops + 4.0 * s.vocab_size * s.d_model
    return _nan_unless(valid, flops)


def training_flops_from_shape(
    shape: TransformerShape,
    n_tokens: ArrayLike,
    method: str = "hoffmann",
    include_embeddings: bool | None = None,
) -> jax.Array:
    """Training FLOPs from the shape: ``3 x forward FLOPs per token x tokens``.

    The backward pass costs twice the forward pass (Kaplan 2020, Sec. 2.1; Hoffmann
    2022, App. F), so training is three forward passes per token. See
    :func:`forward_flops_per_token_from_shape` for the two counts.

    Args:
      shape: the :class:`TransformerShape`.
      n_tokens: training tokens D (> 0), broadcastable against the shape's fields.
      method: ``"hoffmann"`` or ``"kaplan"`` (static).
      include_embeddings: as in :func:`forward_flops_per_token_from_shape`.

    Returns:
      FLOPs with the broadcast shape; NaN for bad elements under jit.

    Raises:
      ValueError: for an unknown method, bad fields or tokens, or shapes that do not
        broadcast.

    Examples:
      >>> from jscale import accounting
      >>> s = accounting.TransformerShape(n_layers=80, d_model=8192, n_heads=64,
      ...                                 d_ff=32768)  # Chinchilla, Table 4
      >>> f"{float(accounting.training_flops_from_shape(s, 1.4e12)):.3e}"
      '5.683e+23'
    """
    per_token = forward_flops_per_token_from_shape(shape, method, include_embeddings)
    (f, d), valid = _prepare(
        ("forward_flops_per_token", per_token, _POSITIVE),
        ("n_tokens", n_tokens, _POSITIVE),
    )
    return _nan_unless(valid, 3.0 * f * d)


def inference_flops_per_token(
    n_params: ArrayLike,
    n_layers: ArrayLike | None = None,
    d_model: ArrayLike | None = None,
    context: ArrayLike | None = None,
) -> jax.Array:
    """Inference FLOPs per generated token, ``2 N + 2 n_layers context d_model``.

    The forward pass of Kaplan 2020 (Eq. 2.2, Table 1 with ``d_attn = d_model``):
    ``2N`` for the weights plus attention over ``context`` cached tokens. Without the
    shape (all three of ``n_layers``, ``d_model``, ``context`` left out) only ``2N``
    is counted, as in Sardana & Frankle 2023 (arXiv:2401.00448).

    Args:
      n_params: parameters N (> 0).
      n_layers: layers (> 0), or ``None``.
      d_model: residual width (> 0), or ``None``.
      context: tokens attended to (> 0), or ``None``.

    Returns:
      FLOPs per token with the broadcast shape; NaN for bad elements under jit.

    Raises:
      ValueError: for bad values, shapes that do not broadcast, or only some of
        ``n_layers``, ``d_model`` and ``context`` given.

    Examples:
      >>> from jscale import accounting
      >>> f"{float(accounting.inference_flops_per_token(7e9)):.1e}"
      '1.4e+10'
      >>> f"{float(accounting.inference_flops_per_token(7e9, 32, 4096, 8192)):.4e}"
      '1.6147e+10'
    """
    given = [x is not None for x in (n_layers, d_model, context)]
    if any(given) and not all(given):
        raise ValueError(
            "inference_flops_per_token needs all of n_layers, d_model and context "
            "or none of them; got "
            + ", ".join(
                f"{k}={'set' if g else 'None'}"
                for k, g in zip(("n_layers", "d_model", "context"), given, strict=True)
            )
        )
    if not all(given):
        (n,), valid = _prepare(("n_params", n_params, _POSITIVE))
        return _nan_unless(valid, 2.0 * n)
    (n, layers, width, ctx), valid = _prepare(
        ("n_params", n_params, _POSITIVE),
        ("n_layers", n_layers, _POSITIVE),
        ("d_model", d_model, _POSITIVE),
        ("context", context, _POSITIVE),
    )
    return _nan_unless(valid, 2.0 * n + 2.0 * layers * ctx * width)


# --------------------------------------------------------------------------------
# Number formats
# --------------------------------------------------------------------------------


class Precision(NamedTuple):
    """A number format and its nominal cost relative to BF16.

    Attributes:
      name: short name, e.g. ``"fp8"``; also the key of a device's peak table.
      bits: bits of storage per value (TF32 is a 19-bit format, 1 sign, 8 exponent
        and 10 mantissa bits, held in 32-bit registers and memory; it counts as 32
        here).
      bytes_per_value: ``bits / 8``.
      throughput_multiplier: nominal matmul throughput relative to BF16. Used only
        when the caller asks for it (``throughput_multiplier=`` in the conversion
        functions); a device's own datasheet figure wins otherwise.
      memory_multiplier: bytes relative to BF16, ``bytes_per_value / 2``.
    """

    name: str
    bits: int
    bytes_per_value: float
    throughput_multiplier: float
    memory_multiplier: float


def _precision(name: str, bits: int, throughput: float) -> Precision:
    return Precision(name, bits, bits / 8, throughput, bits / 16)


#: Number formats by name. Nominal throughput relative to BF16 follows the vendor
#: tables: TF32 0.5x and FP32 (no tensor cores) 1/16x (A100: 156 and 19.5 against
#: 312 TFLOP/s); FP8 and INT8 2x (H100 SXM: 1,979 against 989); INT4 and FP4 4x
#: (A100 INT4 1,248 against 312; B200 FP4 9 against 2.25 PFLOP/s). That is the
#: nominal view BF16 1x throughput / 1x memory, FP8 2x / 0.5x, INT4 4x / 0.25x, the
#: same scaling as the cost model of Kumar et al. 2024 (arXiv:2411.04330), in which
#: compute cost is proportional to bits, ``C = (6/16) N D P``.
PRECISIONS: Mapping[str, Precision] = types.MappingProxyType(
    {
        p.name: p
        for p in (
            _precision("fp32", 32, 1.0 / 16.0),
            _precision("tf32", 32, 0.5),
            _precision("bf16", 16, 1.0),
            _precision("fp16", 16, 1.0),
            _precision("fp8", 8, 2.0),
            _precision("int8", 8, 2.0),
            _precision("fp4", 4, 4.0),
            _precision("int4", 4, 4.0),
        )
    }
)


def get_precision(precision: str | Precision) -> Precision:
    """The :class:`Precision` called ``precision`` (objects pass through).

    Raises:
      ValueError: for an unknown name, listing the valid ones.

    Examples:
      >>> from jscale import accounting
      >>> accounting.get_precision("fp8").bytes_per_value
      1.0
    """
    if isinstance(precision, Precision):
        return precision
    if not isinstance(precision, str):
        raise ValueError(
            f"precision must be a name or a Precision; got {type(precision).__name__}"
        )
    _checks.check_choice("precision", precision, PRECISIONS)
    return PRECISIONS[precision]


# --------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------


class TrainingMemory(NamedTuple):
    """Bytes held per model replica during training (activations not included).

    Attributes:
      weights: the weights in the training precision.
      gradients: the gradients, in the training precision.
      optimizer_state: optimizer moments, in fp32.
      master_weights: the fp32 copy of the weights kept by mixed-precision training
        (zero when the training precision is already 32-bit or it is turned off).
      total: the sum.
    """

    weights: jax.Array
    gradients: jax.Array
    optimizer_state: jax.Array
    master_weights: jax.Array
    total: jax.Array


#: fp32 values of optimizer state per parameter: Adam keeps the first and second
#: moments (ZeRO, Sec. 3.1), SGD with momentum one buffer, plain SGD none.
OPTIMIZER_STATES: Mapping[str, int] = types.MappingProxyType(
    {"adam": 2, "adamw": 2, "momentum": 1, "sgd": 0}
)


def weights_memory(
    n_params: ArrayLike, precision: str | Precision = "bf16"
) -> jax.Array:
    """Bytes to hold the weights, ``N * bytes_per_value``.

    Args:
      n_params: parameters N (> 0).
      precision: a name from :data:`PRECISIONS` or a :class:`Precision` (static).

    Returns:
      Bytes, the shape of ``n_params``; NaN for bad elements under jit.

    Raises:
      ValueError: for bad N or an unknown precision.

    Examples:
      >>> from jscale import accounting
      >>> round(float(accounting.weights_memory(70e9, "int4")) / 1e9, 3)  # GB
      35.0
    """
    p = get_precision(precision)
    (n,), valid = _prepare(("n_params", n_params, _POSITIVE))
    return _nan_unless(valid, n * p.bytes_per_value)


def training_memory(
    n_params: ArrayLike,
    precision: str | Precision = "bf16",
    optimizer: str = "adam",
    master_weights: bool = True,
) -> TrainingMemory:
    """Bytes of model state for training: weights, gradients, optimizer, master copy.

    Mixed-precision Adam holds 2 + 2 bytes per parameter for 16-bit weights and
    gradients and 4 + 4 + 4 for the fp32 master weights, momentum and variance:
    16 bytes per parameter (Rajbhandari et al. 2020, ZeRO, Sec. 3.1: "2Ψ + 2Ψ + KΨ =
    16Ψ bytes", K = 12). Activations, temporary buffers and fragmentation (ZeRO's
    "residual states") are not counted; nor is sharding (divide by the data-parallel
    degree for ZeRO stage 3).

    Args:
      n_params: parameters N (> 0).
      precision: training precision of weights and gradients (static).
      optimizer: one of :data:`OPTIMIZER_STATES` (static); moments are fp32.
      master_weights: keep an fp32 copy of the weights when training in fewer than
        32 bits (static).

    Returns:
      A :class:`TrainingMemory` of arrays in bytes, the shape of ``n_params``.

    Raises:
      ValueError: for bad N, an unknown precision or optimizer.

    Examples:
      >>> from jscale import accounting
      >>> m = accounting.training_memory(1.5e9)  # GPT-2 XL, ZeRO Sec. 3.1
      >>> float(m.total) / 1e9  # GB
      24.0
    """
    p = get_precision(precision)
    _checks.check_choice("optimizer", optimizer, OPTIMIZER_STATES)
    (n,), valid = _prepare(("n_params", n_params, _POSITIVE))
    weights = n * p.bytes_per_value
    gradients = n * p.bytes_per_value
    state = n * (4.0 * OPTIMIZER_STATES[optimizer])
    master = n * (4.0 if (master_weights and p.bits < 32) else 0.0)
    total = weights + gradients + state + master
    return TrainingMemory(*_nan_unless(valid, weights, gradients, state, master, total))


def kv_cache_bytes(
    n_layers: ArrayLike,
    d_model: ArrayLike,
    context: ArrayLike,
    batch: ArrayLike = 1,
    precision: str | Precision = "bf16",
) -> jax.Array:
    """Bytes of the key/value cache: ``2 n_layers d_model context batch`` values.

    One key and one value vector of width ``d_model`` per layer and cached token
    (as in Ludziejewski et al. 2025, arXiv:2502.05172: "2 T n_blocks d_model"
    values). For grouped- or multi-query attention pass the K/V width
    ``n_kv_heads * d_head`` as ``d_model``.

    Args:
      n_layers: layers (> 0).
      d_model: K/V width per layer (> 0).
      context: cached tokens per sequence (> 0).
      batch: sequences (> 0).
      precision: precision of the cache (static).

    Returns:
      Bytes with the broadcast shape; NaN for bad elements under jit.

    Raises:
      ValueError: for bad values, shapes that do not broadcast, unknown precision.

    Examples:
      >>> from jscale import accounting
      >>> float(accounting.kv_cache_bytes(32, 4096, 4096)) / 2**30  # GiB
      2.0
    """
    p = get_precision(precision)
    (layers, width, ctx, b), valid = _prepare(
        ("n_layers", n_layers, _POSITIVE),
        ("d_model", d_model, _POSITIVE),
        ("context", context, _POSITIVE),
        ("batch", batch, _POSITIVE),
    )
    return _nan_unless(valid, 2.0 * layers * width * ctx * b * p.bytes_per_value)


# --------------------------------------------------------------------------------
# Hardware
# --------------------------------------------------------------------------------


class Hardware(NamedTuple):
    """One accelerator, from its vendor's datasheet.

    Attributes:
      name: registry name, e.g. ``"h100-sxm"``.
      peak_flops: precision name -> dense peak FLOP/s (OP/s for integers). Never the
        "with sparsity" figures. Precisions missing here are ones the datasheet does
        not list for the device.
      memory_bytes: device memory as the datasheet writes it, in bytes (decimal
        ``GB = 1e9``; ``GiB`` where the vendor says GiB).
      memory_bandwidth_bytes_per_s: peak memory bandwidth.
      board_power_w: maximum board power (TDP) in watts, ``nan`` where the vendor
        publishes none. An upper estimate of what the device draws.
      citation: where the figures come from.
    """

    name: str
    peak_flops: Mapping[str, float]
    memory_bytes: float
    memory_bandwidth_bytes_per_s: float
    board_power_w: float
    citation: str


def _hardware(name, peak_flops, memory, bandwidth, power, citation) -> Hardware:
    return Hardware(
        name=name,
        peak_flops=types.MappingProxyType(dict(peak_flops)),
        memory_bytes=memory,
        memory_bandwidth_bytes_per_s=bandwidth,
        board_power_w=power,
        citation=citation,
    )


_A100_PEAKS = {
    "fp32": 19.5e12,
    "tf32": 156e12,
    "bf16": 312e12,
    "fp16": 312e12,
    "int8": 624e12,
    "int4": 1248e12,
}
_A100_SOURCE = (
    "NVIDIA A100 Tensor Core GPU datasheet (A100 SXM columns): FP32 19.5, TF32 "
    "156, BF16 and FP16 312 TFLOPS, INT8 624 TOPS (dense; the datasheet's second "
    "figures are with sparsity); INT4 1,248 TOPS dense from the NVIDIA A100 Tensor "
    "Core GPU (Ampere) architecture whitepaper. No FP8."
)
# Hopper: the datasheet prints every Tensor Core figure with sparsity (BF16 1,979,
# FP8 3,958, TF32 989); dense is half. 989 is the usual rounding of 1,979 / 2 (the
# Hopper whitepaper prints 989.4).
_H100_SXM_PEAKS = {
    "fp32": 67e12,
    "tf32": 494.5e12,
    "bf16": 989e12,
    "fp16": 989e12,
    "fp8": 1979e12,
    "int8": 1979e12,
}
_H100_SXM_SOURCE = (
    "NVIDIA H100 Tensor Core GPU datasheet, H100 SXM: FP32 67 TFLOPS; TF32 989, "
    "BF16/FP16 1,979, FP8 3,958 TFLOPS and INT8 3,958 TOPS with sparsity (halved "
    "here); 80 GB, 3.35 TB/s, max TDP up to 700 W."
)

HARDWARE: Mapping[str, Hardware] = types.MappingProxyType(
    {
        h.name: h
        for h in (
            _hardware(
                "a100-80gb",
                _A100_PEAKS,
                80e9,
                2039e9,
                400.0,
                _A100_SOURCE
                + " A100 80GB SXM: 80 GB HBM2e, 2,039 GB/s, max TDP 400 W.",
            ),
            _hardware(
                "a100-40gb",
                _A100_PEAKS,
                40e9,
                1555e9,
                400.0,
                _A100_SOURCE + " A100 40GB SXM: 40 GB HBM2, 1,555 GB/s, max TDP 400 W.",
            ),
            _hardware(
                "h100-sxm",
                _H100_SXM_PEAKS,
                80e9,
                3.35e12,
                700.0,
                _H100_SXM_SOURCE,
            ),
            _hardware(
                "h100-pcie",
                {
                    "fp32": 51e12,
                    "tf32": 378e12,
                    "bf16": 756e12,
                    "fp16": 756e12,
                    "fp8": 1513e12,
                    "int8": 1513e12,
                },
                80e9,
                2.0e12,
                350.0,
                "NVIDIA H100 Tensor Core GPU datasheet, H100 PCIe: FP32 51 TFLOPS; "
                "TF32 756, BF16/FP16 1,513, FP8 3,026 TFLOPS and INT8 3,026 TOPS with "
                "sparsity (halved here, 1,513 / 2 rounded to 756); 80 GB, 2 TB/s; "
                "max TDP 350 W (NVIDIA H100 PCIe product brief PB-11133).",
            ),
            _hardware(
                "h200",
                _H100_SXM_PEAKS,
                141e9,
                4.8e12,
                700.0,
                "NVIDIA H200 Tensor Core GPU datasheet, H200 SXM: compute as H100 SXM "
                "(BF16 1,979 and FP8 3,958 TFLOPS with sparsity, halved here); 141 GB "
                "HBM3e, 4.8 TB/s, max TDP up to 700 W.",
            ),
            _hardware(
                "b200",
                {
                    "tf32": 1.1e15,
                    "bf16": 2.25e15,
                    "fp16": 2.25e15,
                    "fp8": 4.5e15,
                    "int8": 4.5e15,
                    "fp4": 9e15,
                },
                180e9,
                8e12,
                1000.0,
                "NVIDIA HGX B200 / DGX B200 datasheets, per GPU at 1,000 W: TF32 2.2, "
                "FP16/BF16 4.5, FP8 9, INT8 9 and FP4 18 PFLOPS with sparsity (halved "
                "here); DGX B200 1,440 GB HBM3e and 64 TB/s for 8 GPUs, i.e. 180 GB "
                "and 8 TB/s each.",
            ),
            _hardware(
                "tpu-v5p",
                {"bf16": 459e12},
                95e9,
                2765e9,
                math.nan,
                "Google Cloud TPU documentation, TPU v5p system architecture: peak "
                "compute per chip 459 TFLOPs (bf16); HBM2e 95 GB, 2,765 GBps. Google "
                "publishes no per-chip power.",
            ),
            _hardware(
                "tpu-v5e",
                {"bf16": 197e12, "int8": 393e12},
                16e9,
                819e9,
                math.nan,
                "Google Cloud TPU documentation, TPU v5e system architecture: peak "
                "compute per chip 197 TFLOPs (bf16), 393 TOPs (int8); HBM2 16 GB, "
                "819 GBps. Google publishes no per-chip power.",
            ),
            _hardware(
                "tpu-v4",
                {"bf16": 275e12, "int8": 275e12},
                32 * 2.0**30,
                1200e9,
                192.0,
                "Google Cloud TPU documentation, TPU v4 system architecture: peak "
                "compute per chip 275 teraflops (bf16 or int8); HBM2 32 GiB, "
                "1,200 GBps; measured min/mean/max power 90/170/192 W (the maximum "
                "is used as board power).",
            ),
        )
    }
)


def get_hardware(hardware: str | Hardware) -> Hardware:
    """The :class:`Hardware` preset called ``hardware`` (objects pass through).

    Raises:
      ValueError: for an unknown name, listing the valid ones.

    Examples:
      >>> from jscale import accounting
      >>> accounting.get_hardware("h100-sxm").peak_flops["bf16"]
      989000000000000.0
    """
    if isinstance(hardware, Hardware):
        return hardware
    if not isinstance(hardware, str):
        raise ValueError(
            f"hardware must be a name or a Hardware; got {type(hardware).__name__}"
        )
    _checks.check_choice("hardware", hardware, HARDWARE)
    return HARDWARE[hardware]


def _peak(
    hardware: Hardware, precision: Precision, throughput_multiplier: ArrayLike | None
) -> tuple[float, ArrayLike]:
    """``(scale, multiplier)`` with dense peak FLOP/s ``= scale * multiplier``.

    Without ``throughput_multiplier`` the scale is the datasheet figure for the
    precision (multiplier 1); with it, the scale is the BF16 figure.
    """
    if throughput_multiplier is None:
        if precision.name in hardware.peak_flops:
            return hardware.peak_flops[precision.name], 1.0
        listed = ", ".join(sorted(hardware.peak_flops))
        raise ValueError(
            f"{hardware.name} has no dense {precision.name} peak (its datasheet "
            f"lists: {listed}); to assume a multiple of its bf16 peak, pass "
            f"throughput_multiplier (nominal for {precision.name}: "
            f"{precision.throughput_multiplier:g})"
        )
    if "bf16" not in hardware.peak_flops:
        raise ValueError(
            f"throughput_multiplier scales the bf16 peak, which {hardware.name} "
            "does not list"
        )
    return hardware.peak_flops["bf16"], throughput_multiplier


def _rate_specs(
    hardware: str | Hardware,
    precision: str | Precision,
    mfu: ArrayLike,
    throughput_multiplier: ArrayLike | None,
) -> tuple[float, list]:
    """The peak scale and the ``_prepare`` specs of the achieved-rate inputs."""
    scale, multiplier = _peak(
        get_hardware(hardware), get_precision(precision), throughput_multiplier
    )
    specs = [
        ("mfu", mfu, _FRACTION),
        ("throughput_multiplier", multiplier, _POSITIVE),
    ]
    return scale, specs


def _board_power(hardware: Hardware) -> float:
    power = hardware.board_power_w
    if not (math.isfinite(power) and power > 0):
        raise ValueError(
            f"{hardware.name} has no published board power (board_power_w={power}); "
            f"use get_hardware({hardware.name!r})._replace(board_power_w=...) with "
            "a figure of your own"
        )
    return power


def device_flops_per_second(
    hardware: str | Hardware,
    precision: str | Precision = "bf16",
    mfu: ArrayLike = 0.4,
    *,
    throughput_multiplier: ArrayLike | None = None,
) -> jax.Array:
    """Achieved FLOP/s of one device: dense peak x model FLOPs utilization.

    The peak is the datasheet's dense figure for ``precision``. A precision the
    datasheet does not list for the device (FP8 on A100, INT4 on H100, FP8 on TPUs)
    is treated as unsupported and raises, rather than silently assuming a speed-up.
    To model it anyway, or to override any figure, pass ``throughput_multiplier``:
    the peak is then ``bf16 peak x throughput_multiplier`` (e.g. the nominal
    ``PRECISIONS["fp8"].throughput_multiplier == 2``).

    Args:
      hardware: a name from :data:`HARDWARE` or a :class:`Hardware` (static).
      precision: a name from :data:`PRECISIONS` or a :class:`Precision` (static).
      mfu: model FLOPs utilization, the achieved fraction of the peak, in (0, 1].
      throughput_multiplier: optional multiple of the BF16 peak (> 0), overriding
        the datasheet figure.

    Returns:
      FLOP/s, the broadcast shape of ``mfu`` and ``throughput_multiplier``.

    Raises:
      ValueError: for unknown names, an unsupported precision, or bad values.

    Examples:
      >>> from jscale import accounting
      >>> f"{float(accounting.device_flops_per_second('h100-sxm', 'bf16', 0.4)):.4e}"
      '3.9560e+14'
    """
    scale, specs = _rate_specs(hardware, precision, mfu, throughput_multiplier)
    (u, m), valid = _prepare(*specs)
    return _nan_unless(valid, scale * m * u)


def device_hours_to_flops(
    device_hours: ArrayLike,
    hardware: str | Hardware,
    precision: str | Precision = "bf16",
    mfu: ArrayLike = 0.4,
    *,
    throughput_multiplier: ArrayLike | None = None,
) -> jax.Array:
    """FLOPs delivered by ``device_hours``: ``hours x 3600 x peak x mfu``.

    Args:
      device_hours: device-hours (> 0), e.g. devices x wall-clock hours.
      hardware, precision, mfu, throughput_multiplier: as in
        :func:`device_flops_per_second`.

    Returns:
      FLOPs with the broadcast shape; NaN for bad elements under jit.

    Raises:
      ValueError: for unknown names, an unsupported precision, bad values or shapes.

    Examples:
      >>> from jscale import accounting
      >>> hours = 1000 * 30 * 24  # 1000 H100s for 30 days
      >>> f"{float(accounting.device_hours_to_flops(hours, 'h100-sxm')):.4e}"
      '1.0254e+24'
    """
    scale, specs = _rate_specs(hardware, precision, mfu, throughput_multiplier)
    (h, u, m), valid = _prepare(("device_hours", device_hours, _POSITIVE), *specs)
    return _nan_unless(valid, h * (SECONDS_PER_HOUR * scale) * m * u)


def flops_to_device_hours(
    compute_flops: ArrayLike,
    hardware: str | Hardware,
    precision: str | Precision = "bf16",
    mfu: ArrayLike = 0.4,
    *,
    throughput_multiplier: ArrayLike | None = None,
) -> jax.Array:
    """Device-hours to deliver ``compute_flops``: ``C / (3600 x peak x mfu)``.

    The inverse of :func:`device_hours_to_flops`.

    Args:
      compute_flops: FLOPs (> 0).
      hardware, precision, mfu, throughput_multiplier: as in
        :func:`device_flops_per_second`.

    Returns:
      Device-hours with the broadcast shape; NaN for bad elements under jit.

    Raises:
      ValueError: for unknown names, an unsupported precision, bad values or shapes.

    Examples:
      >>> from jscale import accounting
      >>> c = accounting.training_flops(70e9, 1.4e12)  # Chinchilla
      >>> f"{float(accounting.flops_to_device_hours(c, 'a100-80gb', mfu=0.5)):.4g}"
      '1.047e+06'
    """
    scale, specs = _rate_specs(hardware, precision, mfu, throughput_multiplier)
    (c, u, m), valid = _prepare(("compute_flops", compute_flops, _POSITIVE), *specs)
    return _nan_unless(valid, c / (SECONDS_PER_HOUR * scale) / (m * u))


def energy_joules(
    device_hours: ArrayLike,
    hardware: str | Hardware,
    pue: ArrayLike = 1.0,
    power_fraction: ArrayLike = 1.0,
) -> jax.Array:
    """Energy drawn: ``hours x 3600 x board power x power_fraction x PUE``.

    Board power is the datasheet's maximum (TDP), so with ``power_fraction=1`` this
    is an upper estimate for the accelerators alone; real training draws less (TPU
    v4 measures a mean of 170 W against a 192 W maximum). Host CPUs, networking and
    cooling are outside board power; ``pue`` (power usage effectiveness, >= 1)
    scales to the facility.

    Args:
      device_hours: device-hours (> 0).
      hardware: a name or :class:`Hardware` with a board power (static).
      pue: facility power usage effectiveness (>= 1).
      power_fraction: average draw as a fraction of board power, in (0, 1].

    Returns:
      Joules with the broadcast shape; NaN for bad elements under jit.

    Raises:
      ValueError: for an unknown name, hardware without a published power, bad
        values or shapes.

    Examples:
      >>> from jscale import accounting
      >>> j = accounting.energy_joules(1000 * 30 * 24, "h100-sxm", pue=1.2)
      >>> round(float(accounting.joules_to_kwh(j)))
      604800
    """
    power = _board_power(get_hardware(hardware))
    (h, e, f), valid = _prepare(
        ("device_hours", device_hours, _POSITIVE),
        ("pue", pue, _AT_LEAST_ONE),
        ("power_fraction", power_fraction, _FRACTION),
    )
    return _nan_unless(valid, h * (SECONDS_PER_HOUR * power) * f * e)


def joules_to_kwh(joules: ArrayLike) -> jax.Array:
    """Kilowatt-hours in ``joules`` (1 kWh = 3.6e6 J).

    Examples:
      >>> from jscale import accounting
      >>> float(accounting.joules_to_kwh(7.2e6))
      2.0
    """
    (j,), valid = _prepare(("joules", joules, _POSITIVE))
    return _nan_unless(valid, j / JOULES_PER_KWH)


def kwh_to_joules(kwh: ArrayLike) -> jax.Array:
    """Joules in ``kwh`` kilowatt-hours (1 kWh = 3.6e6 J).

    Examples:
      >>> from jscale import accounting
      >>> float(accounting.kwh_to_joules(2.0))
      7200000.0
    """
    (k,), valid = _prepare(("kwh", kwh, _POSITIVE))
    return _nan_unless(valid, k * JOULES_PER_KWH)


def cost_usd(device_hours: ArrayLike, price_per_device_hour: ArrayLike) -> jax.Array:
    """Dollars for ``device_hours`` at ``price_per_device_hour``.

    Args:
      device_hours: device-hours (> 0).
      price_per_device_hour: dollars per device-hour (> 0).

    Returns:
      Dollars with the broadcast shape; NaN for bad elements under jit.

    Raises:
      ValueError: for bad values or shapes.

    Examples:
      >>> from jscale import accounting
      >>> float(accounting.cost_usd(720_000, 2.0))
      1440000.0
    """
    (h, p), valid = _prepare(
        ("device_hours", device_hours, _POSITIVE),
        ("price_per_device_hour", price_per_device_hour, _POSITIVE),
    )
    return _nan_unless(valid, h * p)


def tokens_per_joule(
    n_params: ArrayLike,
    hardware: str | Hardware,
    precision: str | Precision = "bf16",
    mfu: ArrayLike = 0.4,
    pue: ArrayLike = 1.0,
    *,
    power_fraction: ArrayLike = 1.0,
    throughput_multiplier: ArrayLike | None = None,
) -> jax.Array:
    """Training tokens per joule: ``peak x mfu / (6 N x power x fraction x PUE)``.

    Training FLOPs per token are ``6N`` (:func:`training_flops`); for generation
    (``2N`` per token, attention ignored) multiply by 3.

    Args:
      n_params: parameters N (> 0).
      hardware, precision, mfu, throughput_multiplier: as in
        :func:`device_flops_per_second`.
      pue, power_fraction: as in :func:`energy_joules`.

    Returns:
      Tokens per joule with the broadcast shape; NaN for bad elements under jit.

    Raises:
      ValueError: as :func:`device_flops_per_second` and :func:`energy_joules`.

    Examples:
      >>> from jscale import accounting
      >>> round(float(accounting.tokens_per_joule(7e9, "h100-sxm")), 2)
      13.46
    """
    power = _board_power(get_hardware(hardware))
    scale, specs = _rate_specs(hardware, precision, mfu, throughput_multiplier)
    (n, e, f, u, m), valid = _prepare(
        ("n_params", n_params, _POSITIVE),
        ("pue", pue, _AT_LEAST_ONE),
        ("power_fraction", power_fraction, _FRACTION),
        *specs,
    )
    value = (scale / (6.0 * power)) * (m * u) / (n * f * e)
    return _nan_unless(valid, value)


def energy_to_flops(
    energy_joules: ArrayLike,
    hardware: str | Hardware,
    precision: str | Precision = "bf16",
    mfu: ArrayLike = 0.4,
    pue: ArrayLike = 1.0,
    *,
    power_fraction: ArrayLike = 1.0,
    throughput_multiplier: ArrayLike | None = None,
) -> jax.Array:
    """FLOPs that ``energy_joules`` buys: ``E x peak x mfu / (power x fraction x PUE)``.

    The inverse of :func:`energy_joules` followed by :func:`device_hours_to_flops`,
    so a plan can start from an energy budget (use :func:`kwh_to_joules` first for
    kWh).

    Args:
      energy_joules: joules (> 0).
      hardware, precision, mfu, throughput_multiplier: as in
        :func:`device_flops_per_second`.
      pue, power_fraction: as in :func:`energy_joules`.

    Returns:
      FLOPs with the broadcast shape; NaN for bad elements under jit.

    Raises:
      ValueError: as :func:`device_flops_per_second` and :func:`energy_joules`.

    Examples:
      >>> from jscale import accounting
      >>> j = accounting.kwh_to_joules(1e6)  # one gigawatt-hour
      >>> f"{float(accounting.energy_to_flops(j, 'h100-sxm', pue=1.2)):.3e}"
      '1.695e+24'
    """
    power = _board_power(get_hardware(hardware))
    scale, specs = _rate_specs(hardware, precision, mfu, throughput_multiplier)
    (j, e, f, u, m), valid = _prepare(
        ("energy_joules", energy_joules, _POSITIVE),
        ("pue", pue, _AT_LEAST_ONE),
        ("power_fraction", power_fraction, _FRACTION),
        *specs,
    )
    value = j / (f * e) * (scale / power) * (m * u)
    return _nan_unless(valid, value)


def cost_to_flops(
    cost_usd: ArrayLike,
    price_per_device_hour: ArrayLike,
    hardware: str | Hardware,
    precision: str | Precision = "bf16",
    mfu: ArrayLike = 0.4,
    *,
    throughput_multiplier: ArrayLike | None = None,
) -> jax.Array:
    """FLOPs that ``cost_usd`` buys: ``cost / price x 3600 x peak x mfu``.

    The inverse of :func:`cost_usd` followed by :func:`device_hours_to_flops`, so a
    plan can start from a budget in dollars.

    Args:
      cost_usd: dollars (> 0).
      price_per_device_hour: dollars per device-hour (> 0).
      hardware, precision, mfu, throughput_multiplier: as in
        :func:`device_flops_per_second`.

    Returns:
      FLOPs with the broadcast shape; NaN for bad elements under jit.

    Raises:
      ValueError: as :func:`device_flops_per_second` and :func:`cost_usd`.

    Examples:
      >>> from jscale import accounting
      >>> f"{float(accounting.cost_to_flops(1e6, 2.0, 'h100-sxm')):.4e}"
      '7.1208e+23'
    """
    scale, specs = _rate_specs(hardware, precision, mfu, throughput_multiplier)
    (c, p, u, m), valid = _prepare(
        ("cost_usd", cost_usd, _POSITIVE),
        ("price_per_device_hour", price_per_device_hour, _POSITIVE),
        *specs,
    )
    return _nan_unless(valid, c / p * (SECONDS_PER_HOUR * scale) * m * u)


# --------------------------------------------------------------------------------
# A fleet for a while
# --------------------------------------------------------------------------------


class ComputeBudget(NamedTuple):
    """What ``n_devices`` deliver in a given time, and what it costs.

    A pytree whose array fields are leaves and whose names (``hardware``,
    ``precision``) are static, so :func:`budget` works under ``jax.jit`` and
    ``jax.vmap``.

    Attributes:
      compute_flops: FLOPs delivered (peak x MFU).
      device_hours: devices x wall-clock hours.
      energy_joules: energy at board power x ``power_fraction`` x PUE; NaN for
        hardware without a published board power.
      energy_kwh: the same in kWh.
      cost_usd: dollars; NaN when no price was given.
      hardware: the hardware name.
      n_devices: devices, as given.
      mfu: model FLOPs utilization, as given.
      precision: the precision name.
      pue: power usage effectiveness, as given.
    """

    compute_flops: jax.Array
    device_hours: jax.Array
    energy_joules: jax.Array
    energy_kwh: jax.Array
    cost_usd: jax.Array
    hardware: str
    n_devices: jax.Array
    mfu: jax.Array
    precision: str
    pue: jax.Array


_BUDGET_ARRAYS = (
    "compute_flops",
    "device_hours",
    "energy_joules",
    "energy_kwh",
    "cost_usd",
    "n_devices",
    "mfu",
    "pue",
)


def _flatten_budget(b: ComputeBudget):
    return tuple(getattr(b, f) for f in _BUDGET_ARRAYS), (b.hardware, b.precision)


def _unflatten_budget(aux, children) -> ComputeBudget:
    fields = dict(zip(_BUDGET_ARRAYS, children, strict=True))
    return ComputeBudget(hardware=aux[0], precision=aux[1], **fields)


jax.tree_util.register_pytree_node(ComputeBudget, _flatten_budget, _unflatten_budget)


def budget(
    hardware: str | Hardware,
    n_devices: ArrayLike,
    *,
    hours: ArrayLike | None = None,
    days: ArrayLike | None = None,
    mfu: ArrayLike = 0.4,
    precision: str | Precision = "bf16",
    price_per_device_hour: ArrayLike | None = None,
    pue: ArrayLike = 1.0,
    power_fraction: ArrayLike = 1.0,
    throughput_multiplier: ArrayLike | None = None,
) -> ComputeBudget:
    """Compute, device-hours, energy and cost of ``n_devices`` for a wall-clock time.

    ``compute_flops = n_devices x hours x 3600 x peak x mfu`` with the dense
    datasheet peak (see :func:`device_flops_per_second`); energy as
    :func:`energy_joules`; cost as :func:`cost_usd`.

    Args:
      hardware: a name from :data:`HARDWARE` or a :class:`Hardware` (static).
      n_devices: devices (> 0).
      hours: wall-clock hours (> 0). Exactly one of ``hours`` and ``days``.
      days: wall-clock days (> 0).
      mfu: model FLOPs utilization in (0, 1].
      precision: a name from :data:`PRECISIONS` or a :class:`Precision` (static).
      price_per_device_hour: dollars per device-hour (> 0); ``None`` gives NaN cost.
      pue: power usage effectiveness (>= 1).
      power_fraction: average draw as a fraction of board power, in (0, 1].
      throughput_multiplier: optional multiple of the BF16 peak (> 0).

    Returns:
      A :class:`ComputeBudget` with the broadcast shape of the array inputs.

    Raises:
      ValueError: unless exactly one of ``hours`` and ``days`` is given; for unknown
        names, an unsupported precision, bad values or shapes.

    Examples:
      >>> from jscale import accounting
      >>> b = accounting.budget("h100-sxm", 1000, days=30, price_per_device_hour=2.0)
      >>> f"{float(b.compute_flops):.4e}", float(b.device_hours), float(b.cost_usd)
      ('1.0254e+24', 720000.0, 1440000.0)
      >>> round(float(b.energy_kwh))
      504000
    """
    if (hours is None) == (days is None):
        given = "both" if hours is not None else "neither"
        raise ValueError(
            f"budget needs exactly one of hours= or days= (wall-clock); got {given}"
        )
    hw = get_hardware(hardware)
    prec = get_precision(precision)
    scale, rate_specs = _rate_specs(hw, prec, mfu, throughput_multiplier)
    if hours is not None:
        duration, hours_per_unit = ("hours", hours, _POSITIVE), 1.0
    else:
        duration, hours_per_unit = ("days", days, _POSITIVE), 24.0
    price = 1.0 if price_per_device_hour is None else price_per_device_hour
    (dev, t, e, f, p, u, m), valid = _prepare(
        ("n_devices", n_devices, _POSITIVE),
        duration,
        ("pue", pue, _AT_LEAST_ONE),
        ("power_fraction", power_fraction, _FRACTION),
        ("price_per_device_hour", price, _POSITIVE),
        *rate_specs,
    )
    device_hours = dev * (hours_per_unit * t)
    flops = device_hours * (SECONDS_PER_HOUR * scale) * m * u
    power = hw.board_power_w
    if math.isfinite(power) and power > 0:
        joules = device_hours * (SECONDS_PER_HOUR * power) * f * e
    else:
        joules = jnp.full_like(flops, jnp.nan)
    if price_per_device_hour is None:
        dollars = jnp.full_like(flops, jnp.nan)
    else:
        dollars = device_hours * p
    flops, device_hours, joules, dollars = _nan_unless(
        valid, flops, device_hours, joules, dollars
    )

    def echo(x: ArrayLike) -> jax.Array:
        return jnp.broadcast_to(asfloat(_weak(x)), jnp.shape(flops))

    return ComputeBudget(
        compute_flops=flops,
        device_hours=device_hours,
        energy_joules=joules,
        energy_kwh=joules / JOULES_PER_KWH,
        cost_usd=dollars,
        hardware=hw.name,
        n_devices=echo(n_devices),
        mfu=echo(mfu),
        precision=prec.name,
        pue=echo(pue),
    )
