"""The plugin manifest: what the scan found in each third-party source, kept between runs.

A source is a drop-in file or an installed package's entry point. Its entry says whether it
imported, and per plugin its kind, name, version and status (ok, or failed with the reason),
with the verdict of the conformance check. Entries are cached in the user cache folder, keyed
by the file's resolved path, modification time and size (an entry point: its distribution and
version), so an unchanged source is never imported again to be listed. The whole cache is
dropped when the engine changes (its version, its files, Python, NumPy or Numba).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from gradient_lab.engine.files import atomic_write_text

FORMAT = 1
ENV_CACHE_DIR = "GRADIENT_LAB_PLUGIN_CACHE"
ENGINE_DIR = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Item:
    """One third-party source to scan: a drop-in file or an installed package's entry point."""

    type: str  # "file" or "entry-point"
    name: str  # the file's stem or the entry point's name
    source: str  # "folder" or "package:<distribution>"
    origin: str  # the file's path or the entry point's value
    version: str = ""  # an entry point's distribution version

    @property
    def key(self) -> str:
        if self.type == "file":
            return f"file:{Path(self.origin).resolve()}"
        return f"entry-point:{self.source}:{self.name}={self.origin}"

    def stamp(self) -> dict[str, Any]:
        """What must not change for a cached entry to stay valid."""
        if self.type != "file":
            return {"version": self.version}
        try:
            stat = Path(self.origin).stat()
        except OSError:
            return {"missing": True}
        return {"mtime_ns": stat.st_mtime_ns, "size": stat.st_size}


@dataclass
class PluginEntry:
    """One plugin class found in a source.

    ``status`` "failed" means unusable (a broken declaration, or its check looped, ended the
    process or crashed); ``check`` is the conformance check's verdict: None when not checked,
    "" when it passed, else the reason it failed."""

    name: str
    kind: str
    version: str = ""
    status: str = "ok"
    error: str = ""
    detail: str = ""
    check: str | None = None
    budget: float | None = None  # the time limit a timed-out check had


@dataclass
class Entry:
    """A source as scanned: imported ("ok") or failed with the reason, and its plugins."""

    key: str
    stamp: dict[str, Any]
    status: str = "ok"
    error: str = ""
    detail: str = ""
    note: str = ""
    budget: float | None = None  # the time limit a timed-out import had
    plugins: list[PluginEntry] = field(default_factory=list)

    def rows(self, item: Item) -> list[dict[str, Any]]:
        """The manifest's view: per plugin kind, name, version, source, file, status, reason."""
        if self.status != "ok":
            plugins = [PluginEntry(item.name, "module", "", "failed", self.error)]
        else:
            plugins = self.plugins
        return [
            {
                "kind": p.kind,
                "name": p.name,
                "version": p.version,
                "source": item.source,
                "file": item.origin,
                "status": "ok" if p.status == "ok" and not p.check else "failed",
                "reason": p.error or p.check or "",
            }
            for p in plugins
        ]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        plugins = [PluginEntry(**p) for p in data.get("plugins", [])]
        return cls(**{**data, "plugins": plugins})


def reusable(
    entry: Entry | None, item: Item, stamp: dict[str, Any], import_s: float, check_s: float
) -> bool:
    """A cached entry stands unless its source changed or it timed out under a shorter time
    limit than the ones in force now (``import_s`` for an import, ``check_s`` for a check)."""
    if entry is None or entry.key != item.key or entry.stamp != stamp:
        return False
    if entry.budget is not None and entry.budget < import_s:
        return False
    return all(p.budget is None or p.budget >= check_s for p in entry.plugins)


# ------------------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    """GRADIENT_LAB_PLUGIN_CACHE, else the platform's user cache folder."""
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env)
    return platformdirs.user_cache_path("gradient-lab", appauthor=False) / "plugin-manifests"


def cache_path() -> Path:
    """One file per installation of the engine (each virtual environment keeps its own)."""
    where = f"{sys.prefix}\n{ENGINE_DIR}"
    return cache_dir() / f"manifest-{hashlib.sha1(where.encode()).hexdigest()[:12]}.json"


@functools.cache
def engine_stamp() -> str:
    """Changes whenever a check's verdict could: the engine's files, Python and the libraries."""
    parts = [str(FORMAT), sys.version]
    for dist in ("gradient-lab", "numpy", "numba", "scipy"):
        try:
            parts.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{dist} missing")
    for path in sorted(ENGINE_DIR.rglob("*.py")):
        with contextlib.suppress(OSError):
            stat = path.stat()
            parts.append(f"{path.relative_to(ENGINE_DIR)} {stat.st_mtime_ns} {stat.st_size}")
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()


def read_cache(stamp: str) -> dict[str, Entry]:
    """The cached entries by key; empty when there is none, it is unreadable or stale."""
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
        if data.get("engine") != stamp:
            return {}
        return {key: Entry.from_json(value) for key, value in data["entries"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def write_cache(stamp: str, entries: dict[str, Entry]) -> None:
    """Store ``entries`` beside the cached ones; a file's entry goes when the file is gone.
    A cache that cannot be written is skipped: the next run scans again."""
    kept = read_cache(stamp)
    kept.update(entries)
    kept = {
        key: entry
        for key, entry in kept.items()
        if not key.startswith("file:") or Path(key.removeprefix("file:")).exists()
    }
    data = {
        "format": FORMAT,
        "engine": stamp,
        "entries": {key: entry.to_json() for key, entry in sorted(kept.items())},
    }
    with contextlib.suppress(OSError):
        atomic_write_text(cache_path(), json.dumps(data, indent=1) + "\n")
