"""Finding and loading plugins from three sources, each plugin inside its own guard.

Sources, in precedence order: the built-in package and installed packages (both through the
entry-point group ``gradient_lab.plugins``), then drop-in ``.py`` files from the user folder. A
plugin that fails to import or breaks the contract is kept as a failed record with its reason and
skipped; nothing here ever stops start-up.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import platformdirs

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


@dataclass
class PluginRecord:
    """One plugin as discovered: usable (status "ok") or failed with a one-line reason."""

    name: str
    kind: str
    source: str  # "builtin", "package:<distribution>" or "folder"
    origin: str  # module name or file path
    cls: type[Plugin] | None = None
    version: str = ""
    status: str = "ok"
    error: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


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
        key = (kind, name)
        if key in self._by_key:
            first = self._by_key[key]
            self.fail(
                name,
                kind,
                source,
                origin,
                f"name clash: {kind} {name!r} already comes from "
                f"{first.source} ({first.origin}); this one is skipped",
            )
            return
        record = PluginRecord(name, kind, source, origin, cls, cls.version)
        self.records.append(record)
        self._by_key[key] = record

    def fail(
        self, name: str, kind: str, source: str, origin: str, error: str, detail: str = ""
    ) -> None:
        record = PluginRecord(name, kind, source, origin, None, "", "failed", error, detail)
        self.records.append(record)

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


def _load_entry_points(registry: Registry, safe_mode: bool) -> None:
    """Built-in entry points first, then installed packages in a stable order."""
    for ep in sorted(_entry_points(), key=lambda ep: (not _is_builtin(ep), ep.value)):
        dist = ep.dist.name if ep.dist is not None else "unknown"
        builtin = _is_builtin(ep)
        if safe_mode and not builtin:
            continue
        source = "builtin" if builtin else f"package:{dist}"
        try:
            loaded = ep.load()
        except Exception as exc:
            registry.fail(
                ep.name, "module", source, ep.value, one_line(exc), traceback.format_exc()
            )
            continue
        registry.add_module(loaded, source, ep.value)


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


def _load_folder(registry: Registry, folder: Path) -> None:
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            module = load_file(path)
        except BaseException as exc:  # SystemExit in a drop-in must not end the app either
            reason = old_import_hint(exc) or one_line(exc)
            registry.fail(path.stem, "module", "folder", str(path), reason, traceback.format_exc())
            continue
        registry.add_module(module, "folder", str(path))


def plugin_folders(plugins_dir: str | Path | None) -> list[Path]:
    """The drop-in folders in use: --plugins-dir, else GRADIENT_LAB_PLUGINS, else the default."""
    if plugins_dir:
        return [Path(plugins_dir)]
    env = os.environ.get(ENV_PLUGINS_DIR)
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [user_plugins_dir()]


def load_sources(plugins_dir: str | Path | None = None, safe_mode: bool = False) -> Registry:
    """Load every plugin from every source, unchecked; failures are recorded, never raised."""
    registry = Registry()
    _load_entry_points(registry, safe_mode)
    if not safe_mode:
        for folder in plugin_folders(plugins_dir):
            _load_folder(registry, folder)
    return registry
