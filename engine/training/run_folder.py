"""The output folder of a headless run: its files, written as one consistent set.

A run writes ``history.csv``, ``params_init.npz``, ``params.npz``, ``experiment.toml``,
``summary.json`` and, last, ``manifest.json``, which lists every other file with its size, its
SHA-256 and the step it belongs to. Files that existed keep their permissions, and so does the
folder.

A folder of the run's own (new, empty, or holding an earlier run's outputs only) is written as a
whole: each set (a checkpoint during training, or the final one) goes into a hidden folder beside
it, ``.NAME.tmp-PID-RANDOM``, which is swapped into place in one step. A process killed at any
moment leaves the previous complete set or the new one, never a mixture.

A folder that holds other files too (or is the working folder, a mount point such as a
container's volume, or inside a folder one may not write in) cannot be swapped: there the new
files are written under temporary names, renamed into place one after the other and the
manifest renamed last. A kill while the files are written leaves the previous set; only a kill
during the renames (microseconds) can leave a mixture, which ``verify`` detects.

The folder is checked before training (``RunFolder.prepare``): a file where the folder should
be, a parent folder that is missing or a folder one may not write in are one-line errors.
Hidden folders and files left by an earlier run that was killed are removed then; when such a
run was killed between the two renames of a swap (on a system that cannot swap in one step),
the newest complete set is put back first.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gradient_lab.engine.files import (
    create_file,
    existing_mode,
    fsync_folder,
    json_text,
    npz_bytes,
    replace_folder,
    temporary_name,
)
from gradient_lab.engine.plugin_api import PluginError
from gradient_lab.engine.training.experiment import experiment_to_toml

__all__ = [
    "MANIFEST",
    "OUTPUT_FILES",
    "HistoryCsv",
    "RunFolder",
    "RunFolderError",
    "run_files",
    "summary",
    "verify",
]

OUTPUT_FILES = ("history.csv", "params_init.npz", "params.npz", "experiment.toml", "summary.json")
MANIFEST = "manifest.json"
FORMAT = "gradient-lab run"
VERSION = 1
_LEFTOVER = re.compile(r"\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-[0-9a-f]+")


class RunFolderError(PluginError):
    """The output folder cannot be used, or a folder is not a complete set of outputs."""


# --------------------------------------------------------------------------------- contents


class HistoryCsv:
    """``history.csv`` of a session, one row per step; the rows already written are kept, so a
    checkpoint formats only the steps since the last one."""

    def __init__(self) -> None:
        self._header: list[str] = []
        self._rows: list[str] = []
        self._steps = np.zeros(0)

    def text(self, session: Any) -> str:
        epochs = {r["step"]: r for r in session.history.epochs}
        extra = _epoch_columns(session.history.epochs)
        header = ["step", "epoch", "train_loss", *extra]
        steps = session.history.steps.array()
        kept = len(self._rows)
        if header != self._header or not np.array_equal(steps[:kept, 0], self._steps):
            self._header, self._rows, kept = header, [], 0  # new columns, or a thinned history
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for step, epoch, loss in steps[kept:]:
            done = int(step) + 1
            record = epochs.get(done, {})
            values = [_scalar_text(record.get(k, "")) for k in extra]
            writer.writerow([done, int(epoch), repr(float(loss)), *values])
        self._rows.extend(out.getvalue().splitlines(keepends=True))
        self._steps = steps[:, 0].copy()
        head = io.StringIO()
        csv.writer(head, lineterminator="\n").writerow(header)
        return head.getvalue() + "".join(self._rows)


def _epoch_columns(records: list[dict[str, Any]]) -> list[str]:
    """Validation loss and scalar metrics, in the order they first appear."""
    keys = [k for r in records for k in r if k not in ("epoch", "step", "lr", "train_loss")]
    last = records[-1] if records else {}
    return list(dict.fromkeys(k for k in keys if not isinstance(last.get(k, 0.0), list)))


def _scalar_text(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if hasattr(value, "tolist"):
        return json.dumps(value.tolist())
    return str(value)


def summary(
    session: Any, setup_s: float, train_s: float, total_steps: int, complete: bool
) -> dict[str, Any]:
    """What ``summary.json`` holds (NaN and infinities become null when written)."""
    last = session.history.epochs[-1] if session.history.epochs else {}
    return {
        "seed": session.experiment.seed,
        "steps": session.step,
        "epochs": session.epoch,
        "planned_steps": total_steps,
        "complete": complete,
        "n_params": session.model.n_params,
        "fused": session.fused is not None,
        "final": {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in last.items()},
        "diverged": None if session.diverged is None else session.diverged.describe(),
        "setup_seconds": round(setup_s, 4),
        "train_seconds": round(train_s, 4),
    }


def run_files(
    session: Any, history: HistoryCsv, folder: Path, info: Mapping[str, Any]
) -> dict[str, bytes]:
    """The contents of every output file for the session's current step."""
    return {
        "history.csv": history.text(session).encode("utf-8"),
        "params_init.npz": npz_bytes(session.initial_params),
        "params.npz": npz_bytes(session.parameters()),
        "experiment.toml": experiment_to_toml(session.experiment, folder).encode("utf-8"),
        "summary.json": json_text(info).encode("utf-8"),
    }


