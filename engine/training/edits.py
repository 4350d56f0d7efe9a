"""Edits to a running session, kept as a log so a rewind and a replay reproduce the edited run.

An edit sets one value at a step boundary: a weight, a hyperparameter of the optimizer, of a
parameter group or of a regularizer, or the batch size. It applies at the boundary after
``step`` steps, every time the session passes that boundary (replays included): edits set
values, so applying one again changes nothing. A new edit drops the logged edits that were made
later in the run (after a rewind, the old future), as recording over a tape does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gradient_lab.engine.training.errors import ExperimentError


@dataclass(frozen=True)
class Edit:
    """``kind`` is "weight" (``target`` a parameter key, ``index`` the element), "hyperparameter"
    (``target`` "optimizer", a parameter group or "regularizers[i]", ``name`` the parameter) or
    "batch_size"."""

    step: int  # applies at the boundary after this many steps
    made_at: int  # the step the session was at when the edit was made
    kind: str
    target: str = ""
    name: str = ""
    index: tuple[int, ...] = ()
    value: Any = None

    def describe(self) -> str:
        if self.kind == "weight":
            where = ", ".join(str(i) for i in self.index)
            return f"step {self.step}: {self.target}[{where}] = {self.value:g}"
        if self.kind == "batch_size":
            return f"step {self.step}: batch_size = {self.value}"
        return f"step {self.step}: {self.target}.{self.name} = {self.value!r}"


class EditLog:
    """The edits of a run in the order they were made."""

    def __init__(self) -> None:
        self.edits: list[Edit] = []

    def add(self, edit: Edit) -> None:
        self.edits = [e for e in self.edits if e.made_at <= edit.made_at]
        self.edits.append(edit)

    def at(self, step: int) -> list[Edit]:
        return [e for e in self.edits if e.step == step]

    def before(self, step: int) -> list[Edit]:
        return [e for e in self.edits if e.step < step]

    def next_after(self, step: int) -> int | None:
        """The first step after ``step`` at which an edit applies."""
        later = [e.step for e in self.edits if e.step > step]
        return min(later) if later else None

    def copy_until(self, step: int) -> EditLog:
        """The edits made up to ``step`` (a fork's history)."""
        log = EditLog()
        log.edits = [e for e in self.edits if e.made_at <= step]
        return log


EDIT_KINDS = ("weight", "hyperparameter", "batch_size")


def edit_record(edit: Edit) -> dict[str, Any]:
    """The edit as plain JSON values (an autosave keeps a run as its edits and its step)."""
    return {
        "step": edit.step,
        "made_at": edit.made_at,
        "kind": edit.kind,
        "target": edit.target,
        "name": edit.name,
        "index": list(edit.index),
        "value": edit.value,
    }


def edit_from_record(record: Any, where: str) -> Edit:
    """An edit read back from ``edit_record``'s values; a value that cannot be one names the
    field (``where`` says which record of which file)."""
    if not isinstance(record, dict):
        raise ExperimentError(f"{where}: expected a table of an edit's fields", where)
    for key in ("step", "made_at"):
        value = record.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ExperimentError(f"{where}.{key} = {value!r}: expected a whole number >= 0", where)
    kind = record.get("kind")
    if kind not in EDIT_KINDS:
        raise ExperimentError(
            f"{where}.kind = {kind!r}: expected one of {', '.join(EDIT_KINDS)}", where
        )
    index = record.get("index", [])
    if not isinstance(index, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in index
    ):
        raise ExperimentError(f"{where}.index = {index!r}: expected a list of whole numbers", where)
    return Edit(
        record["step"],
        record["made_at"],
        kind,
        str(record.get("target", "")),
        str(record.get("name", "")),
        tuple(index),
        record.get("value"),
    )


def edit_targets(session: Any) -> dict[str, Any]:
    """The plugins whose hyperparameters an edit may set, by the name an edit gives them."""
    targets: dict[str, Any] = {"optimizer": session.optimizer}
    for i, reg in enumerate(session.regularizers):
        targets[f"regularizers[{i}]"] = reg
    if session.owned is not None:
        for group in session.owned.groups:
            targets[group.name] = group.optimizer
    return targets


def hyper_state(session: Any) -> dict[str, Any]:
    """Copies of every editable value, to return to on a rewind."""
    state = {name: dict(plugin.hp) for name, plugin in edit_targets(session).items()}
    state["base_lr"] = session.base_lr
    state["batch_size"] = session.batch_size
    if session.owned is not None:
        state["group_lr"] = {g.name: g.base_lr for g in session.owned.groups}
    return state


def restore_hypers(session: Any, state: dict[str, Any]) -> None:
    for name, plugin in edit_targets(session).items():
        plugin.hp.clear()
        plugin.hp.update(state[name])
    session.base_lr = state["base_lr"]
    if session.owned is not None:
        for group in session.owned.groups:
            group.base_lr = state["group_lr"][group.name]
    if state["batch_size"] != session.batch_size:
        session.set_batch_size_now(state["batch_size"])
    session.refresh_rules()


def apply_edit(session: Any, edit: Edit) -> None:
    """Set the edit's value in the session (validated when the edit was made)."""
    if edit.kind == "weight":
        slot = next(s for s in session.model.slots if s.key == edit.target)
        session.model.view(session.model.theta, slot)[edit.index] = edit.value
    elif edit.kind == "batch_size":
        session.set_batch_size_now(int(edit.value))
    else:
        plugin = edit_targets(session)[edit.target]
        plugin.hp[edit.name] = edit.value
        if edit.name == "lr":
            if edit.target == "optimizer":
                session.base_lr = float(edit.value)
            elif session.owned is not None:
                session.owned.group(edit.target).base_lr = float(edit.value)
        session.refresh_rules()
