"""Finding and loading plugins from three sources, each plugin inside its own guard.

Sources, in precedence order: the built-in package and installed packages (both through the
entry-point group ``gradient_lab.plugins``), then drop-in ``.py`` files from the user folder. A
plugin that fails to import or breaks the contract is kept as a failed record with its reason and
skipped; nothing here ever stops start-up.

Built-ins are trusted and imported here. A third party's code first runs in the scan's worker
process (``scan.py``), which may loop, exit or crash without harm; what it found (the manifest,
cached while the files are unchanged) makes the records here, and a third-party module is
imported into this process only when one of its plugins is first used, with its output captured
and the working directory restored (``guard.py``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import platformdirs

from gradient_lab.engine.loading.guard import run_guarded, thread_message
from gradient_lab.engine.loading.manifest import Entry, Item
from gradient_lab.engine.loading.scan import scan
from gradient_lab.engine.plugin_api import (
    API_VERSION,
    KIND_BASES,
    KINDS,
    LAYER_API_VERSION,
    Param,
    Plugin,
    PluginError,
)

ENTRY_POINT_GROUP = "gradient_lab.plugins"
BUILTIN_DIST = "gradient-lab"
ENV_PLUGINS_DIR = "GRADIENT_LAB_PLUGINS"


class PluginRecord:
    """One plugin as discovered: usable (status "ok") or failed with a one-line reason.

    A third party's class is imported on first use of ``cls`` (the scan has listed it already);
    when that import fails here, the record turns failed and ``cls`` raises PluginError."""

    def __init__(
        self,
        name: str,
        kind: str,
        source: str,  # "builtin", "package:<distribution>" or "folder"
        origin: str,  # module name or file path
        cls: type[Plugin] | None = None,
        version: str = "",
        status: str = "ok",
        error: str = "",
        detail: str = "",
        note: str = "",
    ) -> None:
        self.name, self.kind, self.source, self.origin = name, kind, source, origin
        self.version, self.status, self.error, self.detail = version, status, error, detail
        self.note = note  # what the plugin printed at import, what was undone
        # The scan's conformance verdict: None when not scanned, "" passed, else the reason.
        self.check_verdict: str | None = None
        self._cls = cls
        self._resolve: Callable[[PluginRecord], type[Plugin]] | None = None

    @property
    def cls(self) -> type[Plugin] | None:
        if self._cls is None and self._resolve is not None and self.ok:
            self._cls = self._resolve(self)
        return self._cls

    @cls.setter
    def cls(self, value: type[Plugin] | None) -> None:
        self._cls = value

    @property
    def loaded(self) -> bool:
        """Whether the class is imported into this process (a listing does not import it)."""
        return self._cls is not None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def __repr__(self) -> str:
        state = self.status if self.ok else f"{self.status}: {self.error}"
        return f"PluginRecord({self.kind} {self.name!r} from {self.source} {self.origin}, {state})"


def user_plugins_dir() -> Path:
    """The platform's user-data folder for drop-in plugins (platformdirs knows each platform's
    convention and XDG_DATA_HOME)."""
    return platformdirs.user_data_path("gradient-lab", appauthor=False) / "plugins"


def one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0] if text else type(exc).__name__


def old_import_hint(exc: BaseException) -> str:
    """The fix for a plugin written for API version 1, which imported the top-level ``engine``
    (now ``gradient_lab.engine``); empty for any other failure."""
    name = getattr(exc, "name", None) or ""
    if not isinstance(exc, ImportError) or name.split(".")[0] != "engine":
        return ""
    return (
        f"written for plugin API 1 (imports {name!r}): write "
        "`from gradient_lab.engine.plugin_api import ...` instead of "
        f"`from engine.plugin_api import ...` (plugin API {API_VERSION})"
    )


def _version_problems(cls: Any) -> list[str]:
    """API 3 changed only layers and architectures: other kinds written for API 2 still load."""
    oldest = LAYER_API_VERSION if cls.kind in ("layer", "architecture") else 2
    if cls.api_version not in range(oldest, API_VERSION + 1):
        return [f"api_version {cls.api_version!r} is not supported (this is {API_VERSION})"]
    if cls.kind == "layer" and _old_layer_signature(cls):
        return [
            "written for plugin API 2 (forward(x, training)): layers are pure since API 3: "
            "write forward(self, ctx, p, x) and backward(self, ctx, p, dy) -> (dx, grads), "
            "and declare weights in build with ctx.add_weight"
        ]
    return []


def _old_layer_signature(cls: Any) -> bool:
    try:
        names = list(inspect.signature(cls.forward).parameters)
    except (TypeError, ValueError):
        return False
    return names[1:3] == ["x", "training"]


def contract_problems(cls: Any) -> list[str]:
    """What is wrong with a plugin class's declaration (empty when it keeps the contract)."""
    if not isinstance(cls, type) or not issubclass(cls, Plugin):
        return [f"{cls!r} is not a subclass of a plugin kind base"]
    problems = []
    if cls.kind not in KINDS:
        problems.append(f"kind {cls.kind!r} is not one of {', '.join(KINDS)}")
    elif not issubclass(cls, KIND_BASES[cls.kind]):
        problems.append(f"a {cls.kind} plugin must subclass {KIND_BASES[cls.kind].__name__}")
    if not isinstance(cls.name, str) or not cls.name.replace("_", "").isalnum():
        problems.append(f"name {cls.name!r} must be letters, digits and underscores")
    problems.extend(_version_problems(cls))
    if not isinstance(cls.version, str) or not cls.version:
        problems.append("version must be a non-empty text")
    for attr in ("formula", "teaching"):
        if not isinstance(getattr(cls, attr), str):
            problems.append(f"{attr} must be a text")
    if not isinstance(cls.params, tuple) or not all(isinstance(p, Param) for p in cls.params):
        problems.append("params must be a tuple of Param")
    else:
        names = [p.name for p in cls.params]
        if len(set(names)) != len(names):
            problems.append("parameter names repeat")
        for p in cls.params:
            try:
                p.validate(p.default)
            except PluginError as exc:
                problems.append(f"default of parameter {p.name!r} is invalid: {exc}")
    if not problems:
        try:
            cls()
        except Exception as exc:
            problems.append(f"cannot be created with its defaults: {one_line(exc)}")
    return problems


