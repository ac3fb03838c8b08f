"""Accelerators and number formats: datasheet peaks, memory, board power.

:data:`HARDWARE` holds dense peak FLOP/s per number format from vendor datasheets
(every figure is the **dense** one: NVIDIA prints Tensor Core throughput "with
sparsity", twice what a training run can reach, and the presets hold half of it);
:data:`PRECISIONS` the number formats (``precision`` is always a number format:
``"bf16"``, ``"fp8"``, ...). Both are static: a name or an object is resolved in
Python, before any tracing.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from typing import NamedTuple

from jax.typing import ArrayLike

from .. import _checks

#: Rules of the inputs that describe how a fleet runs (the rest are > 0).
_RATE_RULES = {
    "mfu": _checks.FRACTION,
    "pue": _checks.AT_LEAST_ONE,
    "power_fraction": _checks.FRACTION,
}

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
    return _lookup("precision", precision, Precision, PRECISIONS)


def _lookup(kind: str, value, cls: type, table: Mapping):
    """``value`` if it is a ``cls`` already, else the preset ``table[value]``.

    Raises:
      ValueError: for a value that is neither a name nor a ``cls``, or an unknown
        name (listing the valid ones).
    """
    if isinstance(value, cls):
        return value
    if not isinstance(value, str):
        raise ValueError(
            f"{kind} must be a name or a {cls.__name__}; got {type(value).__name__}"
        )
    _checks.check_choice(kind, value, table)
    return table[value]


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
    return _lookup("hardware", hardware, Hardware, HARDWARE)


def _peak(
    hardware: str | Hardware,
    precision: str | Precision,
    throughput_multiplier: ArrayLike | None,
) -> tuple[float, ArrayLike]:
    """``(scale, multiplier)`` with dense peak FLOP/s ``= scale * multiplier``.

    Without ``throughput_multiplier`` the scale is the datasheet figure for the
    precision (multiplier 1); with it, the scale is the BF16 figure.

    Raises:
      ValueError: for unknown names, or a precision the datasheet does not list
        (without ``throughput_multiplier``).
    """
    hardware, precision = get_hardware(hardware), get_precision(precision)
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


def _rate(hardware, precision, mfu, throughput_multiplier, **inputs):
    """The peak, and a run's inputs checked: ``inputs`` in order, then the rate's.

    The common start of every function that turns time, energy or money into FLOPs:
    :func:`_peak` resolves the hardware, the number format and the multiplier, then
    :func:`jscale._checks.prepare` checks ``inputs`` (by name), ``mfu`` and the
    multiplier. Returns ``(scale, valid, arrays)``, ``arrays`` in that order.
    """
    scale, multiplier = _peak(hardware, precision, throughput_multiplier)
    valid, arrays = _checks.prepare(
        _RATE_RULES, **inputs, mfu=mfu, throughput_multiplier=multiplier
    )
    return scale, valid, arrays


def _board_power(hardware: str | Hardware) -> float:
    """The board power of ``hardware`` in watts; raises where none is published."""
    hardware = get_hardware(hardware)
    power = hardware.board_power_w
    if not (math.isfinite(power) and power > 0):
        raise ValueError(
            f"{hardware.name} has no published board power (board_power_w={power}); "
            f"use get_hardware({hardware.name!r})._replace(board_power_w=...) with "
            "a figure of your own"
        )
    return power
