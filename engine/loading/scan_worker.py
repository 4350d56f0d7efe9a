"""The scan's worker process: import third-party sources, then check their plugins.

Run as ``python -m gradient_lab.engine.loading.scan_worker JOB PROGRESS`` by ``scan.py``, never
imported by the engine. It reports each step to the PROGRESS file as one JSON line when the step
starts and when it ends, so the parent knows what was running when a time limit passed or the
process ended. Built-ins are loaded first, and every source of the job is imported before any
check, as in Gradient Lab itself: a plugin's check sees the plugins it may use.
"""

from __future__ import annotations

import faulthandler
import importlib.metadata
import json
import os
import sys
import traceback
from pathlib import Path
from typing import IO, Any

from gradient_lab.engine.loading.guard import run_guarded, thread_message
from gradient_lab.engine.loading.manifest import Entry, Item, PluginEntry
from gradient_lab.engine.loading.registry import (
    ENTRY_POINT_GROUP,
    Registry,
    load_file,
    load_sources,
    old_import_hint,
    one_line,
)

Classes = dict[tuple[str, str], Any]


def main(job_path: str, progress_path: str) -> int:
    faulthandler.enable()  # a crash names itself on stderr, which the parent reads
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    grace = float(job["thread_grace"])
    with open(progress_path, "a", encoding="utf-8") as progress:
        report = _reporter(progress)
        registry = load_sources(safe_mode=True)
        report("ready")
        to_check = []
        for task in job["items"]:
            item = Item(**task["item"])
            report("import", key=item.key)
            entry, classes = import_item(item, registry, grace)
            report("imported", key=item.key, entry=entry.to_json())
            if task["check"] and entry.status == "ok":
                skip = {tuple(p) for p in task["skip"]}
                to_check.append((item, {k: c for k, c in classes.items() if k not in skip}))
        if to_check:  # the check's compiled kernels load only when there is something to check
            report("checks")  # what follows until the first check is the worker's own
            from gradient_lab.engine.loading.conformance import check_plugin
        for item, classes in to_check:
            for (kind, name), cls in classes.items():
                report("check", key=item.key, kind=kind, name=name)
                verdict, error = check_class(check_plugin, cls, registry, grace)
                report("checked", key=item.key, kind=kind, name=name, check=verdict, error=error)
        report("done")
    return 0


def _reporter(progress: IO[str]) -> Any:
    def report(event: str, **data: Any) -> None:
        progress.write(json.dumps({"event": event, **data}) + "\n")
        progress.flush()

    return report


def import_item(item: Item, registry: Registry, grace: float) -> tuple[Entry, Classes]:
    """Import one source and register its plugins; its entry and its usable classes."""
    entry = Entry(item.key, {})

    def load() -> Any:
        if item.type == "file":
            return load_file(Path(item.origin))
        return importlib.metadata.EntryPoint(item.name, item.origin, ENTRY_POINT_GROUP).load()

    imported = run_guarded(load, capture_fds=False, thread_grace=grace)
    entry.note = imported.note
    if imported.error is not None:
        exc = imported.error
        hint = old_import_hint(exc) if item.type == "file" else ""
        entry.status, entry.error = "failed", hint or one_line(exc)
        entry.detail = "".join(traceback.format_exception(exc))
        return entry, {}
    if imported.threads:
        entry.status, entry.error = "failed", thread_message(imported.threads, "at import")
        return entry, {}
    own = Registry()  # the source's plugins alone: a clash is decided where they are used

    def register() -> None:
        own.add_module(imported.value, item.source, item.origin)
        for record in own.ok_records():
            registry.add_class(record.cls, item.source, item.origin)

    registered = run_guarded(register, capture_fds=False, thread_grace=grace)
    entry.note = "\n".join(n for n in (entry.note, registered.note) if n)
    if registered.error is not None:
        entry.status = "failed"
        entry.error = f"failed while its plugins were registered: {one_line(registered.error)}"
        return entry, {}
    if registered.threads:
        entry.status = "failed"
        entry.error = thread_message(registered.threads, "when its plugins were created")
        return entry, {}
    classes: Classes = {}
    for record in own.records:
        entry.plugins.append(
            PluginEntry(
                record.name, record.kind, record.version, record.status, record.error,
                record.detail,
            )
        )  # fmt: skip
        if record.ok:
            classes[(record.kind, record.name)] = record.cls
    return entry, classes


def check_class(
    check_plugin: Any, cls: Any, registry: Registry, grace: float
) -> tuple[str | None, str]:
    """(the check's verdict: "" passed, else why not; an error that makes the plugin unusable)."""
    checked = run_guarded(lambda: check_plugin(cls, registry), False, grace)
    if checked.error is not None:
        return f"check crashed: {one_line(checked.error)}", ""
    if checked.threads:
        return None, thread_message(checked.threads, "during its conformance check")
    failures = [item for item in checked.value.items if not item.passed]
    if failures:
        return f"failed its check: {failures[0].name}: {failures[0].message}", ""
    return "", ""


if __name__ == "__main__":
    code = main(*sys.argv[1:3])
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)  # a thread a plugin left running must not keep the worker alive
