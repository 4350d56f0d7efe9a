"""The user-facing error of an experiment: a message, the field it is about and the file."""

from __future__ import annotations

from gradient_lab.engine.plugin_api import PluginError

__all__ = ["ExperimentError"]


class ExperimentError(PluginError):
    """One user-facing mistake in an experiment.

    ``field`` is its path ("training.optimizer.lr"; "" for the whole file), ``source`` the file
    or "<text>" ("" while not yet known: the caller that knows the file adds it with
    ``in_file``), and ``detail`` the message without the source, for a form beside the field.
    """

    def __init__(self, message: str, field: str = "", source: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.source = source
        self.detail = detail or message

    def in_file(self, source: str) -> ExperimentError:
        """This error with its file named in front (unchanged when it names one already)."""
        if self.source:
            return self
        return ExperimentError(f"{source}: {self}", self.field, source, self.detail)
