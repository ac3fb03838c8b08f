"""Sardana et al. 2024's inference-aware optimum: smaller models, trained longer.

Reproduces the worked examples of Sardana, Portes, Doubov & Frankle 2024, "Beyond
Chinchilla-Optimal: Accounting for Inference in Language Model Scaling Laws"
(arXiv:2401.00448), as printed in their repository's README
(nikhilsardana/beyond-chinchilla), with their Chinchilla constants
(alpha = 0.336, beta = 0.283, A = 406.4, B = 410.7, E = 1.69):

- model_calculator.py: a 70B model on 1T tokens reaches loss 1.947;
- compute_optimal.py: the model reaching loss 1.947 with 2T lifetime inference
  tokens at the least lifetime FLOPs (2.418e10 parameters on 2.657e12 tokens; 70.96%
  of the parameters, 146.77% of the tokens and 95.22% of the lifetime FLOPs of the
  equal-quality Chinchilla-style model);
- cost_optimal.py: the cheapest such model with A100-80GB training at $1.40/h and
  A100-40GB INT8 inference at $0.60/h, 1e10 requests of 1000 input and 250 output
  tokens (2.053e10 parameters on 3.302e12 tokens; 60.23%, 182.41%, 88.76% of cost);
- cost_calculator.py: a 30B Chinchilla-style model with 1e9 requests of 500 input
  and 100 output tokens (1.556e12 tokens, loss 1.958253360475841, training
  2.801e23 FLOPs and $3.146e5, lifetime 3.161e23 FLOPs and $6.378e5).

Run:
    python examples/inference_shift.py [--smoke] [--plot DIR]

``--smoke`` runs the same checks (all of them are fast); ``--plot DIR`` writes
inference_shift.png.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from _report import Report, exit_with, parser, save  # noqa: E402

from jscale import accounting, allocation, laws, plots  # noqa: E402
from jscale.laws import chinchilla  # noqa: E402

#: Sardana et al.'s defaults (utils.py, ChinchillaConstants).
SARDANA = chinchilla.ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=0.336, beta=0.283)
PRESET = laws.Preset(
    "chinchilla (Sardana et al. 2024 constants)",
    chinchilla.FAMILY,
    SARDANA,
    "Sardana et al. 2024, nikhilsardana/beyond-chinchilla utils.py",
    "N: parameters; D: tokens; loss: nats/token",
)
TARGET = 1.947


def half_unit(printed: float, digits: int) -> float:
    """Half a unit of the last of ``digits`` significant digits of ``printed``."""
    exponent = int(np.floor(np.log10(abs(printed))))
    return 0.5 * 10.0 ** (exponent - digits + 1)


def check_sig(report, quantity, printed, ours, digits, fmt=".4g"):
    """``printed`` as the README prints it (``digits`` significant digits)."""
    report.check(quantity, printed, ours, atol=half_unit(printed, digits), fmt=fmt)


def device_usd(flops, hardware, precision, mfu, price):
    """Dollars for ``flops`` at ``mfu`` of the device's peak: jscale accounting."""
    hours = accounting.flops_to_device_hours(flops, hardware, precision, mfu)
    return float(accounting.cost_usd(hours, price))


