"""Joint MoE scaling law: Ludziejewski et al. 2025, active and total parameters.

Ludziejewski et al. 2025, "Joint MoE Scaling Laws: Mixture of Experts Can Be
Memory Efficient" (arXiv:2502.05172), Eq. 6, natural logarithms::

    L(N_act, D, Ê) = a Ê^delta N_act^(alpha + gamma ln Ê)
                     + b Ê^omega D^(beta + zeta ln Ê) + c,

with Clark's Ê (:func:`~jscale.laws.moe_clark.log_expert_hat`). The exponents enter
*as written*: ``alpha`` and ``beta`` are negative (``N_act^alpha`` falls with
N_act): :func:`joint_loss`, preset ``"moe-ludziejewski2025"`` (Table 3). Helpers
for their parameter counts (:func:`joint_active_params`,
:func:`joint_total_params`) and KV cache (:func:`joint_kv_cache_values`). The loss
is in nats per token. Every name here is also reachable as
``jscale.laws.moe.<name>``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from ._inputs import checked
from ._registry import Preset, family
from .moe_clark import log_expert_hat

#: Ludziejewski 2025: GPT-2 tokenizer vocabulary, and d_model / n_blocks.
JOINT_VOCAB = 50257.0
JOINT_WIDTH_PER_BLOCK = 64.0


class JointMoEParams(NamedTuple):
    """Constants of Ludziejewski's joint law (Eq. 6, natural logarithms).

    ``L = a Ê^delta N_act^(alpha + gamma ln Ê) + b Ê^omega D^(beta + zeta ln Ê) + c``,
    with Clark's Ê. The exponents enter as written: ``alpha`` and ``beta`` are
    negative.

    Leaves may be Python floats or arrays; a leading axis holds many laws at once.
    """

    a: ArrayLike
    alpha: ArrayLike
    delta: ArrayLike
    gamma: ArrayLike
    b: ArrayLike
    beta: ArrayLike
    omega: ArrayLike
    zeta: ArrayLike
    e_start: ArrayLike
    e_max: ArrayLike
    c: ArrayLike


@checked
def joint_loss(
    params: JointMoEParams,
    n_active_params: ArrayLike,
    n_tokens: ArrayLike,
    experts: ArrayLike,
) -> jax.Array:
    """Joint MoE loss (Ludziejewski 2025, Eq. 6).

    ``a Ê^delta N_act^(alpha + gamma ln Ê) + b Ê^omega D^(beta + zeta ln Ê) + c``,
    each term evaluated as one ``exp`` of a sum of logs. For a fixed E it is a
    Chinchilla-form law in (N_act, D); E = 1 (dense) gives Ê = E_start.

    Args:
      params: the law's constants.
      n_active_params: active parameters N_act (> 0; embeddings included), any
        shape.
      n_tokens: training tokens D (> 0), broadcastable.
      experts: experts E (>= 1; top-1 routing), broadcastable.

    Returns:
      The loss in nats per token with the broadcast shape; NaN under ``jax.jit``
      where an input is invalid.

    Raises:
      ValueError: for a concrete N_act or D not finite and > 0, E < 1, or shapes
        that do not broadcast.

    Examples:
      >>> from jscale.laws import moe
      >>> p = moe.LUDZIEJEWSKI2025.params
      >>> round(float(moe.joint_loss(p, 1e9, 2e10, 1.0)), 4)  # dense
      2.5776
      >>> round(float(moe.joint_loss(p, 1e9, 2e10, 8.0)), 4)  # 8 experts
      2.5088
    """
    log_e = log_expert_hat(experts, params.e_start, params.e_max)
    log_n_term = (
        jnp.log(params.a)
        + params.delta * log_e
        + (params.alpha + params.gamma * log_e) * jnp.log(n_active_params)
    )
    log_d_term = (
        jnp.log(params.b)
        + params.omega * log_e
        + (params.beta + params.zeta * log_e) * jnp.log(n_tokens)
    )
    return jnp.exp(log_n_term) + jnp.exp(log_d_term) + params.c


def _blocks(d_model: jax.Array, n_blocks: jax.Array | None) -> jax.Array:
    """Blocks, their ``d_model / 64`` when not given."""
    return d_model / JOINT_WIDTH_PER_BLOCK if n_blocks is None else n_blocks


@checked
def joint_total_params(
    d_model: ArrayLike,
    experts: ArrayLike,
    n_blocks: ArrayLike | None = None,
    vocab: ArrayLike = JOINT_VOCAB,
) -> jax.Array:
    """Total parameters ``2 d_model V + (4 + 9E) n_blocks d_model^2`` (Ludziejewski).

    Input and output embeddings (``2 d_model V``), attention (``4 d_model^2``) and
    E SwiGLU experts of hidden size ``3 d_model`` (``9 d_model^2`` each) per block.

    Args:
      d_model: residual width (> 0).
      experts: experts E (>= 1).
      n_blocks: blocks (> 0); ``None`` for their ``d_model / 64``.
      vocab: vocabulary size V (default 50257, the GPT-2 tokenizer).

    Returns:
      Parameters with the broadcast shape; NaN under jit for invalid elements.

    Raises:
      ValueError: for a concrete d_model or n_blocks not finite and > 0, E < 1,
        or shapes that do not broadcast.

    Examples:
      >>> from jscale.laws import moe
      >>> f"{float(moe.joint_total_params(1024, 8)):.4g}"
      '1.378e+09'
    """
    w, blocks = d_model, _blocks(d_model, n_blocks)
    return 2.0 * w * vocab + (4.0 + 9.0 * experts) * blocks * w * w


@checked
def joint_active_params(
    d_model: ArrayLike,
    n_blocks: ArrayLike | None = None,
    vocab: ArrayLike = JOINT_VOCAB,
) -> jax.Array:
    """Active parameters ``2 d_model V + 13 n_blocks d_model^2`` (Ludziejewski).

    With top-1 routing a token uses attention and one expert per block, whatever E.

    Args:
      d_model: residual width (> 0).
      n_blocks: blocks (> 0); ``None`` for their ``d_model / 64``.
      vocab: vocabulary size V (default 50257).

    Returns:
      Parameters with the broadcast shape; NaN under jit for invalid elements.

    Raises:
      ValueError: for a concrete d_model or n_blocks not finite and > 0, or
        shapes that do not broadcast.

    Examples:
      >>> from jscale.laws import moe
      >>> f"{float(moe.joint_active_params(1024)):.4g}"
      '3.21e+08'
    """
    w, blocks = d_model, _blocks(d_model, n_blocks)
    return 2.0 * w * vocab + 13.0 * blocks * w * w


@checked
def joint_kv_cache_values(
    d_model: ArrayLike, context: ArrayLike, n_blocks: ArrayLike | None = None
) -> jax.Array:
    """KV-cache size in values, ``2 T n_blocks d_model`` for context T (Ludziejewski).

    One key and one value vector of width d_model per block and cached token; in
    bf16 each value takes 2 bytes (for bytes with other formats see
    :func:`jscale.accounting.kv_cache_bytes`).

    Args:
      d_model: residual width (> 0).
      context: cached tokens T (> 0).
      n_blocks: blocks (> 0); ``None`` for their ``d_model / 64``.

    Returns:
      Values with the broadcast shape; NaN under jit for invalid elements.

    Raises:
      ValueError: for a concrete d_model, T or n_blocks not finite and > 0, or
        shapes that do not broadcast.

    Examples:
      >>> from jscale.laws import moe
      >>> f"{float(moe.joint_kv_cache_values(1024, 4096)):.4g}"
      '1.342e+08'
    """
    return 2.0 * context * _blocks(d_model, n_blocks) * d_model


JOINT_FAMILY = family(
    "moe-ludziejewski2025",
    JointMoEParams,
    joint_loss,
    (
        "L = a Ê^delta N_act^(alpha + gamma ln Ê) + b Ê^omega D^(beta + zeta ln Ê) "
        "+ c; Ê as in Clark 2022"
    ),
)

LUDZIEJEWSKI2025 = Preset(
    name="moe-ludziejewski2025",
    family=JOINT_FAMILY,
    params=JointMoEParams(
        a=35.91,
        alpha=-0.1889,
        delta=-0.2285,
        gamma=0.0098,
        b=35.98,
        beta=-0.1775,
        omega=0.5529,
        zeta=-0.0259,
        e_start=2.0732,
        e_max=290.4521,
        c=1.3637,
    ),
    citation=(
        "Ludziejewski et al. 2025, Joint MoE Scaling Laws: Mixture of Experts Can Be "
        "Memory Efficient, arXiv:2502.05172, Eq. 6 with the constants of Table 3"
    ),
    units=(
        "N_act: active parameters incl. embeddings, 2 d_model V + 13 n_blocks "
        "d_model^2; D: training tokens; E: experts (top-1); loss: nats/token"
    ),
    notes=(
        "Exponents as printed (alpha, beta < 0, no minus sign in the formula). The "
        "signs agree with the paper's numeric form of the law, "
        "35.91 Ê^-0.2285 N_act^(-0.1889 + 0.0098 ln Ê) + 35.98 Ê^0.5529 "
        "D^(-0.1775 - 0.0259 ln Ê) + 1.3637. Fitted on runs up to 2.7B active and "
        "5B total parameters, E <= 32."
    ),
)


PRESETS = {p.name: p for p in (LUDZIEJEWSKI2025,)}