def manifest(files: Mapping[str, bytes], step: int, info: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "step": step,
        **info,
        "files": {
            name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "step": step}
            for name, data in files.items()
        },
    }


def verify(folder: str | Path) -> dict[str, Any]:
    """The manifest of a complete, consistent output folder; RunFolderError says what is wrong
    (a missing manifest, a file missing, or one of another size or content than listed)."""
    path = Path(folder)
    try:
        listed = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunFolderError(f"{path}: no readable {MANIFEST} ({exc})") from None
    if not isinstance(listed, dict) or listed.get("format") != FORMAT:
        raise RunFolderError(f"{path}: {MANIFEST} is not a run manifest")
    for name, entry in listed.get("files", {}).items():
        try:
            data = (path / name).read_bytes()
        except OSError:
            raise RunFolderError(f"{path}: {name} is listed in {MANIFEST} but missing") from None
        if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise RunFolderError(
                f"{path}: {name} is not the file of step {entry['step']} listed in {MANIFEST}"
            )
    return listed


# ----------------------------------------------------------------------------------- folder


@dataclass
class RunFolder:
    """Where a run writes; ``prepare`` checks it, ``write`` puts one complete set in place."""

    target: Path  # absolute, links resolved
    shown: str  # as the user wrote it, for messages
    in_place: bool = False

    @classmethod
    def prepare(cls, folder: str | Path, label: str = "output folder") -> RunFolder:
        """Check the folder before training and clear what a killed run left beside it."""
        shown = f"{label} {folder}"
        try:
            return cls._prepare(Path(folder), shown)
        except OSError as exc:  # a folder on the way that one may not enter, a full disk, ...
            where = f" {exc.filename}" if exc.filename else ""
            raise RunFolderError(
                f"{shown}: cannot use{where} ({exc.strerror or exc}); expected a folder you "
                "may write in"
            ) from None

    @classmethod
    def _prepare(cls, folder: Path, shown: str) -> RunFolder:
        target = Path(os.path.realpath(folder.expanduser()))
        parent = target.parent
        if target.exists() and not target.is_dir():
            raise RunFolderError(
                f"{shown}: is a file, not a folder; expected a new folder, an empty one or an "
                "earlier run's output folder"
            )
        if not parent.exists():
            raise RunFolderError(
                f"{shown}: the folder {parent} does not exist; create it first (only the "
                "output folder itself is created)"
            )
        if not parent.is_dir():
            raise RunFolderError(f"{shown}: {parent} is a file, not a folder")
        run = cls(target, shown)
        if not target.exists():
            run._check_writable(parent)
        else:
            cwd = Path.cwd().resolve()
            run.in_place = (
                run._holds_other_files()
                or cwd == target
                or target in cwd.parents
                or os.stat(target).st_dev != os.stat(parent).st_dev
                or run._cannot_write(parent) is not None
            )
            if run.in_place or not os.access(target, os.W_OK | os.X_OK):
                run._check_writable(target)
        run.clean_leftovers()
        return run

    def _cannot_write(self, folder: Path) -> OSError | None:
        """Make and remove what a write will make there (a folder beside the target, or a
        temporary file inside it): None, or why that failed."""
        try:
            if folder == self.target.parent:
                probe = temporary_name(self.target, "tmp")
                os.mkdir(probe)
                os.rmdir(probe)
            else:
                probe = temporary_name(folder / MANIFEST)
                with create_file(probe):
                    pass
                probe.unlink()
        except OSError as exc:
            return exc
        return None

    def _check_writable(self, folder: Path) -> None:
        problem = self._cannot_write(folder)
        if problem is not None:
            raise RunFolderError(
                f"{self.shown}: cannot write in {folder} ({problem.strerror or problem}); "
                "expected a folder you may write in"
            )

    def _holds_other_files(self) -> bool:
        known = {*OUTPUT_FILES, MANIFEST}
        return any(
            name not in known and not _leftover_file(name) for name in os.listdir(self.target)
        )

    # ------------------------------------------------------------------------ leftovers
    def leftovers(self) -> list[Path]:
        """Hidden folders beside the target left by runs that no longer exist."""
        found = []
        for entry in self.target.parent.iterdir():
            match = _LEFTOVER.fullmatch(entry.name)
            if match and match["name"] == self.target.name and not _alive(int(match["pid"])):
                found.append(entry)
        return sorted(found)

    def clean_leftovers(self) -> None:
        """Put back the newest complete set if a killed swap left the target missing, then
        remove the rest (and stray temporary files inside the target)."""
        stale = self.leftovers()
        if not self.target.exists():
            complete = []
            for folder in stale:
                try:
                    complete.append((int(verify(folder).get("step", 0)), folder))
                except RunFolderError:
                    continue
            if complete:
                best = max(complete)[1]
                os.rename(best, self.target)
                stale.remove(best)
        for folder in stale:
            shutil.rmtree(folder, ignore_errors=True)
        if self.target.is_dir():
            for name in os.listdir(self.target):
                if _leftover_file(name):
                    (self.target / name).unlink(missing_ok=True)

    # ---------------------------------------------------------------------------- write
    def write(self, files: Mapping[str, bytes], step: int, info: Mapping[str, Any]) -> None:
        """Put ``files`` and their manifest in place as one set."""
        listed = json_text(manifest(files, step, info)).encode("utf-8")
        if self.in_place:
            self._write_in_place({**files, MANIFEST: listed})
            return
        staging = temporary_name(self.target, "tmp")
        os.mkdir(staging)
        try:
            for name, data in [*files.items(), (MANIFEST, listed)]:
                with create_file(staging / name, existing_mode(self.target / name)) as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
            mode = existing_mode(self.target)
            if mode is not None:
                os.chmod(staging, mode)
            fsync_folder(staging)
            replace_folder(staging, self.target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _write_in_place(self, files: Mapping[str, bytes]) -> None:
        """Every file under a temporary name first, then the renames, the manifest last."""
        written: list[tuple[Path, Path]] = []
        try:
            for name, data in files.items():
                final = self.target / name
                tmp = temporary_name(final)
                written.append((tmp, final))
                with create_file(tmp, existing_mode(final)) as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
        except BaseException:
            for tmp, _ in written:
                tmp.unlink(missing_ok=True)
            raise
        for tmp, final in written:  # the manifest is the last of them
            os.replace(tmp, final)
        fsync_folder(self.target)


def _leftover_file(name: str) -> bool:
    """A temporary file of an atomic write of one of the outputs by a process that is gone
    (``.params.npz.tmp-PID-RANDOM``, or the older ``.params.npz.XXXXXXXX.tmp``)."""
    known = (*OUTPUT_FILES, MANIFEST)
    match = _LEFTOVER.fullmatch(name)
    if match:
        return match["kind"] == "tmp" and match["name"] in known and not _alive(int(match["pid"]))
    return name.endswith(".tmp") and any(name.startswith(f".{k}.") for k in known)


def _alive(pid: int) -> bool:
    """Whether a process with this id runs (POSIX); elsewhere every other process counts as
    gone, so leftovers are always cleared."""
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
