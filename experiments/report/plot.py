#!/usr/bin/python3
"""Draws the plots of `remoe report` from its report.json (run with Debian's /usr/bin/python3,
which sees python3-matplotlib).

    /usr/bin/python3 experiments/report/plot.py OUT/report.json OUT

Per sweep S it writes S_loss.png (held-out loss per point with error bars, ours beside the
paper's; ReMoE - TopK per point), S_curves.png (train and held-out loss against steps, one line
per run) and, when the sweep has ReMoE runs, S_stages.png (sparsity and lambda against steps:
the three stages). Every number drawn is in report.json (points, pairs, curves); the statistics
are computed by remoe itself, this file only draws.
"""
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

# One colour per router (models/router_registry names), so that routers stay apart in one panel.
ROUTER_STYLE = {"dense": ("dense", "tab:gray"), "topk": ("TopK", "tab:blue"), "relu": ("ReMoE", "tab:red"),
                "hash": ("hash", "tab:olive"), "lory": ("lory", "tab:brown"),
                "sparsemixer": ("sparsemixer", "tab:green"), "expert_choice": ("expert_choice", "tab:orange")}
PAPER_NAME = {"dense": "Dense", "topk": "MoE", "relu": "ReMoE"}


def series(sweep, router, field, on_grid):
    """(x positions, values, stds) of one router's points over the sweep's rows: the grid's points
    (drawn as a line) or the extra ones such as dense or compute-matched (markers only)."""
    rows = sweep["rows"]
    xs, ys, es = [], [], []
    for p in sweep["points"]:
        if p["router"] != router or p[field] is None or (field == "mean" and p["n"] == 0):
            continue
        if (p["label"] != p["row"]) != on_grid:
            continue
        xs.append(rows.index(p["row"]))
        ys.append(p[field])
        es.append(p["std"] if field == "mean" else 0.0)
    return xs, ys, es


def panels_of(sweep):
    """The loss plot's panels: ours always; the paper's and ReMoE - TopK only where the sweep has them
    (a sweep off the paper's grids, such as the routers comparison, has neither)."""
    panels = ["ours"]
    if any(p["paper"] is not None for p in sweep["points"]):
        panels.append("paper")
    if any(p["n"] > 0 for p in sweep["pairs"]):
        panels.append("diff")
    return panels


def draw_points(sweep, ax, drawn):
    """Each router's points, ours and (where ax has a "paper" panel) the paper's; returns nothing,
    records what it drew in drawn."""
    for router in sweep["routers"]:
        name, color = ROUTER_STYLE.get(router, (router, None))
        for on_grid in (True, False):
            style = "-" if on_grid else "none"
            xs, ys, es = series(sweep, router, "mean", on_grid)
            if xs:
                ax["ours"].errorbar(xs, ys, yerr=es, marker="o", capsize=3, linestyle=style, color=color,
                                    label=name if on_grid or router not in drawn["ours"] else None)
                drawn["ours"].setdefault(router, []).extend(ys)
            xs, ys, _ = series(sweep, router, "paper", on_grid)
            if xs and "paper" in ax:
                ax["paper"].plot(xs, ys, marker="s", linestyle="--" if on_grid else "none", color=color,
                                 label=PAPER_NAME.get(router, router) if router not in drawn["paper"] else None)
                drawn["paper"].setdefault(router, []).extend(ys)


def draw_pairs(sweep, ax, drawn):
    """ReMoE - TopK per row: grid pairs as a line in row order; a compute-matched pair (its row is the
    TopK label) stands alone."""
    rows = sweep["rows"]
    pairs = sorted((p for p in sweep["pairs"] if p["n"] > 0 and p["row"] != p.get("topk_label")),
                   key=lambda p: rows.index(p["row"]))
    for p in sweep["pairs"]:
        if p["n"] > 0 and p["row"] == p.get("topk_label"):
            ax.errorbar([rows.index(p["row"])], [p["mean"]], yerr=[p["std"]], marker="D", capsize=3,
                        linestyle="none", color="tab:purple")
    if pairs:
        xs = [rows.index(p["row"]) for p in pairs]
        ax.errorbar(xs, [p["mean"] for p in pairs], yerr=[p["std"] for p in pairs], marker="o", capsize=3,
                    color="tab:purple", label="ours (mean ± std over seeds)")
        drawn["diff"]["ours"] = [p["mean"] for p in pairs]
        paper = [(x, p["paper"]) for x, p in zip(xs, pairs) if p["paper"] is not None]
        if paper:
            ax.plot([x for x, _ in paper], [v for _, v in paper], marker="s", linestyle="--", color="tab:green",
                    label="paper")
            drawn["diff"]["paper"] = [v for _, v in paper]
    ax.axhline(0.0, color="black", linewidth=0.8)