class Registry:
    """Every discovered plugin, usable or failed, looked up by (kind, name)."""

    def __init__(self) -> None:
        self.records: list[PluginRecord] = []
        self._by_key: dict[tuple[str, str], PluginRecord] = {}

    # -- building
    def add_module(self, module: ModuleType | Any, source: str, origin: str) -> None:
        """Register a module's ``PLUGINS`` (or a single class, or a list of classes)."""
        if isinstance(module, ModuleType):
            classes = getattr(module, "PLUGINS", None)
            if classes is None:
                self.fail(origin, "module", source, origin, "module has no PLUGINS list")
                return
        elif isinstance(module, type):
            classes = [module]
        else:
            classes = module
        try:
            classes = list(classes)
        except TypeError:
            self.fail(origin, "module", source, origin, "PLUGINS is not a list of classes")
            return
        for cls in classes:
            self.add_class(cls, source, origin)

    def add_class(self, cls: Any, source: str, origin: str) -> None:
        name = str(getattr(cls, "name", "") or getattr(cls, "__name__", "?"))
        kind = str(getattr(cls, "kind", "") or "?")
        try:
            problems = contract_problems(cls)
        except Exception as exc:  # a broken class must not stop discovery
            problems = [one_line(exc)]
        if problems:
            self.fail(name, kind, source, origin, "; ".join(problems))
            return
        self._register(PluginRecord(name, kind, source, origin, cls, cls.version))

    def add_scanned(self, item: Item, entry: Entry) -> None:
        """Records for a third-party source from its manifest entry, imported on first use."""
        if entry.status != "ok":
            failed = self.fail(
                item.name, "module", item.source, item.origin, entry.error, entry.detail
            )
            failed.note = entry.note
            return
        loader = _ModuleLoader(item, entry.stamp)
        for plugin in entry.plugins:
            if plugin.status != "ok":
                self.fail(
                    plugin.name, plugin.kind, item.source, item.origin, plugin.error, plugin.detail
                )
                continue
            record = PluginRecord(
                plugin.name, plugin.kind, item.source, item.origin, None, plugin.version
            )
            record.note, record.check_verdict = entry.note, plugin.check
            record._resolve = functools.partial(self._load_class, loader=loader)
            loader.records.append(record)
            self._register(record)

    def _register(self, record: PluginRecord) -> None:
        key = (record.kind, record.name)
        if key in self._by_key:
            first = self._by_key[key]
            self.fail(
                record.name,
                record.kind,
                record.source,
                record.origin,
                f"name clash: {record.kind} {record.name!r} already comes from "
                f"{first.source} ({first.origin}); this one is skipped",
            )
            return
        self.records.append(record)
        self._by_key[key] = record

    def _load_class(self, record: PluginRecord, loader: _ModuleLoader) -> type[Plugin]:
        """Import a scanned plugin's module here, the first time one of its plugins is used."""
        error = loader.load()
        cls = None if error else loader.find(record.kind, record.name)
        if not error and cls is None:
            error = "its module does not declare it here (the scan found it there)"
        elif cls is not None:
            checked = run_guarded(functools.partial(contract_problems, cls))
            loader.add_note(checked.note)
            error = "; ".join(checked.value or []) or (
                one_line(checked.error) if checked.error else ""
            )
        if error or cls is None:
            self.mark_failed(record.kind, record.name, error)
            raise PluginError(f"{record.kind} {record.name!r} failed to load: {error}")
        return cls

    def fail(
        self, name: str, kind: str, source: str, origin: str, error: str, detail: str = ""
    ) -> PluginRecord:
        record = PluginRecord(name, kind, source, origin, None, "", "failed", error, detail)
        self.records.append(record)
        return record

    def mark_failed(self, kind: str, name: str, error: str) -> None:
        """A plugin that loaded but failed later (e.g. its JIT compile) is taken out of use."""
        record = self._by_key.pop((kind, name), None)
        if record is not None:
            record.status, record.error = "failed", error

    # -- lookups
    def names(self, kind: str) -> list[str]:
        return sorted(n for (k, n) in self._by_key if k == kind)

    def record(self, kind: str, name: str) -> PluginRecord:
        if kind not in KINDS:
            raise PluginError(f"unknown plugin kind {kind!r}; allowed: {', '.join(KINDS)}")
        record = self._by_key.get((kind, name))
        if record is None:
            failed = [r for r in self.records if r.kind == kind and r.name == name]
            if failed:
                raise PluginError(f"{kind} {name!r} failed to load: {failed[0].error}")
            allowed = ", ".join(self.names(kind)) or "none"
            raise PluginError(f"unknown {kind} {name!r}; available: {allowed}")
        return record

    def get(self, kind: str, name: str) -> type[Plugin]:
        cls = self.record(kind, name).cls
        assert cls is not None
        return cls

    def create(self, kind: str, name: str, **hp: Any) -> Any:
        """An instance with validated hyperparameters (PluginError names the bad one)."""
        return self.get(kind, name)(**hp)

    def failures(self) -> list[PluginRecord]:
        return [r for r in self.records if not r.ok]

    def ok_records(self, kind: str | None = None) -> list[PluginRecord]:
        return [r for r in self.records if r.ok and (kind is None or r.kind == kind)]


