"""A plugin's formula (the LaTeX subset plugins write) as Qt rich text, so forms show
"σ(x) = 1/(1 + e<sup>−x</sup>)" rather than "\\sigma(x) = \\frac{1}{1 + e^{-x}}".

Qt's rich text has no stacked fractions or big operators and no library renders this subset
to rich text, so a small converter does: Greek letters and symbols by name, sub- and
superscripts, fractions inline with the brackets they need, square roots, hats and bars as
combining accents, cases and matrices on one line. What it does not know it shows as written,
without the backslash."""

from __future__ import annotations

import html
import re

SYMBOLS = {
    **{
        g: chr(c)
        for g, c in zip(
            [
                "alpha",
                "beta",
                "gamma",
                "delta",
                "epsilon",
                "zeta",
                "eta",
                "theta",
                "iota",
                "kappa",
                "lambda",
                "mu",
                "nu",
                "xi",
                "omicron",
                "pi",
                "rho",
                "sigma",
                "tau",
                "upsilon",
                "phi",
                "chi",
                "psi",
                "omega",
            ],
            [*range(0x3B1, 0x3C2), *range(0x3C3, 0x3CA)],
            strict=True,
        )
    },
    "varepsilon": "ε",
    "varphi": "φ",
    "Delta": "Δ",
    "Gamma": "Γ",
    "Theta": "Θ",
    "Lambda": "Λ",
    "Sigma": "Σ",
    "Phi": "Φ",
    "Psi": "Ψ",
    "Omega": "Ω",
    "Pi": "Π",
    "sum": "Σ",
    "prod": "Π",
    "int": "∫",
    "cdot": "·",
    "cdots": "⋯",
    "dots": "…",
    "ldots": "…",
    "times": "×",
    "pm": "±",
    "mp": "∓",
    "le": "≤",
    "leq": "≤",
    "ge": "≥",
    "geq": "≥",
    "ne": "≠",
    "neq": "≠",
    "approx": "≈",
    "sim": "∼",
    "in": "∈",
    "notin": "∉",
    "infty": "∞",
    "nabla": "∇",
    "partial": "∂",
    "odot": "⊙",
    "otimes": "⊗",
    "top": "⊤",
    "leftarrow": "←",
    "rightarrow": "→",
    "to": "→",
    "mapsto": "↦",
    "lVert": "‖",
    "rVert": "‖",
    "Vert": "‖",
    "lfloor": "⌊",
    "rfloor": "⌋",
    "lceil": "⌈",
    "rceil": "⌉",
    "langle": "⟨",
    "rangle": "⟩",
    "log": "log",
    "exp": "exp",
    "max": "max",
    "min": "min",
    "sin": "sin",
    "cos": "cos",
    "tanh": "tanh",
    "det": "det",
    "quad": "\u2003",
    "qquad": "\u2003\u2003",
    ",": "\u2009",
    ";": "\u2005",
    " ": " ",
    "!": "",
    "#": "#",
    "{": "{",
    "}": "}",
    "%": "%",
    "&": "&",
    "_": "_",
    "left": "",
    "right": "",
    "big": "",
    "Big": "",
}
ACCENTS = {"hat": "\u0302", "bar": "\u0304", "tilde": "\u0303", "dot": "\u0307", "vec": "\u20d7"}
FONTS = {"mathrm", "text", "operatorname", "mathbf", "mathcal", "mathbb", "boldsymbol"}


class _Reader:
    def __init__(self, text: str) -> None:
        self.text, self.i = text, 0

    def more(self) -> bool:
        return self.i < len(self.text)

    def peek(self) -> str:
        return self.text[self.i] if self.more() else ""

    def take(self) -> str:
        ch = self.peek()
        self.i += 1
        return ch

    def command(self) -> str:
        match = re.match(r"[A-Za-z]+|.", self.text[self.i :])
        name = match.group(0) if match else ""
        self.i += len(name)
        return name

    def group(self) -> str:
        """The raw text of the next {…} group, or of the next single token."""
        while self.peek() == " ":
            self.take()
        if self.peek() != "{":
            if self.peek() == "\\":
                self.take()
                return "\\" + self.command()
            return self.take()
        depth, start = 0, self.i
        while self.more():
            ch = self.take()
            if ch == "\\":
                self.take()
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return self.text[start + 1 : self.i - 1]
        return self.text[start + 1 :]


def latex_to_html(text: str) -> str:
    """Rich text for a formula in the subset the built-in plugins use."""
    return _convert(text.strip())


def _bracketed(inner: str) -> str:
    """A fraction's part in brackets unless it is a single token."""
    plain = re.sub(r"<[^>]+>", "", inner)
    return inner if re.fullmatch(r"[\w.·]+|\(.*\)", plain) else f"({inner})"


def _convert(text: str) -> str:
    out: list[str] = []
    r = _Reader(text)
    while r.more():
        ch = r.take()
        if ch == "\\":
            out.append(_command(r, r.command()))
        elif ch in "^_":
            tag = "sup" if ch == "^" else "sub"
            out.append(f"<{tag}>{_convert(r.group())}</{tag}>")
        elif ch in "{}":
            continue
        elif ch == "-":
            out.append("−")
        else:
            out.append(html.escape(ch))
    return "".join(out)


def _command(r: _Reader, name: str) -> str:
    if name in ("frac", "tfrac", "dfrac"):
        top, bottom = _convert(r.group()), _convert(r.group())
        return f"{_bracketed(top)}/{_bracketed(bottom)}\u2009"
    if name == "sqrt":
        return f"√{_bracketed(_convert(r.group()))}"
    if name in ACCENTS:
        return _convert(r.group()) + ACCENTS[name]
    if name in FONTS:
        inner = _convert(r.group())
        return f"<b>{inner}</b>" if name in ("mathbf", "boldsymbol") else inner
    if name == "begin":
        return _environment(r, r.group())
    if name == "end":
        r.group()
        return ""
    if name == "\\":
        return "; "
    return SYMBOLS.get(name, html.escape(name))


def _environment(r: _Reader, kind: str) -> str:
    """cases as "{ a if b; c if d", matrices as "[1 0; 0 κ]", on one line."""
    end = r.text.find(f"\\end{{{kind}}}", r.i)
    body = r.text[r.i : end if end >= 0 else len(r.text)]
    r.i = end + len(f"\\end{{{kind}}}") if end >= 0 else len(r.text)
    rows = [row.strip() for row in body.split("\\\\") if row.strip()]
    if kind == "cases":
        parts = []
        for row in rows:
            value, _, condition = row.partition("&")
            parts.append(f"{_convert(value.strip())} if {_convert(condition.strip())}")
        return "{ " + "; ".join(parts)
    cells = ["\u2002".join(_convert(c.strip()) for c in row.split("&")) for row in rows]
    return "[" + "; ".join(cells) + "]"
