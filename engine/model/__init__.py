"""The model: layer plugins in a tree by path, their weights packed into one flat vector."""

from gradient_lab.engine.model.model import Model
from gradient_lab.engine.model.tree import Node, Slot

__all__ = ["Model", "Node", "Slot"]
