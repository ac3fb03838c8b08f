"""A GPU-hours plan checked against published training runs (LLaMA and Llama 2).

Reproduces the compute accounting of two published runs with jscale.accounting
(C = 6 N D; A100 BF16 dense peak 312 TFLOP/s; 400 W board power):

- LLaMA (Touvron et al. 2023a, "LLaMA: Open and Efficient Foundation Language
  Models", arXiv:2302.13971): the 65.2B model trained on 1.4T tokens (Table 2) at
  "around 380 tokens/sec/GPU on 2048 A100 GPU with 80GB of RAM", so that "training
  over our dataset containing 1.4T tokens takes approximately 21 days" (Sec. 2.4).
  From that throughput jscale derives the MFU, then the GPU-hours of Table 15
  (1,022,362) and the energy at 400 W and PUE 1.1 (449 MWh; 36, 59 and 233 MWh for
  the 7B, 13B and 33B models);
- Llama 2 (Touvron et al. 2023b, "Llama 2: Open Foundation and Fine-Tuned Chat
  Models", arXiv:2307.09288): 1,720,320 A100-80GB GPU-hours for the 70B model on
  2.0T tokens (Table 2; Table 1 for the tokens). jscale computes the implied MFU
  of each model, and plans the 70B run from LLaMA-65B's measured throughput.

Then the same budget is planned compute-optimally (jscale.planner.plan: Hoffmann
et al. 2022 and Besiroglu et al. 2024, with a 90% interval from Besiroglu's
bootstrap covariance), with GPU-hours and energy for each plan.

Run:
    python examples/gpu_hours_plan.py [--smoke] [--plot DIR]

``--smoke`` draws 500 laws for the intervals instead of 4000; ``--plot DIR`` writes
gpu_hours_plan.png.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from _report import Report, exit_with, parser, save  # noqa: E402

from jscale import accounting, planner, plots  # noqa: E402

GPU = "a100-80gb"
#: LLaMA (arXiv:2302.13971), Table 2 (parameters, tokens) and Table 15 (GPU-hours,
#: MWh at 400 W and PUE 1.1, printed truncated to whole MWh).
LLAMA = {
    "7B": (6.7e9, 1.0e12, 82_432, 36),
    "13B": (13.0e9, 1.0e12, 135_168, 59),
    "33B": (32.5e9, 1.4e12, 530_432, 233),
    "65B": (65.2e9, 1.4e12, 1_022_362, 449),
}
LLAMA_TOKENS_PER_GPU_S = 380.0  # Sec. 2.4: "around 380 tokens/sec/GPU"
LLAMA_GPUS, LLAMA_DAYS = 2048, 21.0  # Sec. 2.4: "approximately 21 days"
LLAMA_PUE = 1.1  # Table 15's caption
#: Llama 2 (arXiv:2307.09288), Table 2: GPU-hours (A100-80GB); every model saw
#: 2.0T tokens (Table 1). Sizes are the model names (exact counts are not printed).
LLAMA2 = {
    "7B": (7e9, 184_320),
    "13B": (13e9, 368_640),
    "34B": (34e9, 1_038_336),
    "70B": (70e9, 1_720_320),
}
LLAMA2_TOKENS = 2.0e12


def main(argv=None) -> int:
    args = parser(__doc__).parse_args(argv)
    report = Report("gpu_hours_plan")
    peak = accounting.get_hardware(GPU).peak_flops["bf16"]

    # --------------------------------------------------------------- LLaMA
    n65, d65, hours65, mwh65 = LLAMA["65B"]
    mfu65 = float(
        accounting.training_flops(n65, LLAMA_TOKENS_PER_GPU_S) / peak
    )  # 6 N FLOPs per token x tokens/s / peak
    flops65 = accounting.training_flops(n65, d65)
    hours = float(accounting.flops_to_device_hours(flops65, GPU, "bf16", mfu65))
    report.section(
        "LLaMA-65B: GPU-hours and wall-clock from the published throughput",
        "Touvron et al. 2023a (arXiv:2302.13971): 380 tokens/s/GPU (Sec. 2.4) gives "
        f"MFU = 6 N x 380 / 312e12 = {mfu65:.4f} (jscale.accounting.training_flops "
        "over the A100 BF16 peak); jscale.accounting.flops_to_device_hours then "
        "gives the GPU-hours of 6 N D.",
    )
    # "Around 380" tokens/s carries 2-3 digits: 1%.
    report.check(
        "GPU-hours, 65.2B on 1.4T (Table 15)", hours65, hours, rtol=0.01, fmt=",.0f"
    )
    fleet = accounting.budget(GPU, LLAMA_GPUS, days=LLAMA_DAYS, mfu=mfu65)
    tokens_21d = float(fleet.compute_flops) / float(accounting.training_flops(n65, 1.0))
    # "Approximately 21 days": +-0.5 day is 2.4% of the tokens.
    report.check(
        "tokens in 21 days on 2048 GPUs", d65, tokens_21d, rtol=0.024, fmt=".4g"
    )
    for name, (_, _, gpu_hours, mwh) in LLAMA.items():
        joules = accounting.energy_joules(gpu_hours, GPU, pue=LLAMA_PUE)
        # Table 15 truncates to whole MWh (449.8 prints as 449): one unit.
        report.check(
            f"energy, LLaMA-{name} (MWh)",
            mwh,
            float(accounting.joules_to_kwh(joules)) / 1e3,
            atol=1.0,
            fmt=".1f",
        )
    for name, (n, d, gpu_hours, _) in LLAMA.items():
        implied = float(accounting.training_flops(n, d) / (gpu_hours * 3600.0 * peak))
        report.info(
            f"implied MFU, LLaMA-{name}",
            "-",
            implied,
            fmt=".3f",
            why="6ND / (GPU-hours x peak)",
        )

    # ------------------------------------------------------------- Llama 2
    report.section(
        "Llama 2: implied MFU, and the 70B run planned from LLaMA-65B's throughput",
        "Touvron et al. 2023b (arXiv:2307.09288), Table 2. The paper reports "
        "GPU-hours but no MFU; the plan uses LLaMA-65B's MFU on the same "
        "A100-80GB hardware.",
    )
    implied2 = {}
    for name, (n, gpu_hours) in LLAMA2.items():
        implied2[name] = float(
            accounting.training_flops(n, LLAMA2_TOKENS) / (gpu_hours * 3600.0 * peak)
        )
        report.info(
            f"implied MFU, Llama 2 {name}",
            "-",
            implied2[name],
            fmt=".3f",
            why="6ND / (GPU-hours x peak)",
        )
    n70, hours70 = LLAMA2["70B"]
    planned = float(
        accounting.flops_to_device_hours(
            accounting.training_flops(n70, LLAMA2_TOKENS), GPU, "bf16", mfu65
        )
    )
    # Llama 2 doubled the context to 4k tokens (attention FLOPs beyond 6ND grow with
    # it), uses grouped-query attention and has 69B rather than 70B parameters:
    # a plan from another run's throughput is good to 15%, not to the GPU-hour.
    report.check(
        "GPU-hours, 70B on 2.0T at LLaMA-65B's MFU",
        hours70,
        planned,
        rtol=0.15,
        fmt=",.0f",
    )

    # ------------------------------------------------------- the plan itself
    budget = float(accounting.training_flops(n70, LLAMA2_TOKENS))
    draws = 500 if args.smoke else 4000
    plan = planner.plan(
        compute_flops=budget, hardware=GPU, mfu=implied2["70B"], num_draws=draws
    )
    report.section(
        f"A compute-optimal plan for Llama 2 70B's budget ({budget:.3g} FLOPs)",
        f"jscale.planner.plan on {GPU} at the run's implied MFU "
        f"({implied2['70B']:.3f}); 90% intervals from {draws} draws of Besiroglu et "
        "al.'s bootstrap covariance. Llama 2 70B itself trained 70B parameters on "
        f"2.0T tokens ({LLAMA2_TOKENS / n70:.1f} tokens per parameter).",
    )
    for row in plan["plans"]:
        interval = row["n_params_interval"]
        n_text = f"{row['n_params'] / 1e9:.1f}B"
        if interval:
            n_text += f" [{interval[0] / 1e9:.0f}-{interval[1] / 1e9:.0f}]"
        report.info(f"{row['law']}: N*", "-", n_text, why="plan")
        report.info(
            f"{row['law']}: D*", "-", f"{row['n_tokens'] / 1e12:.2f}T", why="plan"
        )
        report.info(
            f"{row['law']}: D*/N*", "-", f"{row['tokens_per_param']:.1f}", why="plan"
        )
        report.info(
            f"{row['law']}: energy",
            "-",
            f"{row['energy_kwh'] / 1e3:,.0f} MWh",
            why="plan, 400 W, PUE 1",
        )
        # The planner's accounting must return the run's own GPU-hours for its
        # budget at its implied MFU (a round trip through jscale.accounting).
        report.check(
            f"{row['law']}: GPU-hours", hours70, row["gpu_hours"], rtol=1e-9, fmt=",.0f"
        )
    besiroglu = plan["plans"][1]
    lo, hi = besiroglu["n_params_interval"]
    report.note(
        f"Under Besiroglu et al.'s law the budget is best spent on "
        f"{besiroglu['n_params'] / 1e9:.0f}B parameters (90%: {lo / 1e9:.0f}-"
        f"{hi / 1e9:.0f}B); Llama 2 70B is "
        + ("inside" if lo <= n70 <= hi else "outside")
        + " that interval. The smaller models, also trained on 2.0T tokens, are far "
        "past their training-compute optimum on purpose: the LLaMA paper (Sec. 1) "
        "notes that Hoffmann et al.'s objective 'disregards the inference budget' "
        "(see examples/inference_shift.py)."
    )

    if args.plot:
        report.flush()
        fig = run_figure()
        save(fig, args.plot, "gpu_hours_plan.png")
    return report.finish()


def run_figure():
    """Besiroglu et al.'s optimum with its 90% band, and where the runs sit."""
    key = jax.random.key(0)
    draws = planner.besiroglu_draws(key, 1000)
    fig = plots.optimum_vs_compute(
        "chinchilla-besiroglu2024", np.logspace(21, 25, 33), draws=draws
    )
    runs = (
        ("LLaMA", "s", "C3", [(n, d) for n, d, _, _ in LLAMA.values()]),
        ("Llama 2", "o", "C1", [(n, LLAMA2_TOKENS) for n, _ in LLAMA2.values()]),
    )
    for label, marker, color, points in runs:
        pts = np.array(points)
        c = 6.0 * pts[:, 0] * pts[:, 1]
        for ax, col in zip(fig.axes, (0, 1), strict=True):
            ax.plot(c, pts[:, col], marker, color=color, ms=5, mfc="none", label=label)
            ax.legend(fontsize=7, frameon=False)
    fig.suptitle(
        "Published runs (markers) against Besiroglu et al. 2024's optimum (90% band)",
        fontsize=9,
    )
    return fig


if __name__ == "__main__":
    exit_with(main())
