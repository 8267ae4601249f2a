"""Charts of benchmark results and comparisons (PNG, through matplotlib when it is installed)."""

import numpy as np


def pyplot():
    """matplotlib's pyplot on the Agg backend, or None (with a warning) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from logging import getLogger

        getLogger().warning(
            "matplotlib is not installed: no chart written (pip install matplotlib)"
        )
        return None
    return plt


def draw(ax, rows, title):
    """Bars of hit@1 and ndcg@5 per row; error bars where a row has its ``ci95``."""
    x = np.arange(len(rows))
    width = 0.4
    for j, metric in enumerate(("hit@1", "ndcg@5")):
        values = np.array([r["metrics"].get(metric, np.nan) for r in rows])
        errors = None
        if all("ci95" in r for r in rows):
            low = values - np.array([r["ci95"][metric][0] for r in rows])
            high = np.array([r["ci95"][metric][1] for r in rows]) - values
            errors = [low, high]
        bars = ax.bar(x + j * width, values, width, yerr=errors, capsize=3, label=metric)
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=6)
    ax.set_xticks(x + width / 2, [r["model"] for r in rows], rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(f"{title}; bars: 95 % bootstrap intervals", fontsize=9)
    ax.legend()


def comparison_chart(comparison, path, title):
    """Each row's hit@1 and ndcg@5 with its 95 % bootstrap interval, in a PNG."""
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(comparison["rows"])), 4.5))
    draw(ax, comparison["rows"], f"{title} ({comparison['n_users']} users)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def benchmark_chart(groups, paired, path):
    """One panel per (dataset, protocol) of a benchmark run: its rows, with the intervals of
    their paired comparison where there is one."""
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(
        1,
        len(groups),
        figsize=(max(6, 1.3 * max(map(len, groups.values()))) * len(groups), 4.5),
        squeeze=False,
    )
    for ax, ((dataset, protocol), rows) in zip(axes[0], sorted(groups.items())):
        result = paired.get(f"{dataset} ({protocol})")
        shown = result["rows"] if result else rows
        draw(ax, shown, f"{dataset}, {protocol}, {rows[0]['n_test_users']} test users")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
