#!/usr/bin/python3
"""Draws the figures of `remoe analyze` from its JSON files (run with Debian's /usr/bin/python3,
which sees python3-matplotlib).

    /usr/bin/python3 experiments/analyze/plot.py OUT OUT/stages.json [OUT/domains.json] [OUT/allocation.json]
        [OUT/load_balance.json] [OUT/stability.json]

Per run it writes the file named by the run's "png" field: stages_<run>.png (sparsity with the
target band and running mean, lambda on a log scale, LM loss and L_reg against steps, the stage
boundaries marked), domains_<run>.png (one heat map per MoE layer of the fraction of each domain's
routed pairs per expert, and the entropy / active experts per domain), allocation_<run>.png (mean
active experts per token id against its train-shard count, with decile means), load_balance_<run>.png
(a layers x experts heat map of each expert's share of the layer's routed pairs, the per-layer
sparsity against the target, max/mean and CV per layer) and load_balance.png (max/mean and CV per
layer, every run), stability.png (flip rate and changed rows between consecutive checkpoints against
the step, every run on one figure). Every number drawn
is computed by remoe and stored in the JSON; this file only draws.
"""
import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)


def mark_stages(ax, run):
    if run.get("stage1_end") is not None:
        ax.axvline(run["stage1_end"], color="tab:orange", linestyle="--", linewidth=1, label="stage I → II")
    if run.get("stage3_start") is not None:
        ax.axvline(run["stage3_start"], color="tab:green", linestyle="--", linewidth=1, label="stage III (settled)")


