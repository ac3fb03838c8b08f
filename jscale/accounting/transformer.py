"""The shape of a decoder-only transformer, and its parameters and FLOPs.

Counts from a :class:`TransformerShape` (layers, width, heads, ...): parameters and
forward FLOPs per token by Kaplan et al. 2020 (arXiv:2001.08361, Table 1) and by
Hoffmann et al. 2022 (arXiv:2203.15556, App. F), and the training FLOPs they imply.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
from jax.typing import ArrayLike

from .. import _checks

#: A 0/1 flag given as a number (or bool).
_FLAG = _checks.Range(lower_inclusive=True, upper=1.0, upper_inclusive=True)


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


#: The fields of a shape in the order they are checked.
_FIELDS = (
    "n_layers",
    "d_model",
    "n_heads",
    "n_ctx",
    "vocab_size",
    "d_head",
    "d_ff",
    "learned_positions",
)


def _resolve_shape(shape: TransformerShape) -> tuple[jax.Array | bool, _Shape]:
    """Check a shape's fields (named ``shape.<field>``) and fill in the defaults."""
    if not isinstance(shape, TransformerShape):
        raise ValueError(
            f"shape must be a TransformerShape; got {type(shape).__name__}"
        )
    valid, arrays = _checks.prepare(
        {"shape.learned_positions": _FLAG},
        **{f"shape.{f}": getattr(shape, f) for f in _FIELDS},
    )
    a = dict(zip(_FIELDS, arrays, strict=True))
    d_head = a["d_model"] / a["n_heads"] if a["d_head"] is None else a["d_head"]
    d_ff = 4.0 * a["d_model"] if a["d_ff"] is None else a["d_ff"]
    return valid, _Shape(
        n_layers=a["n_layers"],
        d_model=a["d_model"],
        n_heads=a["n_heads"],
        d_attn=a["n_heads"] * d_head,
        d_ff=d_ff,
        n_ctx=a["n_ctx"],
        vocab_size=a["vocab_size"],
        learned_positions=a["learned_positions"],
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
    valid, s = _resolve_shape(shape)
    n = _non_embedding_params(s)
    if include_embeddings:
        positions = s.learned_positions * s.n_ctx * s.d_model
        n = n + s.vocab_size * s.d_model + positions
    return _checks.masked(valid, n)


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
    valid, s = _resolve_shape(shape)
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
    return _checks.masked(valid, flops)


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
    valid, (f, d) = _checks.prepare(
        forward_flops_per_token=per_token, n_tokens=n_tokens
    )
    return _checks.masked(valid, 3.0 * f * d)
