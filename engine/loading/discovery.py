"""Discovery: every source loaded, and third-party plugins put through the conformance check.

Built-ins are checked by the test suite instead, so start-up stays fast; a third-party plugin that
fails (its JIT compile included) is taken out of use with the first failed item as its reason.
The check of a plugin from a drop-in file or a package ran in the scan's subprocess (``scan.py``),
under a time limit, and its verdict is cached with the manifest: here it is only applied.
"""

from __future__ import annotations

from pathlib import Path

from gradient_lab.engine.loading.conformance import check_plugin
from gradient_lab.engine.loading.registry import Registry, load_sources, one_line


def discover(
    plugins_dir: str | Path | None = None, safe_mode: bool = False, check: bool = True
) -> Registry:
    """Load every plugin from every source; failures are recorded, never raised."""
    registry = load_sources(plugins_dir, safe_mode)
    if check:
        check_third_party(registry)
    return registry


def check_third_party(registry: Registry) -> None:
    """Check every plugin not shipped with Gradient Lab; take the failing ones out of use.

    A scanned plugin keeps the scan's verdict; one added by hand (a class registered by a test
    or a notebook) is checked here, in this process."""
    for record in registry.ok_records():
        if record.source == "builtin":
            continue
        if record.check_verdict is not None:
            if record.check_verdict:
                registry.mark_failed(record.kind, record.name, record.check_verdict)
            continue
        try:
            report = check_plugin(record.cls, registry)
        except Exception as exc:  # the check itself must never stop start-up
            registry.mark_failed(record.kind, record.name, f"check crashed: {one_line(exc)}")
            continue
        failures = [item for item in report.items if not item.passed]
        if failures:
            first = failures[0]
            registry.mark_failed(
                record.kind, record.name, f"failed its check: {first.name}: {first.message}"
            )


_default: Registry | None = None


def default_registry() -> Registry:
    """A process-wide registry of the default sources, loaded on first use."""
    global _default
    if _default is None:
        _default = discover()
    return _default
