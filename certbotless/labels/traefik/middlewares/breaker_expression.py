"""circuitBreaker's expression, read as Traefik reads it (oxy's cbreaker over vulcand/predicate,
which parses it as a Go expression) and compiled to the JSON the edge's njs evaluates
(edge/njs/breaker.js).

The grammar Traefik accepts: comparisons `Metric(args) op literal` joined by `&&` and `||` (Go's
precedence: `&&` first), with parentheses; `op` one of > >= < <= == !=. The metrics and the
literal each wants (Go's types: an int where a float is wanted, or the reverse, is refused):

- `NetworkErrorRatio()`: 502 and 504 answers over all, in the last 10 s; a float (`> 0.5`).
- `ResponseCodeRatio(from, to, dividedByFrom, dividedByTo)` (ints, `to` excluded): answers in
  [from, to) over those in [dividedByFrom, dividedByTo) in the last 10 s (0 when none); a float.
- `LatencyAtQuantileMS(q)` (q a float: `50.0`): the latency at that percentile, in whole
  milliseconds, of about the last minute's answers; an int (`> 100`).
- `RequestThreshold()`: the answers of the last 10 s; an int.

The program (JSON): `when`, a tree of ["or", a, b], ["and", a, b], ["net", op, c],
["codes", op, c, i, j] (i, j index `ranges`, each [from, to): the edge counts answers in each),
["total", op, c], ["latency", op, c, q, k, m] (k, m index `limits`: the edge counts answers at
most that many milliseconds; k for c, m for c - 1).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

_TOKEN_RE = re.compile(r"""
    \s*(?:
      (?P<float>(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)
    | (?P<int>0[0-7]*|[1-9][0-9]*)(?![0-9A-Za-z_.])
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op>&&|\|\||>=|<=|==|!=|[<>(),])
    )""", re.VERBOSE)  # fmt: skip
COMPARISONS = (">", ">=", "<", "<=", "==", "!=")
# Each metric: its arguments' Go types and the type of the literal it is compared with.
_METRICS = {
    "NetworkErrorRatio": ((), "float"),
    "ResponseCodeRatio": (("int", "int", "int", "int"), "float"),
    "LatencyAtQuantileMS": (("float",), "int"),
    "RequestThreshold": ((), "int"),
}
_LARGEST = 2**53  # exact in the edge's JavaScript numbers


class ExpressionError(ValueError):
    """Traefik refuses the expression (or certbotless cannot read it as Traefik): why."""


@dataclass
class _Literal:
    kind: str  # "int" or "float"
    value: float


@dataclass
class _Metric:
    name: str
    args: list[float]


@dataclass
class _Compiler:
    """The expression's tokens, read left to right, and what the edge must count for it."""

    tokens: list[tuple[str, str]]
    at: int = 0
    ranges: list[tuple[int, int]] = field(default_factory=list)
    limits: list[int] = field(default_factory=list)

    def peek(self) -> str:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else ""

    def take(self) -> tuple[str, str]:
        if self.at >= len(self.tokens):
            raise ExpressionError("it ends too early")
        self.at += 1
        return self.tokens[self.at - 1]

    def expect(self, text: str) -> None:
        _, found = self.take()
        if found != text:
            raise ExpressionError(f"{text!r} expected, not {found!r}")

    def index(self, found: list[int] | list[tuple[int, int]], item: int | tuple[int, int]
              ) -> int:  # fmt: skip
        if item not in found:
            found.append(item)  # type: ignore[arg-type]
        return found.index(item)  # type: ignore[arg-type]


def compile_expression(expression: str) -> str:
    """The program (JSON) for `expression`; ExpressionError says why Traefik would refuse it."""
    compiler = _Compiler(_tokens(expression))
    when = _joined(compiler, 0)
    if compiler.at < len(compiler.tokens):
        raise ExpressionError(f"{compiler.peek()!r} is not expected there")
    if not isinstance(when, list):
        raise ExpressionError("it must be a comparison, such as NetworkErrorRatio() > 0.5")
    program = {"when": when, "ranges": compiler.ranges, "limits": compiler.limits}
    return json.dumps(program, separators=(",", ":"))


def _tokens(expression: str) -> list[tuple[str, str]]:
    tokens, at = [], 0
    while expression[at:].strip():
        match = _TOKEN_RE.match(expression, at)
        if match is None or match.lastgroup is None:
            rest = expression[at:].strip()
            raise ExpressionError(f"{rest[:12]!r} is not part of Traefik's expressions "
                                  "(metrics, decimal numbers, comparisons, && || and "
                                  "parentheses)")  # fmt: skip
        tokens.append((match.lastgroup, match[match.lastgroup]))
        at = match.end()
    if not tokens:
        raise ExpressionError("it is empty (Traefik refuses the middleware)")
    return tokens


