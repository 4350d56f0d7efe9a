"""Plugin formulas as rich text: every built-in plugin's formula converts with no LaTeX left,
and the constructs they use come out as a reader expects."""

import pytest

from gradient_lab.app.formula import latex_to_html
from gradient_lab.engine.loading.discovery import default_registry


@pytest.mark.parametrize(
    "latex, html",
    [
        (r"\sigma(x) = \frac{1}{1 + e^{-x}}", "σ(x) = 1/(1 + e<sup>−x</sup>)\u2009"),
        (r"W_{ij} \sim \mathcal{N}(\mu, \sigma^2)", "W<sub>ij</sub> ∼ N(μ, σ<sup>2</sup>)"),
        (
            r"f(x) = \begin{cases} x & x > 0 \\ a x & x \le 0 \end{cases}",
            "f(x) = { x if x &gt; 0; a x if x ≤ 0",
        ),
        (r"a = g\sqrt{\frac{6}{n}}", "a = g√(6/n\u2009)"),
        (r"\hat y_i", "y\u0302<sub>i</sub>"),
        (r"\tfrac12 p^\top", "1/2\u2009 p<sup>⊤</sup>"),
    ],
)
def test_constructs(latex, html):
    assert latex_to_html(latex) == html


def test_every_built_in_formula_converts_without_latex_left():
    registry = default_registry()
    formulas = [
        r.cls.formula for r in registry.ok_records() if r.source == "builtin" and r.cls.formula
    ]
    assert len(formulas) > 40
    for formula in formulas:
        shown = latex_to_html(formula)
        assert "\\" not in shown, (formula, shown)  # no command left as written
        for command in ("frac", "sum", "mathrm", "begin", "sqrt", "sigma", "eta"):
            assert command not in shown, (formula, shown)
