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