def plot_stages(run, out):
    c = run["curves"]
    steps = c["step"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 7), sharex=True)
    t, band = run["target"], run.get("band", 0.01)
    ax = axes[0][0]
    ax.axhspan(t - band, t + band, color="tab:green", alpha=0.25, label=f"target {t:.4f} ± {band:g}")
    ax.plot(steps, c["sparsity"], color="tab:red", linewidth=1, label="sparsity (logged rows)")
    mark_stages(ax, run)
    ax.set_ylabel("sparsity")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="lower right")
    ax = axes[0][1]  # zoom on the target band
    ax.axhspan(-band, band, color="tab:green", alpha=0.25, label=f"± {band:g}")
    ax.plot(steps, [v - t for v in c["sparsity"]], color="tab:red", linewidth=0.8, label="sparsity − target")
    ax.plot(steps, [v - t for v in c["running_mean"]], color="black", linewidth=1,
            label=f"running mean − target ({run.get('window_rows', 1)} rows)")
    mark_stages(ax, run)
    ax.set_ylim(-5 * band, 5 * band)
    ax.set_ylabel("sparsity − target (zoom)")
    ax.legend(fontsize=7, loc="lower right")
    ax = axes[0][2]
    lam = [(s, v) for s, v in zip(steps, c["lambda"]) if v > 0]
    if lam:
        ax.plot([s for s, _ in lam], [v for _, v in lam], color="tab:purple", linewidth=1)
        ax.set_yscale("log")
    mark_stages(ax, run)
    ax.set_ylabel("λ (log scale)")
    ax = axes[1][0]
    ax.plot(steps, c["lm_loss"], color="tab:blue", linewidth=1)
    mark_stages(ax, run)
    ax.set_ylabel("LM loss (last step of the row)")
    ax.set_xlabel("step")
    ax = axes[1][1]
    reg = [(s, v) for s, v in zip(steps, c["router_term"]) if v > 0]
    if reg:
        ax.plot([s for s, _ in reg], [v for _, v in reg], color="tab:brown", linewidth=1)
        ax.set_yscale("log")
    mark_stages(ax, run)
    ax.set_ylabel("L_reg (row mean, log scale)")
    ax.set_xlabel("step")
    ax = axes[1][2]
    ax.axis("off")
    settle = run.get("stage3_start")
    s3 = run.get("stage3_sparsity")
    lines = [f"target 1 − k/E = {t:.4f}",
             f"rows every {run['interval']} steps; running mean over {run['window_rows']} row(s)",
             "stage I → II at step " + ("–" if run.get("stage1_end") is None else str(run["stage1_end"])),
             "stage III from step " + ("– (not settled)" if settle is None else
                                       f"{settle} ({100 * run['settling_fraction']:.1f}% of {run['steps']} steps)")]
    if s3:
        lines.append(f"stage-III sparsity {s3['mean']:.4f} ± {s3['std']:.4f} ({s3['n']} rows)")
    ax.text(0.0, 0.9, "\n".join(lines), va="top", fontsize=9, transform=ax.transAxes)
    handles, labels = axes[0][2].get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize=8, loc="lower left")
    fig.suptitle(f"{run['run']}: E={run['num_experts']}, k={run['topk']}, G={run['granularity']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / run["png"], dpi=100)
    plt.close(fig)


def plot_domains(run, out):
    layers = run["layers"]
    panels = layers + 1
    cols = min(3, panels)
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    domains = run["domains"]
    for l in range(layers):
        ax = axes[l // cols][l % cols]
        im = ax.imshow(run["fractions"][l], aspect="auto", cmap="viridis", vmin=0)
        ax.set_yticks(range(len(domains)))
        ax.set_yticklabels(domains, fontsize=7)
        ax.set_xlabel("expert", fontsize=8)
        ax.set_title(f"layer {l}: fraction of each domain's pairs", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.046)
    ax = axes[layers // cols][layers % cols]
    xs = range(len(domains))
    ax.bar([x - 0.2 for x in xs], run["mean_entropy_bits"], width=0.4, color="tab:blue", label="entropy (bits, mean over layers)")
    ax.axhline(run["max_entropy_bits"], color="tab:blue", linestyle=":", linewidth=1, label="uniform (log2 E)")
    ax2 = ax.twinx()
    ax2.bar([x + 0.2 for x in xs], run["active_experts"], width=0.4, color="tab:red", label="active experts / token")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(domains, fontsize=7, rotation=30)
    ax.set_ylabel("entropy (bits)", fontsize=8)
    ax2.set_ylabel("active experts / token", fontsize=8)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.set_ylim(0, 1.45 * max([run["max_entropy_bits"]] + run["mean_entropy_bits"]))
    ax2.set_ylim(0, 1.45 * max(run["active_experts"] + [1e-9]))
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left", ncol=2)
    for k in range(panels, rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.suptitle(f"{run['key']} ({run['router']}, step {run['step']}): routing per domain on held-out text", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / run["png"], dpi=110)
    plt.close(fig)


def plot_allocation(run, out):
    p = run["points"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [max(c, 1) for c in p["train_count"]]
    ax.scatter(xs, p["active"], s=4, alpha=0.3, color="tab:red", label="token ids")
    if run["bins"]:
        ax.plot([max(b["median_train_count"], 1) for b in run["bins"]], [b["active"] for b in run["bins"]],
                marker="o", color="black", label="decile means (by train count)")
    ax.set_xscale("log")
    ax.set_xlabel("count in the training shard (log)")
    ax.set_ylabel("mean active experts per token (over layers)")
    rho = run.get("spearman")
    ax.set_title(f"{run['key']} ({run['router']}, step {run['step']}): Spearman ρ = " + ("–" if rho is None else f"{rho:.3f}") +
                 f", {run['tokens']} ids with ≥ {run['min_count']} held-out occurrences", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / run["png"], dpi=110)
    plt.close(fig)


def plot_load_balance(run, out):
    layers, experts = run["layers"], run["experts"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), gridspec_kw={"width_ratios": [2, 1, 1]})
    ax = axes[0]
    im = ax.imshow(run["load"], aspect="auto", cmap="viridis", vmin=0)
    ax.set_xlabel("expert")
    ax.set_ylabel("MoE layer")
    ax.set_yticks(range(layers))
    ax.set_xticks(range(0, experts, 1 if experts <= 16 else experts // 8))
    ax.set_title(f"share of each layer's routed pairs (uniform = 1/{experts} = {1 / experts:.3f})", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax = axes[1]
    ax.barh(range(layers), run["sparsity"], color="tab:red")
    for y, v in enumerate(run["sparsity"]):
        ax.text(0.02, y, f"{v:.3f}", va="center", fontsize=8, color="white")
    ax.axvline(run["target_sparsity"], color="black", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_yticks(range(layers))
    ax.invert_yaxis()
    ax.set_xlabel("sparsity 1 − pairs / (T·E)")
    ax.set_title(f"sparsity per layer (dashed: target 1 − k/E = {run['target_sparsity']:.3f})", fontsize=9)
    ax = axes[2]
    mom = [v if v is not None else float("nan") for v in run["max_over_mean"]]
    cv = [v if v is not None else float("nan") for v in run["cv"]]
    ys = list(range(layers))
    ax.barh([y - 0.2 for y in ys], mom, height=0.4, color="tab:blue", label="max / mean")
    ax.barh([y + 0.2 for y in ys], cv, height=0.4, color="tab:orange", label="CV")
    ax.axvline(1, color="tab:blue", linestyle=":", linewidth=1)
    ax.set_yticks(ys)
    ax.invert_yaxis()
    ax.set_xlabel("imbalance (balanced: max/mean 1, CV 0)")
    ax.set_title("pairs per expert: max / mean and CV", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{run['key']} ({run['router']}, step {run['step']}, {run['tokens']} held-out tokens): load per expert",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out / run["png"], dpi=110)
    plt.close(fig)


def plot_load_balance_all(data, out):
    runs = [r for r in data["runs"] if "png" in r]
    if not runs:
        return
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for r in runs:
        xs = list(range(r["layers"]))
        name = r.get("label", r["key"])
        axes[0].plot(xs, [v if v is not None else float("nan") for v in r["max_over_mean"]], marker="o", label=name)
        axes[1].plot(xs, [v if v is not None else float("nan") for v in r["cv"]], marker="o", label=name)
        axes[2].plot(xs, r["sparsity"], marker="o", label=name)
    axes[0].set_ylabel("max / mean pairs per expert")
    axes[1].set_ylabel("CV of pairs per expert")
    axes[2].set_ylabel("sparsity")
    for ax in axes:
        ax.set_xlabel("MoE layer")
        ax.set_xticks(range(max(r["layers"] for r in runs)))
        ax.legend(fontsize=7)
    fig.suptitle("load balance per layer (final checkpoints, held-out text)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / data["png"], dpi=110)
    plt.close(fig)


def plot_stability_all(data, out):
    runs = [r for r in data["runs"] if "error" not in r]
    if not runs:
        return
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    styles = {"topk": "--", "relu": "-"}
    # One colour per E, one line style per router; the seeds of a point share both, and the legend
    # names each point once.
    colours = {e: f"C{i}" for i, e in enumerate(sorted({r["experts"] for r in runs}))}
    named = set()
    for r in runs:
        p = r["pairs"]
        label = r.get("label", r["key"])
        name = f"{label} ({r['router']}, E={r['experts']})"
        style = dict(linestyle=styles.get(r["router"], ":"), color=colours[r["experts"]], marker="o", markersize=2.5,
                     linewidth=1.2, label=None if name in named else name)
        named.add(name)
        axes[0].plot(p["to"], p["flip_rate"], **style)
        axes[1].plot(p["to"], p["changed_fraction"], **style)
    axes[0].set_ylabel("flip rate Σ|M_i − M_{i−1}| / (L·T·E)")
    axes[1].set_ylabel("(layer, token) rows whose experts changed")
    positive = all(v > 0 for r in runs for v in r["pairs"]["flip_rate"])
    for ax in axes:
        ax.set_xlabel("step of the later checkpoint")
        if positive:  # a zero flip rate (identical routings) would vanish on a log scale
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    seeds = "; one line per seed" if len(named) < len(runs) else ""
    fig.suptitle(f"routing stability between consecutive checkpoints ({runs[0]['tokens']} held-out tokens per run{seeds})",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out / data["png"], dpi=110)
    plt.close(fig)


DRAW = {"stages": plot_stages, "domains": plot_domains, "allocation": plot_allocation,
        "load_balance": plot_load_balance, "stability": None}
DRAW_ALL = {"load_balance": plot_load_balance_all, "stability": plot_stability_all}


def main(argv):
    out = Path(argv[1])
    for file in argv[2:]:
        data = json.loads(Path(file).read_text())
        draw = DRAW[data["analysis"]]
        band = data.get("options", {}).get("band")
        for run in data["runs"]:
            if draw is None or "png" not in run:  # not applicable, or an error: nothing to draw
                continue
            if band is not None:
                run["band"] = band
            draw(run, out)
        if data["analysis"] in DRAW_ALL:  # one figure comparing the runs
            DRAW_ALL[data["analysis"]](data, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
