"""Sentiment of Spanish texts (social mentions, survey comments), offline.

Two scorers, chosen by ``metrics.sentiment.method`` in params/default.yaml:

- ``model``: the Naive Bayes model shipped inside the PyPI package ``sentiment-analysis-spanish``
  (n-grams 1-3 trained on ~800k Spanish reviews; nothing is downloaded at run time). It returns the
  probability p that a text is positive; the polarity is 2p - 1.
- ``lexicon``: a small documented Spanish opinion lexicon (word stems and emoji, below) with negation
  ("no", "nunca", "sin", "ni" flip the next three words). The polarity is
  (positive hits - negative hits) / (hits + 1), in (-1, 1).
- ``auto``: the model when the package is installed, else the lexicon, with a warning.

The default is the lexicon: on the sample company's mentions it labels ~93 % of the mentions like the
truth, the model ~60 % (it calls most neutral questions negative); 04_metrics shows both. The
lexicon is plain data in this module: extend it with the words your customers use.

Either way a text is labelled positive / negative / neutral by the thresholds on polarity in the
parameters. The model is loaded once per process (~8 s: it unpickles a 30 MB vectoriser).
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from functools import lru_cache
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

#: Opinion words in customer texts, accents removed: stems match the start of a word, words match whole.
POSITIVE_STEMS: tuple[str, ...] = (
    "encant",
    "genial",
    "perfect",
    "excelent",
    "estupend",
    "fantastic",
    "maravill",
    "recomiend",
    "recomendabl",
    "mejor",
    "buen",
    "amabl",
    "rapid",
    "gracias",
    "agradec",
    "felic",
    "feliz",
    "content",
    "satisfech",
    "increibl",
    "guap",
    "bonit",
    "comod",
    "facil",
    "eficaz",
    "profesional",
    "atent",
    "chul",
    "ideal",
    "funciona",
    "repetir",
    "repeti",
    "acert",
    "impecabl",
    "fenomenal",
    "gust",
    "volver",
    "vuelvo",
)
POSITIVE_WORDS: frozenset[str] = frozenset({"top", "util", "utiles", "bien", "ok", "guay"})
NEGATIVE_STEMS: tuple[str, ...] = (
    "pesim",
    "horribl",
    "terribl",
    "fatal",
    "decepci",
    "defectu",
    "queja",
    "quej",
    "reclam",
    "nadie",
    "tarde",
    "tarda",
    "tardo",
    "retras",
    "esperando",
    "estafa",
    "verguenz",
    "lament",
    "peor",
    "lent",
    "problem",
    "error",
    "averi",
    "cobr",
    "reembols",
    "devolv",
    "devoluc",
    "cancel",
    "enfad",
    "hart",
    "indign",
    "desastr",
    "abus",
    "engan",
    "sucio",
    "incomplet",
    "danad",
    "falta",
    "ignor",
    "inutil",
    "molest",
    "rompi",
)
NEGATIVE_WORDS: frozenset[str] = frozenset(
    {
        "mal",
        "mala",
        "malo",
        "malas",
        "malos",
        "roto",
        "rota",
        "rotos",
        "rotas",
        "caro",
        "cara",
        "caros",
        "caras",
        "timo",
        "nunca",
        "jamas",
    }
)
POSITIVE_EMOJI = "👍😍❤😊🙂👏🥰😀😃😄🤩💯⭐✨🙌"
NEGATIVE_EMOJI = "😡😠👎😞😤😢😭🤬💩😒🙁☹😩"
NEGATORS = frozenset({"no", "nunca", "sin", "ni", "jamas", "tampoco"})
NEGATION_SPAN = 3  # words after a negator whose polarity flips


class SentimentSettings(BaseModel):
    """`metrics.sentiment` in params/default.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["auto", "model", "lexicon"] = "lexicon"
    positive_above: float = Field(0.25, ge=-1, le=1)  # polarity > this -> positive
    negative_below: float = Field(-0.25, ge=-1, le=1)  # polarity < this -> negative


def _fold(text: str) -> str:
    """Lower case without accents (ñ kept as n): 'Pésima atención' -> 'pesima atencion'."""
    nfkd = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in nfkd if not unicodedata.combining(c))