def _entry_points() -> Iterable[importlib.metadata.EntryPoint]:
    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


def _is_builtin(ep: importlib.metadata.EntryPoint) -> bool:
    return ep.dist is not None and ep.dist.name == BUILTIN_DIST


def _sorted_entry_points() -> list[importlib.metadata.EntryPoint]:
    """Built-in entry points first, then installed packages in a stable order."""
    return sorted(_entry_points(), key=lambda ep: (not _is_builtin(ep), ep.value))


def _load_builtins(registry: Registry) -> None:
    for ep in _sorted_entry_points():
        if not _is_builtin(ep):
            continue
        try:
            loaded = ep.load()
        except Exception as exc:
            registry.fail(
                ep.name, "module", "builtin", ep.value, one_line(exc), traceback.format_exc()
            )
            continue
        registry.add_module(loaded, "builtin", ep.value)


def load_file(path: Path) -> ModuleType:
    """Import one drop-in file under a private module name (its own guard is the caller's)."""
    # A stable name: Numba's disk cache of a plugin's compiled functions records it.
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    module_name = f"gradient_lab_dropin_{digest}_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def plugin_folders(plugins_dir: str | Path | None) -> list[Path]:
    """The drop-in folders in use: --plugins-dir, else GRADIENT_LAB_PLUGINS, else the default."""
    if plugins_dir:
        return [Path(plugins_dir)]
    env = os.environ.get(ENV_PLUGINS_DIR)
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [user_plugins_dir()]


