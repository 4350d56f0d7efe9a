"""The scan: third-party plugins imported and checked in a subprocess, under time limits.

A plugin is arbitrary code. Before anything of a third party runs in Gradient Lab's own
process, a worker process (``scan_worker.py``) imports each drop-in file and entry point, then
puts each plugin through the conformance check, reporting every step as it starts and ends. When
a step overruns its time limit the worker is killed; when the worker ends early (``os._exit``, a
crash) the step it was in is to blame. Either way that source or plugin is recorded as failed
with the reason, and a new worker carries on with the rest. Results are cached (``manifest.py``):
an unchanged source is not scanned again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from gradient_lab.engine.loading.manifest import (
    Entry,
    Item,
    PluginEntry,
    engine_stamp,
    read_cache,
    reusable,
    write_cache,
)

ENV_IMPORT_TIMEOUT = "GRADIENT_LAB_SCAN_TIMEOUT"
ENV_CHECK_TIMEOUT = "GRADIENT_LAB_CHECK_TIMEOUT"
IMPORT_TIMEOUT = 10.0  # seconds a source may take to import (and register its plugins)
CHECK_TIMEOUT = 60.0  # seconds one plugin's conformance check may take (compiles included)
START_TIMEOUT = 120.0  # seconds the worker may take for its own work (start-up, built-ins)
END_TIMEOUT = 10.0  # seconds the worker may take to exit after its last report
THREAD_GRACE = 0.5  # seconds a thread started by a plugin may take to finish
POLL = 0.05
WORKER = "gradient_lab.engine.loading.scan_worker"
FATAL = re.compile(r"^Fatal Python error: .*$", re.MULTILINE)


@dataclass(frozen=True)
class Limits:
    """The scan's time limits in seconds; GRADIENT_LAB_SCAN_TIMEOUT and
    GRADIENT_LAB_CHECK_TIMEOUT override the import and check limits."""

    import_s: float = IMPORT_TIMEOUT
    check_s: float = CHECK_TIMEOUT
    start_s: float = START_TIMEOUT

    @classmethod
    def from_env(cls) -> Limits:
        return cls(
            import_s=_seconds(ENV_IMPORT_TIMEOUT, IMPORT_TIMEOUT),
            check_s=_seconds(ENV_CHECK_TIMEOUT, CHECK_TIMEOUT),
        )


def _seconds(variable: str, default: float) -> float:
    """A positive number of seconds from the environment; the default when unset or invalid."""
    try:
        value = float(os.environ.get(variable, ""))
    except ValueError:
        return default
    return value if value > 0 else default


def scan(items: list[Item], limits: Limits | None = None) -> list[Entry]:
    """The manifest entry of each item, in order: cached when its source is unchanged, else
    from a scan in a worker process. Never raises for a plugin's sake."""
    if not items:
        return []
    limits = limits or Limits.from_env()
    stamp = engine_stamp()
    cached = read_cache(stamp)
    stamps = {item.key: item.stamp() for item in items}
    entries: dict[str, Entry] = {}
    todo = []
    for item in items:
        entry = cached.get(item.key)
        if entry is not None and reusable(
            entry, item, stamps[item.key], limits.import_s, limits.check_s
        ):
            entries[item.key] = entry
        else:
            todo.append(item)
    if todo:
        run = _Scan(items, {i.key for i in todo}, entries, limits)
        found = run.run()
        for key, entry in found.items():
            entry.stamp = stamps[key]
        entries.update(found)
        write_cache(stamp, {k: e for k, e in found.items() if k not in run.transient})
    return [entries[item.key] for item in items]


def _seconds_text(seconds: float) -> str:
    return f"{seconds:g} s"


def ended_text(returncode: int) -> str:
    """How a worker ended: its exit code, or the signal that killed it (a crash)."""
    if returncode >= 0:
        return f"ended the process with exit code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"crashed the interpreter ({name})"


