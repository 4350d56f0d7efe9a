"""The conformance check: does a plugin keep the promises its declaration makes?

One check serves three callers: ``gradient-lab plugins check``, the test suite (every discovered
plugin) and plugin authors (the ``plugin_check`` fixture in ``gradient_lab.engine.testing``). A
report is a list of named items, each passed or failed with a one-line message. An exception
inside one check fails that item with the exception's text and never stops the others.

Numerics are checked in float64 against central differences at seeded random points, and fast
paths (``inline`` codes, layer fusion) against the plugin's own readable code, so a plugin that
claims an engine fast path cannot silently train with different math. A layer is built for
samples of shape (5,) unless its class declares another in ``check_input_shape``.

This module runs the checks: those every kind gets (``checks.declaration``), then the kind's own,
one module per kind or group of kinds in ``engine/loading/checks/``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gradient_lab.engine.loading.checks.activations import activation_checks
from gradient_lab.engine.loading.checks.architectures import architecture_checks
from gradient_lab.engine.loading.checks.common import (
    Check,
    CheckFailed,
    CheckItem,
    CheckReport,
    run_check,
)
from gradient_lab.engine.loading.checks.datasets_metrics import dataset_checks, metric_checks
from gradient_lab.engine.loading.checks.declaration import (
    contract_problems_of,
    declaration_checks,
)
from gradient_lab.engine.loading.checks.layers import (
    CheckInitializer,
    layer_checks,
    layer_input_shape,
)
from gradient_lab.engine.loading.checks.losses import loss_checks
from gradient_lab.engine.loading.checks.objectives import objective_checks
from gradient_lab.engine.loading.checks.optimizers import optimizer_checks
from gradient_lab.engine.loading.checks.training_setup import (
    initializer_checks,
    regularizer_checks,
    schedule_checks,
)
from gradient_lab.engine.loading.manifest import Item
from gradient_lab.engine.loading.registry import (
    PluginRecord,
    Registry,
    load_file,
    load_sources,
    one_line,
)
from gradient_lab.engine.loading.scan import scan

__all__ = [
    "CheckFailed",
    "CheckInitializer",
    "CheckItem",
    "CheckReport",
    "check_name",
    "check_path",
    "check_plugin",
    "layer_input_shape",
]


KIND_CHECKS: dict[str, Callable[[Any, Registry], list[tuple[str, Check]]]] = {
    "activation": activation_checks,
    "loss": loss_checks,
    "optimizer": optimizer_checks,
    "layer": layer_checks,
    "initializer": initializer_checks,
    "regularizer": regularizer_checks,
    "lr_schedule": schedule_checks,
    "dataset": dataset_checks,
    "metric": metric_checks,
    "architecture": architecture_checks,
    "objective": objective_checks,
}


def check_plugin(cls: Any, registry: Registry | None = None) -> CheckReport:
    """Check one plugin class; ``registry`` supplies the plugins it uses (a layer's activation)."""
    if registry is None:
        registry = load_sources(safe_mode=True)
    report = CheckReport(str(getattr(cls, "kind", "?")), str(getattr(cls, "name", cls)))
    checks = declaration_checks(cls)
    if not contract_problems_of(cls):
        kind_checks = KIND_CHECKS.get(cls.kind)
        if kind_checks is not None:
            checks += kind_checks(cls, registry)
    for name, check in checks:
        item = run_check(name, check)
        if item is not None:
            report.items.append(item)
    return report


def check_name(name: str, registry: Registry) -> list[tuple[PluginRecord, CheckReport]]:
    """Check every plugin (of any kind) called ``name``; failed loads report why."""
    return [_check_record(r, registry) for r in registry.records if r.name == name]


def check_path(path: str | Path) -> list[tuple[PluginRecord, CheckReport]]:
    """Check the plugins of one drop-in file, loaded next to the built-ins only.

    The file is scanned first in a worker process under the scan's time limits (``scan``): one
    that loops, ends the process or crashes at import, or in a plugin's check, is reported from
    there and never imported here; the rest get the full check in this process."""
    path = Path(path)
    [entry] = scan([Item("file", path.stem, "folder", str(path))])
    if entry.status != "ok":
        return [_import_failure(path, entry.error)]
    try:
        registry = load_sources(safe_mode=True)
        registry.add_module(load_file(path), "folder", str(path))
    except BaseException as exc:  # a drop-in's SystemExit must not end the check either
        return [_import_failure(path, one_line(exc))]
    unsafe = {p.name: p.error for p in entry.plugins if p.status == "failed"}
    results = []
    for record in (r for r in registry.records if r.origin == str(path)):
        if record.name in unsafe and record.ok:  # its check did not survive the worker
            item = CheckItem("check in a worker process", False, unsafe[record.name])
            results.append((record, CheckReport(record.kind, record.name, [item])))
        else:
            results.append(_check_record(record, registry))
    return results


def _import_failure(path: Path, error: str) -> tuple[PluginRecord, CheckReport]:
    record = PluginRecord(path.stem, "module", "folder", str(path), None, "", "failed")
    record.error = error
    return record, CheckReport("module", path.stem, [CheckItem("import", False, error)])


def _check_record(record: PluginRecord, registry: Registry) -> tuple[PluginRecord, CheckReport]:
    if record.ok:
        return record, check_plugin(record.cls, registry)
    item = "name clash" if record.error.startswith("name clash") else "load"
    if record.kind == "module":
        item = "import"
    return record, CheckReport(record.kind, record.name, [CheckItem(item, False, record.error)])
