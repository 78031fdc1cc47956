"""Expressions in params/sources.yaml: derived columns and row filters, parsed, never `eval`-ed.

A small SQL-like grammar that an analyst who knows a spreadsheet or SQL can read:

    amount:      Quantity * UnitPrice
    full_name:   concat_ws(' ', Nombre, Apellido1, Apellido2)
    row_filter:  Estado <> 'Anulado' and "Tipo doc" in ('F', 'R')

- columns: a bare name (letters, digits, `_`, and `.` for nested JSON keys), or any name in double
  quotes or backticks ("Unit Price", `Fecha alta`);
- literals: numbers (12, 0.21) and text in single quotes ('Total', with '' for a quote);
- arithmetic `+ - * /` and unary minus on numbers, `||` joins text; parentheses;
- comparisons `= == != <> < <= > >=`, `is [not] null`, `[not] in (...)`, `[not] like 'pat%'`, and
  `and`, `or`, `not`;
- functions: abs, round(x[, digits]), coalesce, nullif, concat, concat_ws(sep, ...), lower, upper,
  trim, replace(text, old, new), left(text, n), right(text, n).

Raw values are text until an operation needs a number: then they are read with the source's
`decimal` and `thousands` marks (helpers.standardise.number). A value that is not a number where one
is needed makes that row's result *invalid* and names the value, so ingest quarantines the row with
a reason instead of guessing. An empty operand gives an empty result, as in SQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["ExpressionError", "Expression", "parse", "Evaluated"]


class ExpressionError(ValueError):
    """The expression cannot be parsed, or names a column the data does not have."""


# --------------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>'(?:[^']|'')*')
  | (?P<quoted>"(?:[^"]|"")+"|`[^`]+`)
  | (?P<name>[A-Za-z_\u00c0-\uffff][A-Za-z0-9_.\u00c0-\uffff]*)
  | (?P<op>\|\||<=|>=|<>|!=|==|[-+*/(),=<>])
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "is", "null", "like", "true", "false"}


@dataclass(frozen=True)
class _Tok:
    kind: str  # number | string | column | name | op | keyword | end
    text: str
    pos: int


def _tokens(source: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:
            raise ExpressionError(f"unexpected character {source[pos]!r} at position {pos + 1} in {source!r}")
        kind = m.lastgroup or ""
        text = m.group()
        if kind == "string":
            out.append(_Tok("string", text[1:-1].replace("''", "'"), pos))
        elif kind == "quoted":
            inner = text[1:-1].replace('""', '"') if text[0] == '"' else text[1:-1]
            out.append(_Tok("column", inner, pos))
        elif kind == "name":
            low = text.lower()
            out.append(_Tok("keyword", low, pos) if low in _KEYWORDS else _Tok("name", text, pos))
        elif kind != "ws":
            out.append(_Tok(kind, text, pos))
        pos = m.end()
    out.append(_Tok("end", "", len(source)))
    return out


# --------------------------------------------------------------------------------------------------
# Syntax tree
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    op: str  # col | num | str | null | bool | neg | arith | concat | cmp | isnull | in | like | and | or | not | call
    args: tuple = ()
    value: object = None


#: name -> (min args, max args or None)
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "abs": (1, 1),
    "round": (1, 2),
    "coalesce": (1, None),
    "nullif": (2, 2),
    "concat": (1, None),
    "concat_ws": (2, None),
    "lower": (1, 1),
    "upper": (1, 1),
    "trim": (1, 1),
    "replace": (3, 3),
    "left": (2, 2),
    "right": (2, 2),
}
_NUMERIC_FUNCTIONS = {"abs", "round"}


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.toks = _tokens(source)
        self.i = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def accept(self, kind: str, text: str | None = None) -> _Tok | None:
        tok = self.peek()
        if tok.kind == kind and (text is None or tok.text == text):
            return self.take()
        return None

    def expect(self, kind: str, text: str) -> _Tok:
        tok = self.accept(kind, text)
        if tok is None:
            got = self.peek()
            shown = "the end" if got.kind == "end" else repr(got.text)
            raise ExpressionError(
                f"expected {text!r} at position {got.pos + 1} in {self.source!r}, found {shown}"
            )
        return tok

    def parse(self) -> _Node:
        if self.peek().kind == "end":
            raise ExpressionError("the expression is empty")
        node = self.or_()
        tok = self.peek()
        if tok.kind != "end":
            raise ExpressionError(
                f"unexpected {tok.text!r} at position {tok.pos + 1} in {self.source!r} "
                '(a missing operator, or a column name with spaces that needs "double quotes"?)'
            )
        return node

    def or_(self) -> _Node:
        node = self.and_()
        while self.accept("keyword", "or"):
            node = _Node("or", (node, self.and_()))
        return node

    def and_(self) -> _Node:
        node = self.not_()
        while self.accept("keyword", "and"):
            node = _Node("and", (node, self.not_()))
        return node

    def not_(self) -> _Node:
        if self.accept("keyword", "not"):
            return _Node("not", (self.not_(),))
        return self.comparison()

    def comparison(self) -> _Node:
        left = self.concat()
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("=", "==", "!=", "<>", "<", "<=", ">", ">="):
            self.take()
            op = {"==": "=", "<>": "!="}.get(tok.text, tok.text)
            return _Node("cmp", (left, self.concat()), op)
        if self.accept("keyword", "is"):
            negate = bool(self.accept("keyword", "not"))
            self.expect("keyword", "null")
            node = _Node("isnull", (left,))
            return _Node("not", (node,)) if negate else node
        negate = False
        if tok.kind == "keyword" and tok.text == "not":
            nxt = self.toks[self.i + 1]
            if nxt.kind == "keyword" and nxt.text in ("in", "like"):
                self.take()
                negate = True
        if self.accept("keyword", "in"):
            self.expect("op", "(")
            items = [self.concat()]
            while self.accept("op", ","):
                items.append(self.concat())
            self.expect("op", ")")
            node = _Node("in", (left, *items))
            return _Node("not", (node,)) if negate else node
        if self.accept("keyword", "like"):
            pattern = self.take()
            if pattern.kind != "string":
                raise ExpressionError(
                    f"`like` needs a quoted pattern such as 'ABC%' at position {pattern.pos + 1} in {self.source!r}"
                )
            node = _Node("like", (left,), pattern.text)
            return _Node("not", (node,)) if negate else node
        return left

    def concat(self) -> _Node:
        node = self.additive()
        while self.accept("op", "||"):
            node = _Node("concat", (node, self.additive()))
        return node

    def additive(self) -> _Node:
        node = self.term()
        while (tok := self.peek()).kind == "op" and tok.text in "+-":
            self.take()
            node = _Node("arith", (node, self.term()), tok.text)
        return node

    def term(self) -> _Node:
        node = self.unary()
        while (tok := self.peek()).kind == "op" and tok.text in "*/":
            self.take()
            node = _Node("arith", (node, self.unary()), tok.text)
        return node

    def unary(self) -> _Node:
        if self.accept("op", "-"):
            return _Node("neg", (self.unary(),))
        if self.accept("op", "+"):
            return self.unary()
        return self.primary()

    def primary(self) -> _Node:
        tok = self.take()
        if tok.kind == "number":
            return _Node("num", value=float(tok.text))
        if tok.kind == "string":
            return _Node("str", value=tok.text)
        if tok.kind == "column":
            return _Node("col", value=tok.text)
        if tok.kind == "keyword" and tok.text == "null":
            return _Node("null")
        if tok.kind == "keyword" and tok.text in ("true", "false"):
            return _Node("bool", value=tok.text == "true")
        if tok.kind == "name":
            if self.accept("op", "("):
                name = tok.text.lower()
                if name not in FUNCTIONS:
                    raise ExpressionError(
                        f"unknown function {tok.text!r} at position {tok.pos + 1} in {self.source!r}; "
                        f"known: {', '.join(sorted(FUNCTIONS))}"
                    )
                args: list[_Node] = []
                if not self.accept("op", ")"):
                    args.append(self.or_())
                    while self.accept("op", ","):
                        args.append(self.or_())
                    self.expect("op", ")")
                low, high = FUNCTIONS[name]
                if len(args) < low or (high is not None and len(args) > high):
                    wanted = (
                        f"{low}" if low == high else f"{low} or more" if high is None else f"{low} to {high}"
                    )
                    raise ExpressionError(
                        f"{name}() takes {wanted} argument(s), got {len(args)} in {self.source!r}"
                    )
                return _Node("call", tuple(args), name)
            return _Node("col", value=tok.text)
        if tok.kind == "op" and tok.text == "(":
            node = self.or_()
            self.expect("op", ")")
            return node
        shown = "the end" if tok.kind == "end" else repr(tok.text)
        raise ExpressionError(f"expected a value at position {tok.pos + 1} in {self.source!r}, found {shown}")


def _columns(node: _Node, out: list[str]) -> list[str]:
    if node.op == "col" and node.value not in out:
        out.append(str(node.value))
    for a in node.args:
        _columns(a, out)
    return out


# --------------------------------------------------------------------------------------------------
# Evaluation: vectors of numbers, text or truth values, with invalid rows tracked
# --------------------------------------------------------------------------------------------------


@dataclass
class _Vec:
    kind: str  # num | text | bool | raw (a column, typed by its use)
    values: np.ndarray  # float64 (NaN = null) | object (None = null) | object bool/None
    bad: np.ndarray  # row could not be evaluated
    bad_value: np.ndarray  # object: the raw value that made it so


@dataclass
class Evaluated:
    """The result of an expression on a frame: values, and the rows it could not evaluate."""

    values: pd.Series  # float64, object text, or object True/False/None
    invalid: pd.Series  # bool: a raw value was not a number where one was needed
    invalid_value: pd.Series  # object: that raw value, for the reject


@dataclass
class Expression:
    """A parsed expression; `columns` are the raw columns it reads."""

    source: str
    tree: _Node = field(repr=False)
    columns: list[str] = field(default_factory=list)

    def evaluate(
        self, frame: pd.DataFrame, *, number: Callable[[pd.Series], tuple[pd.Series, pd.Series]]
    ) -> Evaluated:
        """Evaluate on `frame` (raw columns); `number(series)` reads raw values as numbers and returns
        (float values, invalid mask) - ingest passes the source's decimal and thousands marks."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ExpressionError(
                f"{self.source!r} names column(s) {missing} that the source does not have; "
                f"it has: {sorted(map(str, frame.columns))[:40]}"
            )
        n = len(frame)
        ev = _Evaluator(frame, number, n)
        vec = ev.run(self.tree)
        if vec.kind == "raw":
            vec = ev.text(vec)
        index = frame.index
        values = pd.Series(vec.values, index=index)
        if vec.kind == "num":
            values = values.astype("float64")
        return Evaluated(
            values,
            pd.Series(vec.bad, index=index, dtype=bool),
            pd.Series(vec.bad_value, index=index, dtype=object),
        )

    def result_kind(self) -> str:
        """num | text | bool: what the expression gives (for checks at load time)."""
        return _kind_of(self.tree)


