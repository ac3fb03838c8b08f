"""The valid values of every named input of a law, and the decorator that checks them.

An argument of a law function whose name is in :data:`RULES` is an elementwise
input: :func:`checked` checks it (a concrete bad value raises ``ValueError`` naming
it), broadcasts it against the others, hands the function a sanitized array, and
turns the result into NaN where an input was invalid (under ``jax.jit``). Other
arguments (the ``*Params``, constants such as ``vocab``) pass through unchanged. The
same name means the same quantity, with the same valid range, in every family.
"""

from __future__ import annotations

from .. import _checks

#: Inputs that must be finite and > 0.
_POSITIVE = (
    "n_params",
    "n_tokens",
    "unique_tokens",
    "compute_flops",
    "compute_pf_days",
    "steps",
    "x",
    "loss",
    "n_active_params",
    "granularity",
    "weight_bits",
    "activation_bits",
    "kv_cache_bits",
    "bits",
    "d_model",
    "n_blocks",
    "expansion_rate",
    "context",
)

#: Valid values of each input, by name.
RULES = {
    **dict.fromkeys(_POSITIVE, _checks.POSITIVE),
    # Experts per routed layer: 1 is a dense model.
    "experts": _checks.AT_LEAST_ONE,
    # Sparsity S = (E - K) / E in [0, 1); 0.5 stands in for invalid elements.
    "sparsity": _checks.Range(lower_inclusive=True, upper=1.0, safe=0.5),
    # Bits after post-training quantization; +inf means none.
    "post_train_bits": _checks.Range(finite=False),
}

#: Decorator of a law function: check, broadcast and sanitize the arguments named in
#: :data:`RULES`, and flag the result where one was invalid.
checked = _checks.elementwise(**RULES)
