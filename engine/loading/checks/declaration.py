"""The checks every kind gets: a valid declaration, parameters that accept their bounds and
refuse bad values, a configuration that round-trips, and the teaching metadata."""

from __future__ import annotations

import math
from typing import Any

from gradient_lab.engine.loading.checks.common import Check, CheckFailed
from gradient_lab.engine.loading.registry import contract_problems, one_line
from gradient_lab.engine.plugin_api import Param, PluginError


def declaration_checks(cls: Any) -> list[tuple[str, Check]]:
    return [
        ("contract", lambda: _check_contract(cls)),
        ("parameters", lambda: _check_parameters(cls)),
        ("config round-trip", lambda: _check_round_trip(cls)),
        ("metadata", lambda: _check_metadata(cls)),
    ]


def contract_problems_of(cls: Any) -> list[str]:
    try:
        return contract_problems(cls)
    except Exception as exc:
        return [one_line(exc)]


def _check_contract(cls: Any) -> str:
    problems = contract_problems_of(cls)
    if problems:
        raise CheckFailed("; ".join(problems))
    return f"a valid {cls.kind} declaration (api_version {cls.api_version}, version {cls.version})"


def _bad_values(p: Param) -> list[Any]:
    """Values the declaration forbids: wrong type, outside the range, not among the choices."""
    wrong_type = {"float": "abc", "int": "abc", "bool": "yes", "floats": "abc", "dict": "abc"}
    values: list[Any] = [wrong_type.get(p.type, 3)]
    if p.choices:
        values.append("not-a-choice" if p.type in ("str", "strs") else object())
    if p.type in ("float", "int"):
        if p.low is not None:
            values.append(p.low - 1 if p.low_inclusive else p.low)
        if p.high is not None:
            values.append(p.high + 1 if p.high_inclusive else p.high)
    return values


def _edge_values(p: Param) -> list[Any]:
    """Range bounds the declaration allows."""
    if p.type not in ("float", "int") or p.choices:
        return []
    low: float | None
    high: float | None
    if p.type == "int":  # the whole numbers nearest the bounds, inside them
        low = None if p.low is None else math.ceil(p.low)
        high = None if p.high is None else math.floor(p.high)
    else:
        low = None if p.low is None else float(p.low)
        high = None if p.high is None else float(p.high)
    edges = [] if low is None or not p.low_inclusive else [low]
    return edges + ([] if high is None or not p.high_inclusive else [high])


def _check_parameters(cls: Any) -> str:
    for p in cls.params:
        try:
            p.validate(p.default)
        except PluginError as exc:
            raise CheckFailed(f"default of {p.name!r} is invalid: {exc}") from None
        for bad in _bad_values(p):
            _expect_refused(cls, p, bad)
        for edge in _edge_values(p):
            _expect_accepted(cls, p, edge)
    return f"{len(cls.params)} parameters: defaults valid, bounds accepted, bad values refused"


def _expect_refused(cls: Any, p: Param, bad: Any) -> None:
    try:
        cls(**{p.name: bad})
    except PluginError:
        return
    except Exception as exc:
        raise CheckFailed(
            f"{p.name} = {bad!r} raised {one_line(exc)} instead of a PluginError"
        ) from None
    raise CheckFailed(f"{p.name} = {bad!r} was accepted; the declaration allows {p.allowed()}")


def _expect_accepted(cls: Any, p: Param, edge: Any) -> None:
    try:
        cls(**{p.name: edge})
    except Exception as exc:
        raise CheckFailed(
            f"{p.name} = {edge!r} is within the declared range ({p.allowed()}) but is refused: "
            f"{one_line(exc)}"
        ) from None


def _check_round_trip(cls: Any) -> str:
    plugin = cls()
    config = plugin.get_config()
    again = type(plugin)(**config).get_config()
    if again != config:
        raise CheckFailed(f"get_config() gave {config!r}, rebuilt from it {again!r}")
    return f"{type(plugin).__name__}(**get_config()) rebuilds the same configuration"


def _check_metadata(cls: Any) -> str:
    missing = [a for a in ("formula", "teaching") if not str(getattr(cls, a, "") or "").strip()]
    if missing:
        raise CheckFailed(f"{' and '.join(missing)} must be a non-empty text")
    undocumented = [p.name for p in cls.params if not p.help.strip()]
    if undocumented:
        raise CheckFailed(f"parameter(s) without help text: {', '.join(undocumented)}")
    return "formula, teaching text and parameter help present"