def plot_loss(sweep, out):
    rows = sweep["rows"]
    panels = panels_of(sweep)
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels) + (2 if len(panels) == 1 else 0), 4.2),
                             squeeze=False)
    ax = dict(zip(panels, axes[0]))
    drawn = {"ours": {}, "paper": {}, "diff": {}}
    draw_points(sweep, ax, drawn)
    if "diff" in ax:
        draw_pairs(sweep, ax["diff"], drawn)
        ax["diff"].set_ylabel("loss difference (< 0: ReMoE better)")
    titles = {"ours": f"ours ({sweep.get('scale') or '?'} scale)", "paper": "paper (182M-978M, 30B tokens)",
              "diff": "ReMoE − TopK"}
    for panel, a in ax.items():
        a.set_xticks(range(len(rows)))
        a.set_xticklabels(rows, rotation=30, ha="right")
        a.set_title(titles[panel])
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=8)
    ax["ours"].set_ylabel("held-out loss")
    fig.suptitle(f"{sweep['sweep']}: held-out loss (experiment {sweep.get('experiment', '?')})")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return drawn


def label_colors(curves):
    labels = sorted({c["label"] for c in curves})
    cmap = plt.get_cmap("tab20")
    return {label: cmap(i % 20) for i, label in enumerate(labels)}


def plot_curves(sweep, out):
    curves = sweep["curves"]
    colors = label_colors(curves)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    seen = set()
    for c in curves:
        label = c["label"] if c["label"] not in seen else None
        seen.add(c["label"])
        for ax, key in zip(axes, ("train_loss", "valid_loss")):
            if c[key]:
                steps, values = zip(*c[key])
                ax.plot(steps, values, color=colors[c["label"]], linewidth=0.9, alpha=0.8,
                        marker="o" if key == "valid_loss" else None, markersize=3, label=label if ax is axes[0] else None)
    axes[0].set_title("training loss (mean over each log interval)")
    axes[1].set_title("held-out loss")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_stages(sweep, out):
    curves = [c for c in sweep["curves"] if c["router"] == "relu" and c["sparsity"]]
    if not curves:
        return False
    colors = label_colors(curves)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    seen = set()
    for c in curves:
        label = c["label"] if c["label"] not in seen else None
        seen.add(c["label"])
        steps, values = zip(*c["sparsity"])
        axes[0].plot(steps, values, color=colors[c["label"]], linewidth=0.9, label=label)
        steps, values = zip(*c["lambda"])
        axes[1].plot(steps, values, color=colors[c["label"]], linewidth=0.9)
    axes[0].set_title("ReMoE sparsity (target 1 − k/E)")
    axes[1].set_title("λ (L1 coefficient)")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def main(report_json, out_dir):
    """Draws every plot; returns {file name: what was drawn} (the tests check it)."""
    report = json.loads(Path(report_json).read_text())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for sweep in report["sweeps"]:
        name = sweep["sweep"]
        written[f"{name}_loss.png"] = plot_loss(sweep, out / f"{name}_loss.png")
        plot_curves(sweep, out / f"{name}_curves.png")
        written[f"{name}_curves.png"] = len(sweep["curves"])
        if plot_stages(sweep, out / f"{name}_stages.png"):
            written[f"{name}_stages.png"] = sum(c["router"] == "relu" for c in sweep["curves"])
    for file in written:
        print(f"plot: wrote {out / file}")
    return written


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plot.py REPORT_JSON OUT_DIR")
    main(sys.argv[1], sys.argv[2])
