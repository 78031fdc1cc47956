"""One look for every chart: the seaborn theme and the standard charts the notebooks share."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

PALETTE = "crest"
ACCENT = "#1f6f8b"


def use_theme() -> None:
    """The product's chart theme (call once at the top of a notebook)."""
    sns.set_theme(context="notebook", style="whitegrid", palette="deep", font_scale=0.95)
    plt.rcParams.update({"figure.figsize": (8, 4), "figure.dpi": 110, "axes.titleweight": "bold",
                         "axes.titlesize": 12, "savefig.bbox": "tight"})


def barh(frame: pd.DataFrame, *, x: str, y: str, hue: str | None = None, title: str, xlabel: str,
         ylabel: str = "", ax=None):
    """A horizontal bar chart with a title and labelled axes."""
    ax = ax or plt.subplots(figsize=(8, max(2.5, 0.35 * frame[y].nunique() + 1)))[1]
    sns.barplot(frame, x=x, y=y, hue=hue, ax=ax, orient="h", color=None if hue else ACCENT)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return ax


def score_histogram(candidates: pd.DataFrame, *, threshold: float, review_band: tuple[float, float],
                    weight: str = "match_weight", ax=None):
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
    ax.set(title="Match weight of every candidate pair", xlabel="match weight (bits, log2 odds)",
           ylabel="pairs (log scale)")
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
    sns.heatmap(codes.astype(float), annot=labels, fmt="", cmap=cmap, vmin=-0.5, vmax=2.5, cbar=False,
                linewidths=1, linecolor="white", annot_kws={"fontsize": 8}, ax=ax)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(False)
    ax.tick_params(axis="x", rotation=0)
    handles = [Patch(color=c, label=s) for s, c in RAG.items()]
    handles.append(Patch(facecolor="white", edgecolor="grey", label="blank: not scored"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    return ax


def limit_bars(frame: pd.DataFrame, *, y: str, x: str, limit: str, flag: str, title: str, xlabel: str,
               ylabel: str = "", ax=None):
    """Horizontal bars of `x` against a per-row `limit` (a black tick): red where `flag` is set."""
    ax = ax or plt.subplots(figsize=(8, max(2.5, 0.3 * len(frame) + 1)))[1]
    colours = [RAG["red"] if f else RAG["green"] for f in frame[flag]]
    ax.barh(frame[y], frame[x].astype(float), color=colours)
    ax.scatter(frame[limit], frame[y], marker="|", s=300, color="black", zorder=3,
               label=limit.replace("_", " "))
    ax.invert_yaxis()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(loc="lower right", fontsize=8)
    return ax