def main(argv=None) -> int:
    args = parser(__doc__).parse_args(argv)
    report = Report("inference_shift")

    # ------------------------------------------------------ model_calculator
    report.section(
        "model_calculator.py and compute_optimal.py (README)",
        "Sardana et al. 2024 (arXiv:2401.00448), repository README. jscale: "
        "chinchilla.loss and allocation.inference_target_optimal (least lifetime "
        "FLOPs 6ND + 2N D_inf subject to L(N, D) = 1.947).",
    )
    check_sig(
        report,
        "loss of 70B on 1T tokens",
        TARGET,
        float(chinchilla.loss(SARDANA, 70e9, 1e12)),
        4,
        fmt=".5f",
    )
    t_inf = 2e12
    opt = allocation.inference_target_optimal(chinchilla.loss, SARDANA, TARGET, t_inf)
    chin = allocation.inference_target_optimal(chinchilla.loss, SARDANA, TARGET, 0.0)
    check_sig(report, "parameters", 2.418e10, float(opt.n_params), 4)
    check_sig(report, "training tokens", 2.657e12, float(opt.n_tokens), 4)
    lifetime_chin = float(chin.compute_flops + 2.0 * chin.n_params * t_inf)
    pct = {
        "parameters, % of Chinchilla-style": (70.96, opt.n_params / chin.n_params),
        "tokens, % of Chinchilla-style": (146.77, opt.n_tokens / chin.n_tokens),
        "lifetime FLOPs, % of Chinchilla-style": (
            95.22,
            opt.lifetime_flops / lifetime_chin,
        ),
    }
    for quantity, (printed, ratio) in pct.items():
        report.check(quantity, printed, 100 * float(ratio), atol=0.005, fmt=".2f")
    report.note(
        "The README calls the last figure the model's 'cost'; compute_optimal.py "
        "computes it as lifetime FLOPs, 6ND + 2N x 2e12, of the two models. The "
        "Chinchilla-style model is the training-compute-optimal one for the same "
        "loss (jscale: the same solver with no inference demand)."
    )

    # ------------------------------------------------------------ cost_optimal
    cost_kw = dict(
        train_hardware="a100-80gb",
        train_price=1.40,
        train_mfu=0.5,
        inference_hardware="a100-40gb",
        inference_precision="int8",
        inference_price=0.60,
        prefill_mfu=0.4,
        decode_mfu=0.2,
    )
    t_in, t_out = 1e10 * 1000, 1e10 * 250
    cheap = allocation.inference_cost_optimal(
        chinchilla.loss, SARDANA, TARGET, t_in, t_out, **cost_kw
    )
    chin_usd = device_usd(chin.compute_flops, "a100-80gb", "bf16", 0.5, 1.40)
    for tokens, mfu in ((t_in, 0.4), (t_out, 0.2)):
        flops = 2.0 * float(chin.n_params) * tokens
        chin_usd += device_usd(flops, "a100-40gb", "int8", mfu, 0.60)
    report.section(
        "cost_optimal.py (README): A100-80GB training, A100-40GB INT8 inference",
        "1e10 requests x (1000 input + 250 output) tokens; $1.40/h and $0.60/h; MFU "
        "0.5 training, 0.4 prefill, 0.2 decode. jscale: "
        "allocation.inference_cost_optimal, peaks from jscale.accounting "
        "(A100 BF16 312 TFLOP/s, INT8 624 TOPS, as theirs).",
    )
    check_sig(report, "parameters", 2.053e10, float(cheap.n_params), 4)
    check_sig(report, "training tokens", 3.302e12, float(cheap.n_tokens), 4)
    pct = {
        "parameters, % of Chinchilla-style": (60.23, cheap.n_params / chin.n_params),
        "tokens, % of Chinchilla-style": (182.41, cheap.n_tokens / chin.n_tokens),
        "cost, % of Chinchilla-style": (88.76, cheap.cost_usd / chin_usd),
    }
    for quantity, (printed, ratio) in pct.items():
        report.check(quantity, printed, 100 * float(ratio), atol=0.005, fmt=".2f")

    # --------------------------------------------------------- cost_calculator
    n30 = 30e9
    ends = np.array([1e20, 1e28])
    line = allocation.chinchilla_optimal(SARDANA, ends)
    log_n = np.log(np.asarray(line.n_params))
    slope = (log_n[1] - log_n[0]) / np.log(ends[1] / ends[0])
    c30 = float(ends[0] * np.exp((np.log(n30) - log_n[0]) / slope))
    style = allocation.chinchilla_optimal(SARDANA, c30)
    d30 = float(style.n_tokens)
    reqs, t_in30, t_out30 = 1e9, 500.0, 100.0
    train_usd = device_usd(6.0 * n30 * d30, "h100-sxm", "bf16", 0.5, 2.00)
    infer_usd = device_usd(2.0 * n30 * reqs * t_in30, "a100-40gb", "int8", 0.5, 1.10)
    infer_usd += device_usd(2.0 * n30 * reqs * t_out30, "a100-40gb", "int8", 0.01, 1.10)
    report.section(
        "cost_calculator.py (README): a 30B Chinchilla-style model",
        "H100 BF16 training at MFU 0.5; 1e9 requests x (500 input + 100 output) "
        "tokens on A100-40GB INT8 at MFU 0.5 (prefill) and 0.01 (decode), their "
        "defaults. jscale: the Chinchilla-optimal tokens for 30B from "
        "allocation.chinchilla_optimal, dollars from jscale.accounting.",
    )
    check_sig(report, "training tokens", 1.556e12, d30, 4)
    report.check("loss", 1.958253360475841, float(style.loss), rtol=1e-12, fmt=".15f")
    check_sig(report, "training FLOPs", 2.801e23, 6.0 * n30 * d30, 4)
    check_sig(report, "training cost ($)", 3.146e5, train_usd, 4)
    lifetime = 6.0 * n30 * d30 + 2.0 * n30 * reqs * (t_in30 + t_out30)
    check_sig(report, "lifetime FLOPs", 3.161e23, lifetime, 4)
    check_sig(report, "lifetime cost ($)", 6.378e5, train_usd + infer_usd, 4)
    report.note(
        "The README's command passes --train_gpu_cost 1.50 and --inference_gpu_cost "
        "0.60, but cost_calculator.py (commit ac313a9) calls cost_per_flop without "
        "them, so its printed dollars are at the script's default prices: $2.00/h "
        "for the H100 and $1.10/h for the A100-40GB. jscale reproduces them at those "
        f"prices; at $1.50 and $0.60 they would be ${train_usd * 0.75:.4g} and "
        f"${train_usd * 0.75 + infer_usd * 0.60 / 1.10:.4g}."
    )

    if args.plot:
        report.flush()
        fig = plots.inference_shift(PRESET, 1e24, np.logspace(9, 14, 41))
        ax = fig.axes[0]
        ax.set_title(
            "1e24 lifetime FLOPs, Sardana et al. 2024's Chinchilla constants",
            fontsize=9,
        )
        save(fig, args.plot, "inference_shift.png")
    return report.finish()


if __name__ == "__main__":
    exit_with(main())
