"""The model: layer plugins in order, their weights packed into one flat vector."""

from gradient_lab.engine.model.model import Model, Slot

__all__ = ["Model", "Slot"]
