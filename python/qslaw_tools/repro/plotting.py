"""The reproduction's figure: two horizontal bar panels (held-out VQA
accuracy, text perplexity), one bar per setting, value labels, optional
error bars."""


def bar_panels(path, labels, colors, panels, title):
    """panels: [(panel title, values, errors or None, log x-axis)]."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot)")
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(11, 0.5 + 0.45 * len(labels)))
    for i, (ax, (name, values, errors, log)) in enumerate(zip(axes, panels)):
        ax.barh(range(len(values)), values, xerr=errors, color=colors)
        ax.set_yticks(range(len(values)))
        ax.set_yticklabels(labels if i == 0 else [""] * len(values), fontsize=7)
        ax.invert_yaxis()
        if log:
            ax.set_xscale("log")
        else:
            ax.set_xlim(min(values) * 0.95, None)
        ax.set_title(name, fontsize=9)
        for k, v in enumerate(values):
            ax.text(v, k, f" {v:.3f}", va="center", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")
