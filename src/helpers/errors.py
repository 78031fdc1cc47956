"""Exception types a user can act on. The CLI prints their message without a traceback.

A message is bounded (`MAX_MESSAGE` characters): it may quote data (a header, a value, a database's
own error), and a 20 MB line quoted whole made an 84 MB error, a 105 MB manifest and a notebook of
210 MB. What is cut is said, with its length.
"""

from __future__ import annotations

#: The longest message an error keeps; the rest is replaced by a note of how much was cut.
MAX_MESSAGE = 4000
#: The longest piece of data (a value, a column name) a message quotes.
MAX_QUOTE = 200


def bounded(text: object, limit: int = MAX_MESSAGE) -> str:
    """`text` cut to `limit` characters, saying how many were left out."""
    text = str(text)
    if len(text) <= limit:
        return text
    note = f" ... [{len(text) - limit:,} more characters not shown]"
    return text[: max(limit - len(note), 0)] + note


def quote(value: object, limit: int = MAX_QUOTE) -> str:
    """repr() of a value for a message, cut to `limit` characters (with its full length)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(str(value)):,} characters)"


class ScvError(Exception):
    """Base class: an error whose message tells the user what to fix (bounded in length)."""

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(bounded(message), *args)


class ConfigError(ScvError):
    """A parameter file is missing, malformed or inconsistent."""


class SourceError(ScvError):
    """A source cannot be read or does not match its declaration in sources.yaml."""


class StageError(ScvError):
    """A stage notebook failed; the message names the notebook, the cell and the error."""


class AccountingError(ScvError):
    """Rows read != rows staged + rows rejected for a source: something would be lost."""