_JOINERS = {"||": 1, "&&": 2}


def _joined(compiler: _Compiler, level: int) -> list[object] | _Metric | _Literal:
    """Go's precedence: `||` joins `&&`s, which join comparisons."""
    if level == 2:
        return _comparison(compiler)
    left = _joined(compiler, level + 1)
    joiner = "||" if level == 0 else "&&"
    while compiler.peek() == joiner:
        compiler.take()
        right = _joined(compiler, level + 1)
        if not isinstance(left, list) or not isinstance(right, list):
            raise ExpressionError(f"{joiner} joins comparisons, such as NetworkErrorRatio() > "
                                  "0.5")  # fmt: skip
        left = ["or" if joiner == "||" else "and", left, right]
    return left


def _comparison(compiler: _Compiler) -> list[object] | _Metric | _Literal:
    left = _operand(compiler)
    if compiler.peek() not in COMPARISONS:
        return left
    op = compiler.take()[1]
    right = _operand(compiler)
    if compiler.peek() in COMPARISONS:
        raise ExpressionError("comparisons cannot be chained")
    if not isinstance(left, _Metric) or not isinstance(right, _Literal):
        raise ExpressionError(f"{op} compares a metric (on its left) with a number (on its "
                              "right), such as NetworkErrorRatio() > 0.5")  # fmt: skip
    wanted = _METRICS[left.name][1]
    if right.kind != wanted:
        floats = wanted == "float"
        example = "a float, such as 0.5 (with a point)" if floats else "an int, such as 100"
        given = "a float" if right.kind == "float" else "an int"
        raise ExpressionError(f"{left.name} is compared with {example}; Traefik refuses "
                              f"{given} there")  # fmt: skip
    return _compiled(compiler, left, op, right.value)


def _compiled(compiler: _Compiler, metric: _Metric, op: str, value: float) -> list[object]:
    if metric.name == "NetworkErrorRatio":
        return ["net", op, value]
    if metric.name == "RequestThreshold":
        return ["total", op, value]
    if metric.name == "ResponseCodeRatio":
        start, end, divided_start, divided_end = (int(a) for a in metric.args)
        codes = compiler.index(compiler.ranges, (start, end))
        divided = compiler.index(compiler.ranges, (divided_start, divided_end))
        return ["codes", op, value, codes, divided]
    at_most = compiler.index(compiler.limits, int(value))
    below = compiler.index(compiler.limits, int(value) - 1)
    return ["latency", op, value, metric.args[0], at_most, below]


def _operand(compiler: _Compiler) -> list[object] | _Metric | _Literal:
    kind, text = compiler.take()
    if text == "(":
        inner = _joined(compiler, 0)
        compiler.expect(")")
        return inner
    if kind in ("int", "float"):
        return _literal(kind, text)
    if kind != "name":
        raise ExpressionError(f"{text!r} is not expected there")
    if text not in _METRICS:
        raise ExpressionError(f"{text} is not one of Traefik's metrics ({', '.join(_METRICS)})")
    compiler.expect("(")
    args: list[_Literal] = []
    while compiler.peek() != ")":
        arg_kind, arg = compiler.take()
        if arg_kind not in ("int", "float"):
            raise ExpressionError(f"{text}'s arguments are numbers, not {arg!r}")
        args.append(_literal(arg_kind, arg))
        if compiler.peek() != ")":
            compiler.expect(",")
    compiler.take()
    wanted = _METRICS[text][0]
    if tuple(a.kind for a in args) != wanted:
        raise ExpressionError(f"{text} takes {_signature(wanted)}")
    return _Metric(text, [a.value for a in args])


def _signature(kinds: tuple[str, ...]) -> str:
    if not kinds:
        return "no argument"
    if kinds == ("float",):
        return "a float quantile, such as 50.0 (with a point)"
    return "four ints: from, to, dividedByFrom, dividedByTo (such as 500, 600, 0, 600)"


def _literal(kind: str, text: str) -> _Literal:
    value = float(text) if kind == "float" else int(text)  # Go's Atoi: 010 is ten
    if abs(value) >= _LARGEST:
        raise ExpressionError(f"{text} is too large")
    return _Literal(kind, value)
