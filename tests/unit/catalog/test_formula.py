"""The ranking-formula language: what it computes, and everything it refuses at parse time."""

from __future__ import annotations

import pytest

from offerrank.catalog.formula import MAX_LENGTH, Formula, FormulaError

OFFER = {"priority": 40, "margin": 0.35, "category": "apparel", "exclusive": True}


@pytest.mark.parametrize(
    "source, expected",
    [
        ("priority", 40),
        ("priority * 2 + 1", 81),
        ("-priority + 100 / 4 % 7", -36),
        ("(priority + 10) * 2", 100),
        ("priority + if(margin > 0.3, 20, 0)", 60),
        ('if(category == "apparel" and not exclusive, 1, 2)', 2),
        ("if(priority >= 40 or margin < 0, if(margin != 0.35, 1, 3), 2)", 3),
    ],
)
def test_formulas_compute_the_offer_score(source, expected):
    assert Formula(source).evaluate(OFFER) == pytest.approx(expected)


def test_fields_lists_what_a_formula_reads():
    assert Formula("priority + if(margin > 0.3, 20, 0)").fields == ["margin", "priority"]


@pytest.mark.parametrize(
    "source",
    [
        '__import__("os").system("ls")',
        "priority.__class__",
        "().__class__.__bases__",
        "priority.real",
        "characteristics['margin']",
        'open("/etc/passwd")',
        "max(priority, 1)",
        "lambda: 1",
        "_secret + 1",
        "[1, 2]",
        "priority ** 2",
        "if(priority, 1)",
        "1 +",
        "",
    ],
)
def test_anything_beyond_the_language_is_refused_at_parse_time(source):
    with pytest.raises(FormulaError, match="does not parse"):
        Formula(source)


def test_length_and_nesting_limits():
    with pytest.raises(FormulaError, match=f"the limit is {MAX_LENGTH}"):
        Formula("1 + " * 200 + "1")
    with pytest.raises(FormulaError, match="nests parentheses 13 levels deep"):
        Formula("(" * 13 + "1" + ")" * 13)
    assert Formula("1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10 + 11 + 12 + 13 + 14").evaluate({}) == 105


@pytest.mark.parametrize(
    "source, message",
    [
        ("missing + 1", "no field 'missing'"),
        ("priority > 1", "not a number"),
        ("category + 1", "not a number"),
        ("priority / (margin - 0.35)", "division by zero"),
        ("if(category < 1, 1, 0)", "cannot compare"),
        ("1e999", "gives inf, not a finite number"),
        ("1e999 - 1e999", "gives nan, not a finite number"),
        ("priority * 1e308 * 10", "not a finite number"),
        ("if(category == 1, 1, 0)", "cannot compare 'apparel' with 1.0: a text and a number"),
        ("if(true == 1, 1, 0)", "a boolean and a number"),
        ('if("false", 1, 2)', "'false' is not true or false"),
        ("if(priority, 1, 2)", "is not true or false"),
    ],
)
def test_evaluation_errors_are_formula_errors(source, message):
    with pytest.raises(FormulaError, match=message):
        Formula(source).evaluate(OFFER)
