"""Ranking formulas: a small, safe expression language over an offer's priority and characteristics.

    priority * 2 + if(margin > 0.3 and category == "apparel", 20, 0)

Numbers, strings, `true`/`false`, the offer's fields by name (`priority` and its characteristics), arithmetic
(+ - * / %), comparisons, `and`/`or`/`not`, parentheses and `if(condition, then, else)`. Nothing else parses:
no calls, no attribute access, no indexing, no names starting with `_`, so Python internals are out of reach
by construction. A formula is limited in length and nesting depth.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Mapping
from typing import Any

from lark import Lark, Tree
from lark.exceptions import LarkError

from offerrank.errors import BadInput

MAX_LENGTH = 500
MAX_DEPTH = 12

_GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr | or_expr "or" and_expr                  -> or_
?and_expr: not_expr | and_expr "and" not_expr               -> and_
?not_expr: "not" not_expr                                    -> not_
         | comparison
?comparison: sum | sum COMPARE sum                           -> compare
?sum: product | sum ADD_OP product                           -> arith
?product: unary | product MUL_OP unary                       -> arith
?unary: "-" unary                                            -> neg
      | atom
?atom: NUMBER                                                -> number
     | STRING                                                -> string
     | "true"                                                -> true
     | "false"                                               -> false
     | "if" "(" or_expr "," or_expr "," or_expr ")"          -> if_
     | NAME                                                  -> field
     | "(" or_expr ")"
COMPARE: "==" | "!=" | "<=" | ">=" | "<" | ">"
ADD_OP: "+" | "-"
MUL_OP: "*" | "/" | "%"
NAME: /[a-zA-Z][a-zA-Z0-9_]*/
STRING: /"[^"\\]{0,200}"/
%import common.NUMBER
%import common.WS
%ignore WS
"""
_PARSER = Lark(_GRAMMAR, parser="lalr", maybe_placeholders=False)
_BINARY = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "%": operator.mod,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class FormulaError(BadInput):
    """A formula that does not parse, breaks a limit, or cannot be evaluated for an offer."""


class Formula:
    """A parsed formula; `evaluate(fields)` scores one offer."""

    def __init__(self, source: str):
        if len(source) > MAX_LENGTH:
            raise FormulaError(f"formula is {len(source)} characters long; the limit is {MAX_LENGTH}")
        try:
            self.tree = _PARSER.parse(source)
        except LarkError as error:
            raise FormulaError(f"formula does not parse: {str(error).splitlines()[0]}") from None
        depth = _nesting(source)
        if depth > MAX_DEPTH:
            raise FormulaError(f"formula nests parentheses {depth} levels deep; the limit is {MAX_DEPTH}")
        self.source = source
        self.fields = sorted({str(t.children[0]) for t in self.tree.iter_subtrees() if t.data == "field"})

    def evaluate(self, fields: Mapping[str, Any]) -> float:
        value = _evaluate(self.tree, fields)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FormulaError(f"formula {self.source!r} gives {value!r}, not a number")
        try:
            value = float(value)
        except OverflowError:
            raise FormulaError(f"formula {self.source!r} gives a number too large for a score") from None
        if not math.isfinite(value):
            raise FormulaError(f"formula {self.source!r} gives {value}, not a finite number")
        return value


def _nesting(source: str) -> int:
    """Deepest parenthesis nesting outside string literals (`if(` counts as one level)."""
    depth = deepest = 0
    for char in re.sub(r'"[^"]*"', "", source):
        depth += (char == "(") - (char == ")")
        deepest = max(deepest, depth)
    return deepest


def _evaluate(node: Tree, fields: Mapping[str, Any]) -> Any:
    kind, children = node.data, node.children
    if kind == "number":
        return float(str(children[0]))  # a NUMBER token
    if kind == "string":
        return str(children[0])[1:-1]
    if kind in ("true", "false"):
        return kind == "true"
    if kind == "field":
        name = str(children[0])
        if name not in fields:
            raise FormulaError(f"the offer has no field {name!r}")
        return fields[name]
    if kind == "if_":
        return _evaluate(children[1] if _boolean(_evaluate(children[0], fields)) else children[2], fields)
    if kind == "not_":
        return not _boolean(_evaluate(children[0], fields))
    if kind == "neg":
        return -_number(_evaluate(children[0], fields))
    if kind == "and_":
        return all(_boolean(_evaluate(child, fields)) for child in children)
    if kind == "or_":
        return any(_boolean(_evaluate(child, fields)) for child in children)
    if kind in ("arith", "compare"):
        value = _evaluate(children[0], fields)
        for symbol, operand in zip(children[1::2], children[2::2]):
            right = _evaluate(operand, fields)
            if kind == "arith":
                value, right = _number(value), _number(right)
                if symbol in ("/", "%") and right == 0:
                    raise FormulaError("division by zero")
            elif _kind(value) != _kind(right):  # "1" == 1 or true == 1 would be silently false or true
                raise FormulaError(f"cannot compare {value!r} with {right!r}: a {_kind(value)} and a {_kind(right)}")
            try:
                value = _BINARY[str(symbol)](value, right)
            except TypeError:
                raise FormulaError(f"cannot compare {value!r} with {right!r}") from None
            except OverflowError:
                raise FormulaError("a number too large for a score") from None
        return value
    raise FormulaError(f"unexpected formula node {kind}")


def _kind(value: Any) -> str:
    return "boolean" if isinstance(value, bool) else "number" if isinstance(value, (int, float)) else "text"


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise FormulaError(f"{value!r} is not true or false")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FormulaError(f"{value!r} is not a number")
    return value