@dataclass
class _Phase:
    """What the worker is doing, as its last report said, and since when (parent's clock)."""

    what: str  # "start", "import", "check", "idle" or "done"
    key: str = ""
    plugin: tuple[str, str] = ("", "")
    after: str = ""  # for "idle": the step it last finished ("import" or "check")
    since: float = 0.0


class _Scan:
    """One scan of ``todo`` (keys of items), as many worker runs as it takes."""

    def __init__(
        self, items: list[Item], todo: set[str], known: dict[str, Entry], limits: Limits
    ) -> None:
        self.items = items
        self.todo = todo
        self.known = known  # cached entries: their sources are imported so checks see them
        self.limits = limits
        self.found: dict[str, Entry] = {}
        self.transient: set[str] = set()  # failures of the scan itself, not to be cached

    def run(self) -> dict[str, Entry]:
        # A worker run that ends early settles at least one source or plugin for good, so this
        # ends; the bound only guards against a mistake here.
        for _ in range(100 * len(self.items) + 10):
            job = self._job()
            if job is None:
                break
            self._run_worker(job)
        for key in self.todo - set(self.found):
            self.found[key] = Entry(key, {}, "failed", "was not scanned: the scan stopped")
            self.transient.add(key)
        for entry in self.found.values():
            for plugin in entry.plugins:
                if plugin.status == "ok" and plugin.check is None:
                    plugin.status, plugin.error = "failed", "was not checked: the scan stopped"
        return self.found

    # -- jobs
    def _job(self) -> list[dict[str, Any]] | None:
        """What the next worker does: every source that imports (to be visible to the checks),
        each with the plugins still to check. None when nothing is left to find out."""
        tasks, work = [], False
        for item in self.items:
            entry = self.found.get(item.key) or self.known.get(item.key)
            if entry is None:
                if item.key in self.todo:
                    tasks.append({"item": asdict(item), "check": True, "skip": []})
                    work = True
                continue
            if entry.status != "ok":
                continue
            pending = item.key in self.todo and any(
                p.status == "ok" and p.check is None for p in entry.plugins
            )
            known = [p for p in entry.plugins if p.status != "ok" or p.check is not None]
            skip = [[p.kind, p.name] for p in known]
            tasks.append({"item": asdict(item), "check": pending, "skip": skip})
            work = work or pending
        return tasks if work else None

    def _run_worker(self, tasks: list[dict[str, Any]]) -> None:
        with tempfile.TemporaryDirectory(prefix="gradient-lab-scan-") as folder:
            job, progress, output = (Path(folder, n) for n in ("job.json", "progress", "output"))
            job.write_text(
                json.dumps({"items": tasks, "thread_grace": THREAD_GRACE}), encoding="utf-8"
            )
            progress.touch()
            command = [sys.executable, "-P", "-m", WORKER, str(job), str(progress)]
            try:
                with output.open("wb") as out, progress.open(encoding="utf-8") as reports:
                    phase, returncode, timed_out = self._watch(command, out, reports)
            except OSError as exc:  # no worker at all (no interpreter to start)
                self._scan_failed(f"the plugin scan could not run: {exc}")
                return
            text = output.read_text(encoding="utf-8", errors="replace")
        if phase.what == "done":
            return
        if phase.what == "start" or (phase.what == "idle" and not phase.key):
            if timed_out:
                limit = _seconds_text(self._limit(phase))
                late = "did not start within" if phase.what == "start" else "stalled for over"
                self._scan_failed(f"the plugin scan {late} {limit}")
            else:
                lines = [line.strip() for line in text.splitlines() if line.strip()]
                said = f": {lines[-1]}" if lines else ""
                self._scan_failed(
                    f"the plugin scan could not run: it {ended_text(returncode)}{said}"
                )
        elif timed_out:
            self._blame(phase, self._timeout_text(phase), timed_out)
        else:
            fatal = FATAL.search(text) if returncode < 0 else None
            said = f": {fatal.group(0)}" if fatal else ""
            self._blame(phase, f"{ended_text(returncode)} {_when(phase)}{said}", timed_out)

    def _watch(
        self, command: list[str], out: IO[bytes], reports: IO[str]
    ) -> tuple[_Phase, int, bool]:
        """Run the worker until it exits or its current step overruns: (its last phase, its
        return code, whether it was killed for overrunning)."""
        phase = _Phase("start", since=time.monotonic())
        pending = ""
        worker = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            while True:
                try:
                    returncode: int | None = worker.wait(timeout=POLL)
                except subprocess.TimeoutExpired:
                    returncode = None
                pending += reports.read()
                *lines, pending = pending.split("\n")
                for line in lines:
                    phase = self._report(line, phase)
                if returncode is not None:
                    return phase, returncode, False
                if time.monotonic() - phase.since > self._limit(phase):
                    return phase, 0, phase.what != "done"  # killed below
        finally:
            if worker.poll() is None:
                worker.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.wait(timeout=END_TIMEOUT)

    def _limit(self, phase: _Phase) -> float:
        return {
            "import": self.limits.import_s,
            "check": self.limits.check_s,
            "done": END_TIMEOUT,
        }.get(phase.what, self.limits.start_s)

    # -- reports from the worker
    def _report(self, line: str, phase: _Phase) -> _Phase:
        try:
            report = json.loads(line)
            event, key = report["event"], report.get("key", "")
        except (ValueError, TypeError, KeyError):
            return phase  # not a report of the worker's
        now = time.monotonic()
        if event in ("ready", "checks"):
            return _Phase("idle", since=now)
        if event == "import":
            return _Phase("import", key, since=now)
        if event == "imported":
            if key in self.todo and key not in self.found:
                self.found[key] = Entry.from_json(report["entry"])
            return _Phase("idle", key, after="import", since=now)
        plugin = (report.get("kind", ""), report.get("name", ""))
        if event == "check":
            return _Phase("check", key, plugin, since=now)
        if event == "checked":
            found = self._plugin(key, plugin)
            if found is not None and report.get("error"):
                found.status, found.error = "failed", report["error"]
            elif found is not None:
                found.check = report.get("check", "")
            return _Phase("idle", key, after="check", since=now)
        if event == "done":
            return _Phase("done", since=now)
        return phase

    def _plugin(self, key: str, plugin: tuple[str, str]) -> PluginEntry | None:
        entry = self.found.get(key)
        if entry is None:
            return None
        return next((p for p in entry.plugins if (p.kind, p.name) == plugin), None)

    # -- a worker that overran or ended early
    def _timeout_text(self, phase: _Phase) -> str:
        limit = _seconds_text(self._limit(phase))
        if phase.what == "import":
            return f"did not finish importing within {limit}"
        if phase.what == "check":
            return f"did not finish its conformance check within {limit}"
        return f"kept the scan busy for over {limit} after its {phase.after or 'start'}"

    def _blame(self, phase: _Phase, reason: str, timed_out: bool) -> None:
        """Record the failure on the step that was running; the next worker skips it."""
        plugin = self._plugin(phase.key, phase.plugin) if phase.what == "check" else None
        if plugin is not None:
            plugin.status, plugin.error = "failed", reason
            plugin.budget = self.limits.check_s if timed_out else None
            return
        entry = Entry(phase.key, {}, "failed", reason)
        if timed_out and phase.what == "import":
            entry.budget = self.limits.import_s
        self.found[phase.key] = entry

    def _scan_failed(self, reason: str) -> None:
        """The worker failed before any plugin ran: every source left is unknown this time
        (and not cached: the next run tries again)."""
        for key in self.todo - set(self.found):
            self.found[key] = Entry(key, {}, "failed", reason)
            self.transient.add(key)


def _when(phase: _Phase) -> str:
    if phase.what == "import":
        return "at import"
    if phase.what == "check":
        return "during its conformance check"
    return f"after its {'conformance check' if phase.after == 'check' else 'import'}"
