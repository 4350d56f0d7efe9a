"""A run kept as what reproduces it: the experiment, the edits made while it trained and the
step it reached. Training is exact, so replaying those rebuilds the run bit for bit; the app
autosaves this (one small file, written atomically) and recovers from it after a crash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradient_lab.engine.files import atomic_write_text, json_text
from gradient_lab.engine.training.edits import Edit, edit_from_record, edit_record
from gradient_lab.engine.training.errors import ExperimentError
from gradient_lab.engine.training.experiment import (
    Experiment,
    experiment_to_toml,
    parse_experiment,
)

RECORD_SCHEMA = 1


@dataclass(frozen=True)
class RecordedRun:
    experiment: Experiment
    edits: list[Edit]
    step: int
    source: str  # the experiment file the run was opened from ("" for none)
    saved_at: float  # seconds since the epoch


def write_recorded_run(session: Any, path: str | Path, source: str, saved_at: float) -> None:
    """Write ``session``'s run to ``path`` atomically (the old record or the whole new one)."""
    path = Path(path)
    record = {
        "schema": RECORD_SCHEMA,
        "source": source,
        "saved_at": saved_at,
        "step": int(session.step),
        "edits": [edit_record(e) for e in session.edits.edits],
        "experiment": experiment_to_toml(session.experiment, path.parent),
    }
    atomic_write_text(path, json_text(record))


def read_recorded_run(path: str | Path, registry: Any = None) -> RecordedRun:
    """The run recorded at ``path``; a file that cannot be one raises an ExperimentError
    naming the file and the field."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExperimentError(f"{path}: not a recorded run ({exc})", "", str(path)) from None
    if not isinstance(record, dict) or record.get("schema") != RECORD_SCHEMA:
        raise ExperimentError(f"{path}: schema: expected {RECORD_SCHEMA}", "schema", str(path))
    step, edits = record.get("step"), record.get("edits")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ExperimentError(f"{path}: step = {step!r}: expected a whole number >= 0", "step")
    if not isinstance(edits, list):
        raise ExperimentError(f"{path}: edits: expected a list of edits", "edits", str(path))
    try:
        parsed = [edit_from_record(e, f"edits[{i}]") for i, e in enumerate(edits)]
    except ExperimentError as exc:
        raise ExperimentError(f"{path}: {exc}", exc.field, str(path)) from None
    text = record.get("experiment")
    if not isinstance(text, str):
        raise ExperimentError(f"{path}: experiment: expected the experiment's TOML text", "")
    experiment = parse_experiment(
        text, registry, source=f"{path} (experiment)", base_dir=path.parent
    )
    saved_at = record.get("saved_at")
    return RecordedRun(
        experiment,
        parsed,
        step,
        str(record.get("source", "")),
        float(saved_at) if isinstance(saved_at, (int, float)) else 0.0,
    )