def third_party_items(plugins_dir: str | Path | None = None) -> list[Item]:
    """Every source not shipped with Gradient Lab: installed packages' entry points, then the
    drop-in files of the folders in use (files starting with "_" are left out)."""
    items = []
    for ep in _sorted_entry_points():
        if _is_builtin(ep):
            continue
        dist = ep.dist.name if ep.dist is not None else "unknown"
        version = ep.dist.version if ep.dist is not None else ""
        items.append(Item("entry-point", ep.name, f"package:{dist}", ep.value, version))
    for folder in plugin_folders(plugins_dir):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.py")):
            if not path.name.startswith("_"):
                items.append(Item("file", path.stem, "folder", str(path)))
    return items


def load_sources(plugins_dir: str | Path | None = None, safe_mode: bool = False) -> Registry:
    """Load every plugin from every source, unchecked; failures are recorded, never raised.

    Third-party sources come from the scan (a subprocess, cached): a source that failed,
    looped, exited or crashed there is a failed record, and a plugin it found broken or
    dangerous to run is one too; the others are listed without being imported here. Whether
    they passed the conformance check is applied by ``discovery.check_third_party``."""
    registry = Registry()
    _load_builtins(registry)
    if not safe_mode:
        items = third_party_items(plugins_dir)
        for item, entry in zip(items, scan(items), strict=True):
            registry.add_scanned(item, entry)
    return registry


# -------------------------------------------------------------------- importing a third party

# Modules imported into this process by (source key, stamp): a second registry of the same,
# unchanged sources (each discover() builds one) does not import them again.
_IMPORTED: dict[tuple[str, str], ModuleType | Any] = {}


class _ModuleLoader:
    """A third-party source's module, imported here once, when first needed, inside a guard.

    ``stamp`` is the source's as scanned: a file changed since is not imported unscanned."""

    def __init__(self, item: Item, stamp: dict[str, Any]) -> None:
        self.item, self.stamp = item, stamp
        self.records: list[PluginRecord] = []  # the records of its plugins, for notes
        self.module: ModuleType | Any = None
        self.error = ""
        self.tried = False

    def load(self) -> str:
        """Import the module unless done; "" when it is usable, else the reason it is not."""
        if self.tried:
            return self.error
        self.tried = True
        if self.item.stamp() != self.stamp:
            self.error = "its file changed after the scan; list the plugins again to scan it"
            return self.error
        memo = (self.item.key, json.dumps(self.stamp, sort_keys=True))
        if memo in _IMPORTED:
            self.module = _IMPORTED[memo]
            return ""
        item = self.item

        def load() -> Any:
            if item.type == "file":
                return load_file(Path(item.origin))
            return importlib.metadata.EntryPoint(item.name, item.origin, ENTRY_POINT_GROUP).load()

        imported = run_guarded(load)
        self.add_note(imported.note)
        if imported.error is not None:
            self.error = f"import failed here, unlike in the scan: {one_line(imported.error)}"
        elif imported.threads:
            self.error = thread_message(imported.threads, "at import")
        else:
            self.module = _IMPORTED[memo] = imported.value
        return self.error

    def add_note(self, note: str) -> None:
        if note:
            for record in self.records:
                record.note = f"{record.note}\n{note}" if record.note else note

    def find(self, kind: str, name: str) -> type[Plugin] | None:
        """The module's plugin class of this kind and name, read as ``add_module`` reads it."""
        module = self.module
        classes = getattr(module, "PLUGINS", None) if isinstance(module, ModuleType) else module
        if isinstance(classes, type):
            classes = [classes]
        try:
            candidates = list(classes or [])
        except TypeError:
            return None
        for cls in candidates:
            if getattr(cls, "kind", None) == kind and getattr(cls, "name", None) == name:
                return cls
        return None