def _kind_of(node: _Node) -> str:
    if node.op in ("num", "neg", "arith"):
        return "num"
    if node.op in ("cmp", "isnull", "in", "like", "and", "or", "not", "bool"):
        return "bool"
    if node.op == "call":
        if node.value in _NUMERIC_FUNCTIONS:
            return "num"
        if node.value in ("coalesce", "nullif"):
            kinds = {_kind_of(a) for a in node.args} - {"raw", "null"}
            return kinds.pop() if len(kinds) == 1 else "text"
        return "text"
    if node.op == "col":
        return "raw"
    if node.op == "null":
        return "null"
    return "text"


def parse(source: str) -> Expression:
    """Parse an expression; ExpressionError with the position of what is wrong."""
    if not isinstance(source, str):
        raise ExpressionError(f"an expression is text, got {source!r}")
    tree = _Parser(source).parse()
    return Expression(source, tree, _columns(tree, []))


def _text_of(x: object) -> str | None:
    if x is None or (isinstance(x, float) and np.isnan(x)) or x is pd.NA or x is pd.NaT:
        return None
    if isinstance(x, float) and x.is_integer():
        t = str(int(x))
    else:
        t = str(x)
    t = t.strip()
    return t or None


class _Evaluator:
    def __init__(self, frame: pd.DataFrame, number, n: int) -> None:
        self.frame = frame
        self.number = number
        self.n = n
        self.no_bad = np.zeros(n, dtype=bool)

    def _empty_bad(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(self.n, dtype=bool), np.full(self.n, None, dtype=object)

    def run(self, node: _Node) -> _Vec:
        return getattr(self, f"_{node.op}")(node)

    # leaves
    def _col(self, node: _Node) -> _Vec:
        values = self.frame[node.value].to_numpy(dtype=object)
        bad, bad_value = self._empty_bad()
        return _Vec("raw", values, bad, bad_value)

    def _num(self, node: _Node) -> _Vec:
        return _Vec("num", np.full(self.n, node.value, dtype=float), *self._empty_bad())

    def _str(self, node: _Node) -> _Vec:
        return _Vec("text", np.full(self.n, node.value, dtype=object), *self._empty_bad())

    def _null(self, node: _Node) -> _Vec:
        return _Vec("null", np.full(self.n, None, dtype=object), *self._empty_bad())

    def _bool(self, node: _Node) -> _Vec:
        return _Vec("bool", np.full(self.n, node.value, dtype=object), *self._empty_bad())

    # conversions
    def num(self, v: _Vec) -> _Vec:
        if v.kind == "num":
            return v
        if v.kind == "null":
            return _Vec("num", np.full(self.n, np.nan), v.bad, v.bad_value)
        if v.kind == "bool":
            vals = np.array([np.nan if x is None else float(x) for x in v.values], dtype=float)
            return _Vec("num", vals, v.bad, v.bad_value)
        values, invalid = self.number(pd.Series(v.values, dtype=object))
        invalid = np.asarray(invalid, dtype=bool)
        bad = v.bad | invalid
        bad_value = v.bad_value.copy()
        newly = invalid & ~v.bad
        bad_value[newly] = v.values[newly]
        return _Vec("num", np.asarray(values, dtype=float), bad, bad_value)

    def text(self, v: _Vec) -> _Vec:
        if v.kind == "text":
            return v
        if v.kind == "num":
            vals = np.array([None if np.isnan(x) else _text_of(float(x)) for x in v.values], dtype=object)
        else:
            vals = np.array([_text_of(x) for x in v.values], dtype=object)
        return _Vec("text", vals, v.bad, v.bad_value)

    def truth(self, v: _Vec) -> _Vec:
        if v.kind == "bool":
            return v
        raise ExpressionError("and/or/not need conditions (comparisons), not values")

    @staticmethod
    def _merge(*vs: _Vec) -> tuple[np.ndarray, np.ndarray]:
        bad = np.zeros(len(vs[0].bad), dtype=bool)
        bad_value = np.full(len(vs[0].bad), None, dtype=object)
        for v in vs:
            newly = v.bad & ~bad
            bad_value[newly] = v.bad_value[newly]
            bad |= v.bad
        return bad, bad_value

    # operators
    def _neg(self, node: _Node) -> _Vec:
        v = self.num(self.run(node.args[0]))
        return _Vec("num", -v.values, v.bad, v.bad_value)

    def _arith(self, node: _Node) -> _Vec:
        a, b = (self.num(self.run(x)) for x in node.args)
        bad, bad_value = self._merge(a, b)
        with np.errstate(divide="ignore", invalid="ignore"):
            if node.value == "+":
                out = a.values + b.values
            elif node.value == "-":
                out = a.values - b.values
            elif node.value == "*":
                out = a.values * b.values
            else:
                zero = (b.values == 0) & ~np.isnan(a.values)
                out = a.values / np.where(b.values == 0, np.nan, b.values)
                newly = zero & ~bad
                bad_value[newly] = "division by zero"
                bad = bad | zero
        return _Vec("num", out, bad, bad_value)

    def _concat(self, node: _Node) -> _Vec:
        a, b = (self.text(self.run(x)) for x in node.args)
        bad, bad_value = self._merge(a, b)
        out = np.array(
            [None if x is None or y is None else x + y for x, y in zip(a.values, b.values, strict=True)],
            dtype=object,
        )
        return _Vec("text", out, bad, bad_value)

    def _pair(self, a: _Vec, b: _Vec) -> tuple[_Vec, _Vec]:
        """Compare numbers as numbers (a raw column beside a number is read as one), else text."""
        if "num" in (a.kind, b.kind):
            return self.num(a), self.num(b)
        if a.kind == "bool" or b.kind == "bool":
            return a, b
        return self.text(a), self.text(b)

    def _cmp(self, node: _Node) -> _Vec:
        a, b = self._pair(*(self.run(x) for x in node.args))
        bad, bad_value = self._merge(a, b)
        out = np.full(self.n, None, dtype=object)
        ops = {
            "=": lambda x, y: x == y,
            "!=": lambda x, y: x != y,
            "<": lambda x, y: x < y,
            "<=": lambda x, y: x <= y,
            ">": lambda x, y: x > y,
            ">=": lambda x, y: x >= y,
        }
        f = ops[str(node.value)]
        for i, (x, y) in enumerate(zip(a.values, b.values, strict=True)):
            if (
                x is None
                or y is None
                or (isinstance(x, float) and np.isnan(x))
                or (isinstance(y, float) and np.isnan(y))
            ):
                continue
            try:
                out[i] = bool(f(x, y))
            except TypeError:
                out[i] = None
        return _Vec("bool", out, bad, bad_value)

    def _isnull(self, node: _Node) -> _Vec:
        v = self.run(node.args[0])
        v = self.num(v) if v.kind == "num" else self.text(v) if v.kind != "bool" else v
        if v.kind == "num":
            out = np.isnan(v.values)
        else:
            out = np.array([x is None for x in v.values], dtype=bool)
        return _Vec("bool", out.astype(object), v.bad, v.bad_value)

    def _in(self, node: _Node) -> _Vec:
        left, *items = (self.run(x) for x in node.args)
        numeric = left.kind == "num" or any(i.kind == "num" for i in items)
        conv = self.num if numeric else self.text
        left = conv(left)
        items = [conv(i) for i in items]
        bad, bad_value = self._merge(left, *items)
        out = np.full(self.n, None, dtype=object)
        for i in range(self.n):
            x = left.values[i]
            if x is None or (numeric and np.isnan(x)):
                continue
            out[i] = any(x == it.values[i] for it in items)
        return _Vec("bool", out, bad, bad_value)

    def _like(self, node: _Node) -> _Vec:
        v = self.text(self.run(node.args[0]))
        pattern = "".join(
            ".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in str(node.value)
        )
        rx = re.compile(pattern, re.DOTALL)
        out = np.array([None if x is None else rx.fullmatch(x) is not None for x in v.values], dtype=object)
        return _Vec("bool", out, v.bad, v.bad_value)

    def _and(self, node: _Node) -> _Vec:
        a, b = (self.truth(self.run(x)) for x in node.args)
        bad, bad_value = self._merge(a, b)
        out = np.full(self.n, None, dtype=object)
        for i, (x, y) in enumerate(zip(a.values, b.values, strict=True)):
            out[i] = False if x is False or y is False else (None if x is None or y is None else True)
        return _Vec("bool", out, bad, bad_value)

    def _or(self, node: _Node) -> _Vec:
        a, b = (self.truth(self.run(x)) for x in node.args)
        bad, bad_value = self._merge(a, b)
        out = np.full(self.n, None, dtype=object)
        for i, (x, y) in enumerate(zip(a.values, b.values, strict=True)):
            out[i] = True if x is True or y is True else (None if x is None or y is None else False)
        return _Vec("bool", out, bad, bad_value)

    def _not(self, node: _Node) -> _Vec:
        v = self.truth(self.run(node.args[0]))
        out = np.array([None if x is None else not x for x in v.values], dtype=object)
        return _Vec("bool", out, v.bad, v.bad_value)

    def _call(self, node: _Node) -> _Vec:
        name = str(node.value)
        args = [self.run(a) for a in node.args]
        if name == "abs":
            v = self.num(args[0])
            return _Vec("num", np.abs(v.values), v.bad, v.bad_value)
        if name == "round":
            v = self.num(args[0])
            digits = 0
            if len(args) > 1:
                d = self.num(args[1]).values
                digits = int(d[0]) if len(d) and not np.isnan(d[0]) else 0
            return _Vec("num", np.round(v.values, digits), v.bad, v.bad_value)
        if name in ("coalesce", "nullif"):
            kinds = {a.kind for a in args} - {"raw", "null"}
            conv = self.num if kinds == {"num"} else self.text
            args = [conv(a) for a in args]
            bad, bad_value = self._merge(*args)
            if name == "coalesce":
                out = args[0].values.copy()
                for a in args[1:]:
                    empty = np.isnan(out) if conv is self.num else np.array([x is None for x in out])
                    out[empty] = a.values[empty]
            else:
                out = args[0].values.copy()
                same = out == args[1].values
                out[same] = np.nan if conv is self.num else None
            return _Vec("num" if conv is self.num else "text", out, bad, bad_value)
        texts = [self.text(a) for a in args]
        bad, bad_value = self._merge(*texts)
        vals = [t.values for t in texts]
        if name == "concat":
            out = ["".join(x for x in row if x is not None) or None for row in zip(*vals, strict=True)]
        elif name == "concat_ws":
            out = [
                None if row[0] is None else (row[0].join(x for x in row[1:] if x is not None) or None)
                for row in zip(*vals, strict=True)
            ]
        elif name in ("lower", "upper", "trim"):
            fn = {"lower": str.lower, "upper": str.upper, "trim": str.strip}[name]
            out = [None if x is None else (fn(x) or None) for x in vals[0]]
        elif name == "replace":
            out = [
                None if x is None else x.replace(a or "", b or "")
                for x, a, b in zip(vals[0], vals[1], vals[2], strict=True)
            ]
        else:  # left / right
            counts = self.num(args[1]).values
            out = []
            for x, k in zip(vals[0], counts, strict=True):
                if x is None or np.isnan(k):
                    out.append(None)
                else:
                    k = max(int(k), 0)
                    out.append((x[:k] if name == "left" else x[len(x) - k :] if k else "") or None)
        return _Vec("text", np.array(out, dtype=object), bad, bad_value)
