"""A teacher's classroom settings in an experiment file: which of the app's views are hidden
and which controls are locked. The engine only reads and writes them; the app applies them.
A module of its own, free of the engine's heavier imports, so the window can name them before
the engine has loaded."""

from __future__ import annotations

from dataclasses import dataclass, field

CLASSROOM_VIEWS = (
    "editor",
    "curves",
    "step inspector",
    "weights",
    "gradients",
    "landscape",
    "curvature",
    "plugins",
    "timeline",
)
CLASSROOM_LOCKS = ("editor", "weights", "plugins")


@dataclass
class ClassroomSpec:
    """``hide`` names views (CLASSROOM_VIEWS), ``lock`` controls (CLASSROOM_LOCKS)."""

    hide: list[str] = field(default_factory=list)
    lock: list[str] = field(default_factory=list)
