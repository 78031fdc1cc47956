"""One look for every chart: the seaborn theme and the standard charts the notebooks share."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

PALETTE = "crest"
ACCENT = "#1f6f8b"


def use_theme() -> None:
    """The product's chart theme (call once at the top of a notebook).

    In a Jupyter kernel it also selects the inline backend: with ``MPLBACKEND=Agg`` in the
    environment (usual on a headless server, e.g. under cron) matplotlib would otherwise draw every
    chart off screen and the executed notebooks, and so the reports, would have none.
    """
    _inline_in_kernel()
    sns.set_theme(context="notebook", style="whitegrid", palette="deep", font_scale=0.95)
    plt.rcParams.update(
        {
            "figure.figsize": (8, 4),
            "figure.dpi": 110,
            "axes.titleweight": "bold",
            "axes.titlesize": 12,
            "savefig.bbox": "tight",
        }
    )


def _inline_in_kernel() -> None:
    import sys

    if "ipykernel" not in sys.modules:
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None and "inline" not in plt.get_backend():
        shell.run_line_magic("matplotlib", "inline")


def barh(
    frame: pd.DataFrame,
    *,
    x: str,
    y: str,
    hue: str | None = None,
    title: str,
    xlabel: str,
    ylabel: str = "",
    ax=None,
):
    """A horizontal bar chart with a title and labelled axes."""
    ax = ax or plt.subplots(figsize=(8, max(2.5, 0.35 * frame[y].nunique() + 1)))[1]
    sns.barplot(frame, x=x, y=y, hue=hue, ax=ax, orient="h", color=None if hue else ACCENT)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return ax


def score_histogram(
    candidates: pd.DataFrame,
    *,
    threshold: float,
    review_band: tuple[float, float],
    weight: str = "match_weight",
    ax=None,
):
    """Distribution of candidate-pair match weights with the threshold and the review band."""
    import numpy as np

    ax = ax or plt.subplots(figsize=(8, 3.5))[1]
    w = candidates[weight].clip(-40, 40)
    sns.histplot(w, bins=80, ax=ax, color=ACCENT)
    ax.set_yscale("log")

    def to_weight(p: float) -> float:
        p = min(max(p, 1e-9), 1 - 1e-9)
        return float(np.log2(p / (1 - p)))

    lo, hi = (to_weight(p) for p in review_band)
    ax.axvspan(lo, hi, color="orange", alpha=0.15, label="review band")
    ax.axvline(to_weight(threshold), color="crimson", lw=1.2, label=f"threshold (p = {threshold})")
    ax.set(
        title="Match weight of every candidate pair",
        xlabel="match weight (bits, log2 odds)",
        ylabel="pairs (log scale)",
    )
    ax.legend()
    return ax


def count_distribution(sizes: pd.Series, *, title: str, xlabel: str, ylabel: str, ax=None):
    """Bar chart of how many items have each size (e.g. records per customer)."""
    ax = ax or plt.subplots(figsize=(8, 3.2))[1]
    counts = sizes.clip(upper=10).value_counts().sort_index()
    labels = [str(i) if i < 10 else "10+" for i in counts.index]
    ax.bar(labels, counts.to_numpy(), color=ACCENT)
    ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return ax


def stacked_share(frame: pd.DataFrame, *, index: str, column: str, title: str, xlabel: str, ax=None):
    """Horizontal 100 % stacked bars: the share of each `column` value within each `index` value."""
    table = pd.crosstab(frame[index], frame[column], normalize="index")
    ax = ax or plt.subplots(figsize=(8, max(2.5, 0.35 * len(table) + 1)))[1]
    table.plot(kind="barh", stacked=True, ax=ax, colormap="tab20", width=0.8)
    ax.set(title=title, xlabel=xlabel, ylabel="")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    return ax


#: Status colours of the quality scorecard, in order from best to worst.
RAG = {"green": "#4c9a5b", "amber": "#f0ad3c", "red": "#d0453f"}


def rag_heatmap(scores: pd.DataFrame, status: pd.DataFrame, *, title: str, xlabel: str, ylabel: str, ax=None):
    """Scores (annotated as %) coloured by their red / amber / green status; blank: nothing scored."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    codes = status.reindex_like(scores).apply(lambda c: c.map({"red": 0.0, "amber": 1.0, "green": 2.0}))
    labels = scores.apply(lambda c: c.map(lambda v: "" if pd.isna(v) else f"{v:.1%}"))
    ax = ax or plt.subplots(figsize=(1.25 * scores.shape[1] + 3, 0.38 * len(scores) + 1.6))[1]
    cmap = ListedColormap([RAG["red"], RAG["amber"], RAG["green"]])
    sns.heatmap(
        codes.astype(float),
        annot=labels,
        fmt="",
        cmap=cmap,
        vmin=-0.5,
        vmax=2.5,
        cbar=False,
        linewidths=1,
        linecolor="white",
        annot_kws={"fontsize": 8},
        ax=ax,
    )
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(False)
    ax.tick_params(axis="x", rotation=0)
    handles = [Patch(color=c, label=s) for s, c in RAG.items()]
    handles.append(Patch(facecolor="white", edgecolor="grey", label="blank: not scored"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return ax


def limit_bars(
    frame: pd.DataFrame,
    *,
    y: str,
    x: str,
    limit: str,
    flag: str,
    title: str,
    xlabel: str,
    ylabel: str = "",
    ax=None,
):
    """Horizontal bars of `x` against a per-row `limit` (a black tick): red where `flag` is set."""
    ax = ax or plt.subplots(figsize=(8, max(2.5, 0.3 * len(frame) + 1)))[1]
    colours = [RAG["red"] if f else RAG["green"] for f in frame[flag]]
    ax.barh(frame[y], frame[x].astype(float), color=colours)
    ax.axvline(0, color="grey", lw=0.8)
    ax.scatter(
        frame[limit], frame[y], marker="|", s=300, color="black", zorder=3, label=limit.replace("_", " ")
    )
    ax.invert_yaxis()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(loc="lower right", fontsize=8)
    return ax


# --------------------------------------------------------------------------------------------------
# Report charts (notebooks/reports/, data from helpers.report_data)
# --------------------------------------------------------------------------------------------------

#: Colours of the relationship trend, from good to bad.
TREND_COLOURS = {
    "advancing": "#4c9a5b",
    "stagnating": "#9aa5ad",
    "regressing": "#d0453f",
    "inactive": "#d9dee2",
}


def label_bars(ax, fmt, *, inside: bool = False, fontsize: int = 8) -> None:
    """Write each bar's value (formatted by `fmt`) at its end, or inside it."""
    for container in ax.containers:
        ax.bar_label(
            container,
            labels=[fmt(v) for v in container.datavalues],
            padding=2,
            fontsize=fontsize,
            label_type="center" if inside else "edge",
            color="white" if inside else "#333333",
        )


def kpi_tiles(
    changes: pd.DataFrame,
    *,
    title: str | None = None,
    ncols: int = 4,
    value: str = "value_text",
    change: str = "change_text",
    label: str = "label",
    good: str = "good",
):
    """Headline KPIs as tiles: label, value and the change against the previous period, coloured green
    when the change is good news, red when bad (column `good`: True / False / None)."""
    n = len(changes)
    nrows = max(1, -(-n // ncols))
    head = 0.35 if title else 0.0
    fig, axes = plt.subplots(nrows, ncols, figsize=(8, 1.0 * nrows + head), squeeze=False)
    fig.subplots_adjust(
        left=0.01,
        right=0.99,
        bottom=0.02,
        top=1 - head / (1.0 * nrows + head) - 0.01,
        wspace=0.06,
        hspace=0.12,
    )
    colours = {True: RAG["green"], False: RAG["red"]}
    for ax, row in zip(
        axes.flat, list(changes.itertuples(index=False)) + [None] * (nrows * ncols - n), strict=True
    ):
        ax.set_axis_off()
        if row is None:
            continue
        r = row._asdict()
        ax.add_patch(plt.Rectangle((0, 0), 1, 1, transform=ax.transAxes, color="#eef3f5", zorder=0))
        ax.text(0.06, 0.80, r[label], transform=ax.transAxes, fontsize=8, color="#5b6770", va="center")
        ax.text(
            0.06,
            0.48,
            r[value],
            transform=ax.transAxes,
            fontsize=16,
            fontweight="bold",
            color=ACCENT,
            va="center",
        )
        ax.text(
            0.06,
            0.16,
            r[change],
            transform=ax.transAxes,
            fontsize=7.5,
            va="center",
            color=colours.get(r.get(good), "#5b6770"),
        )
    if title:
        fig.suptitle(title, fontweight="bold", fontsize=12, x=0.01, y=0.995, ha="left", va="top")
    return fig


def revenue_trend(
    monthly: pd.DataFrame,
    *,
    title: str,
    currency: str = "EUR",
    month: str = "month",
    revenue: str = "revenue",
    customers: str = "buyers",
    ax=None,
):
    """Revenue per month (bars, left axis) and buying customers per month (line, right axis)."""
    ax = ax or plt.subplots(figsize=(8, 2.6))[1]
    x = range(len(monthly))
    ax.bar(x, monthly[revenue] / 1e3, color=ACCENT, alpha=0.85, label=f"revenue (k{currency})")
    ax.set(title=title, xlabel="month", ylabel=f"revenue (thousand {currency})")
    ax.set_xticks(
        list(x),
        [
            pd.Period(m, "M").strftime("%b %y") if i % 3 == 0 or i == len(monthly) - 1 else ""
            for i, m in enumerate(monthly[month].astype(str))
        ],
        fontsize=8,
    )
    right = ax.twinx()
    right.plot(
        list(x), monthly[customers], color="#c44e52", marker="o", ms=3, lw=1.5, label="buying customers"
    )
    right.set_ylabel("buying customers")
    right.set_ylim(0, max(1, float(monthly[customers].max())) * 1.15)
    right.grid(False)
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="lower left", fontsize=8, frameon=True)
    return ax


def interval_plot(
    frame: pd.DataFrame,
    *,
    y: str,
    x: str,
    low: str,
    high: str,
    title: str,
    xlabel: str,
    hue: str | None = None,
    ylabel: str = "",
    percent: bool = False,
    ax=None,
):
    """A point per row with its confidence interval (e.g. uplift per campaign), optionally one colour per
    `hue` value; a grey line at zero. `percent` shows the x axis in percentage points."""
    labels = list(dict.fromkeys(frame[y].astype(str)))
    groups = list(dict.fromkeys(frame[hue])) if hue else [None]
    ax = (
        ax
        or plt.subplots(figsize=(8, max(2.2, 0.42 * len(labels) * (1 + 0.25 * (len(groups) - 1)) + 1.2)))[1]
    )
    palette = sns.color_palette("deep", len(groups))
    step = 0.6 / max(len(groups), 1)
    for k, group in enumerate(groups):
        part = frame if group is None else frame[frame[hue] == group]
        pos = [labels.index(v) + (k - (len(groups) - 1) / 2) * step for v in part[y].astype(str)]
        ax.errorbar(
            part[x],
            pos,
            # an interval that does not contain its estimate (a bootstrap one can) is drawn to the estimate
            xerr=[(part[x] - part[low]).clip(lower=0), (part[high] - part[x]).clip(lower=0)],
            fmt="o",
            capsize=3,
            color=ACCENT if group is None else palette[k],
            label=None if group is None else str(group),
        )
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if percent:
        ax.xaxis.set_major_formatter(lambda v, _: f"{v * 100:+.0f}")
    if hue:
        ax.legend(
            title=hue.replace("_", " "),
            fontsize=8,
            title_fontsize=8,
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            frameon=False,
        )
    return ax


def stacked_bars(
    table: pd.DataFrame,
    *,
    title: str,
    xlabel: str,
    colours: dict | None = None,
    normalize: bool = True,
    ax=None,
):
    """Horizontal stacked bars, one per row of `table` (parts in columns), shares labelled inside."""
    data = table.div(table.sum(axis=1).replace(0, 1), axis=0) if normalize else table
    ax = ax or plt.subplots(figsize=(8, max(2.2, 0.45 * len(data) + 1.3)))[1]
    colour = [(colours or {}).get(c) for c in data.columns]
    data.plot(
        kind="barh",
        stacked=True,
        ax=ax,
        width=0.7,
        color=colour if all(colour) else None,
        colormap=None if all(colour) else "tab20",
    )
    if normalize:
        for container in ax.containers:
            ax.bar_label(
                container,
                labels=[f"{v:.0%}" if v >= 0.07 else "" for v in container.datavalues],
                label_type="center",
                fontsize=7.5,
                color="white",
            )
        ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
        ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set(title=title, xlabel=xlabel, ylabel="")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return ax


def grouped_shares(
    frame: pd.DataFrame, *, category: str, shares: dict[str, str], title: str, xlabel: str, ax=None
):
    """Side-by-side horizontal bars of several shares per category (e.g. each value tier's share of
    customers, of revenue and of CLV), labelled with their percentage."""
    long = frame.melt(
        id_vars=[category], value_vars=list(shares.values()), var_name="measure", value_name="share"
    )
    long["measure"] = long["measure"].map({v: k for k, v in shares.items()})
    ax = ax or plt.subplots(figsize=(8, max(2.4, 0.8 * frame[category].nunique() + 1.2)))[1]
    sns.barplot(long, x="share", y=category, hue="measure", orient="h", ax=ax, palette="crest")
    label_bars(ax, lambda v: f"{v:.0%}")
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.set_xlim(0, min(1.0, float(long["share"].max()) * 1.15 + 0.02))
    ax.set(title=title, xlabel=xlabel, ylabel=category.replace("_", " "))
    ax.legend(loc="lower right", fontsize=8, title=None)
    return ax


def funnel(
    frame: pd.DataFrame, *, step: str = "step", count: str = "count", title: str, xlabel: str, ax=None
):
    """The steps of a funnel as horizontal bars on a log scale, each labelled with its count."""
    ax = ax or plt.subplots(figsize=(8, 0.42 * len(frame) + 1.2))[1]
    ax.barh(frame[step], frame[count], color=ACCENT)
    ax.set_xscale("log")
    label_bars(ax, lambda v: f"{v:,.0f}")
    ax.set_xlim(right=float(frame[count].max()) * 4)
    ax.invert_yaxis()
    ax.set(title=title, xlabel=xlabel, ylabel="")
    return ax


def period_lines(
    frame: pd.DataFrame,
    *,
    x: str = "period",
    y: str,
    hue: str | None = None,
    title: str,
    ylabel: str,
    percent: bool = False,
    ax=None,
):
    """A value per period (one line per `hue`), markers on every period so a single period still shows."""
    ax = ax or plt.subplots(figsize=(8, 3.2))[1]
    sns.lineplot(frame, x=x, y=y, hue=hue, marker="o", ax=ax, sort=True)
    ax.set(title=title, xlabel="period", ylabel=ylabel)
    if percent:
        ax.yaxis.set_major_formatter(lambda v, _: f"{v:.1%}")
    if hue:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False, title=None)
    return ax


def value_risk(
    frame: pd.DataFrame,
    *,
    x: str = "clv_12m",
    y: str = "churn_risk",
    hue: str = "relationship_trend",
    title: str,
    xlabel: str,
    ylabel: str = "churn risk",
    colours: dict | None = None,
    ax=None,
):
    """One point per customer: expected value (log scale) against churn risk, coloured by `hue`
    (default the relationship trend); the top right holds the valuable customers most likely to leave."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax = ax or plt.subplots(figsize=(8, 3.4))[1]
    data = frame[frame[x] > 0] if (frame[x] > 0).any() else frame
    colours = colours or (TREND_COLOURS if hue == "relationship_trend" else None)
    order = [h for h in (colours or {}) if h in set(data[hue])] or sorted(
        data[hue].dropna().astype(str).unique()
    )
    sns.scatterplot(
        data.assign(**{hue: data[hue].astype(str)}),
        x=x,
        y=y,
        hue=hue,
        hue_order=order,
        ax=ax,
        s=22,
        alpha=0.85,
        palette=colours or "deep",
        edgecolor="white",
        linewidth=0.3,
    )
    if (data[x] > 0).all() and len(data):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(
            FuncFormatter(lambda v, _: f"{v / 1e3:,.0f}k" if v >= 1e3 else f"{v:,.0f}")
        )
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(
        title=hue.replace("_", " "),
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        fontsize=8,
        title_fontsize=8,
        frameon=False,
    )
    return ax


def interval_errors(estimate, low, high) -> list:
    """Error-bar lengths [below, above] for an estimate and its interval, never negative (an interval
    from a different method, e.g. a bootstrap, may not contain the point estimate exactly)."""
    import numpy as np

    est, lo, hi = (np.asarray(v, dtype=float) for v in (estimate, low, high))
    return [np.clip(est - lo, 0, None), np.clip(hi - est, 0, None)]