_TOKEN = re.compile(r"[a-z0-9]+")
_POS = tuple(_fold(s) for s in POSITIVE_STEMS)
_NEG = tuple(_fold(s) for s in NEGATIVE_STEMS)


def _matches(token: str, stems: tuple[str, ...], words: frozenset[str]) -> bool:
    return token in words or token.startswith(stems)


@lru_cache(maxsize=100_000)
def lexicon_polarity(text: str) -> float:
    """Polarity in (-1, 1) from the lexicon: (positive - negative hits) / (hits + 1), with negation."""
    if not text:
        return 0.0
    pos = sum(text.count(e) for e in POSITIVE_EMOJI)
    neg = sum(text.count(e) for e in NEGATIVE_EMOJI)
    flip_left = 0
    for tok in _TOKEN.findall(_fold(text)):
        if tok in NEGATORS:
            flip_left = NEGATION_SPAN
            neg += tok in NEGATIVE_WORDS  # "nunca" also says something bad on its own
            continue
        p, n = _matches(tok, _POS, POSITIVE_WORDS), _matches(tok, _NEG, NEGATIVE_WORDS)
        if flip_left:
            p, n = n, p
            flip_left -= 1
        pos += p
        neg += n
    hits = pos + neg
    return (pos - neg) / (hits + 1)


@lru_cache(maxsize=1)
def _model():
    """The vectoriser and classifier of sentiment-analysis-spanish (raises ImportError if absent)."""
    from sentiment_analysis_spanish.sentiment_analysis import SentimentAnalysisSpanish

    with warnings.catch_warnings():
        # pickled with scikit-learn 0.23; CountVectorizer + MultinomialNB load and predict fine in 1.x
        warnings.simplefilter("ignore")
        analyser = SentimentAnalysisSpanish()
    return analyser.vectorizer, analyser.classifier


def model_available() -> bool:
    """True when the sentiment-analysis-spanish package can be imported."""
    try:
        import sentiment_analysis_spanish  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_method(settings: SentimentSettings) -> str:
    """The scorer actually used: `auto` becomes `model` when installed, else `lexicon` (with a warning)."""
    if settings.method != "auto":
        return settings.method
    if model_available():
        return "model"
    warnings.warn(
        "sentiment-analysis-spanish is not installed: scoring sentiment with the built-in lexicon",
        stacklevel=2,
    )
    return "lexicon"


def polarity(texts: pd.Series, settings: SentimentSettings | None = None) -> pd.Series:
    """Polarity in [-1, 1] of each text (missing text -> NaN)."""
    settings = settings or SentimentSettings()
    method = resolve_method(settings)
    values = texts.astype("string")
    present = values.notna().to_numpy()
    out = np.full(len(values), np.nan)
    if present.any():
        kept = values[present].astype(str)
        if method == "model":
            vectoriser, classifier = _model()
            proba = classifier.predict_proba(vectoriser.transform(kept.tolist()))[:, 1]
            out[present] = 2 * proba - 1
        else:
            uniq, inverse = np.unique(kept.to_numpy(dtype=object), return_inverse=True)
            out[present] = np.array([lexicon_polarity(t) for t in uniq])[inverse]
    return pd.Series(out, index=texts.index, name="polarity")


def label(polarities: pd.Series, settings: SentimentSettings | None = None) -> pd.Series:
    """positive / negative / neutral from polarity thresholds (NaN stays missing)."""
    settings = settings or SentimentSettings()
    lab = np.where(
        polarities > settings.positive_above,
        "positive",
        np.where(polarities < settings.negative_below, "negative", "neutral"),
    )
    return pd.Series(lab, index=polarities.index, dtype="string").where(polarities.notna())


def score(texts: pd.Series, settings: SentimentSettings | None = None) -> pd.DataFrame:
    """Polarity and label per text, plus the method that scored it."""
    settings = settings or SentimentSettings()
    method = resolve_method(settings)
    pol = polarity(texts, settings.model_copy(update={"method": method}))
    return pd.DataFrame(
        {"polarity": pol, "sentiment": label(pol, settings), "method": method}, index=texts.index
    )
