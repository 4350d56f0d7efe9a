"""Built-in learning-rate schedules, as closed forms of PyTorch's lr_scheduler classes.

``lr(base_lr, t)`` is the learning rate after t completed epochs (or steps, when ``per`` is
"step"). A closed form, unlike PyTorch's step-by-step updates, lets the session jump to any step
and lets the app plot the whole schedule in advance.
"""

import math

from gradient_lab.engine.plugin_api import LRSchedule, Param

PER = Param(
    "per", "str", "epoch", "count t in epochs or in optimizer steps", choices=("epoch", "step")
)


class Constant(LRSchedule):
    name = "constant"
    params = (PER,)
    formula = r"\eta_t = \eta_0"
    teaching = "The learning rate never changes."

    def lr(self, base_lr: float, t: int) -> float:
        return base_lr


class Step(LRSchedule):
    name = "step"
    params = (
        Param("step_size", "int", 30, "epochs (or steps) between two cuts", low=1),
        Param("gamma", "float", 0.1, "factor applied at each cut", low=0.0),
        PER,
    )
    formula = r"\eta_t = \eta_0\,\gamma^{\lfloor t / s \rfloor}"
    teaching = (
        "Train with a large learning rate, then cut it by a factor every step_size epochs: the "
        "loss often drops suddenly right after each cut."
    )

    def lr(self, base_lr: float, t: int) -> float:
        return base_lr * self.hp["gamma"] ** (t // self.hp["step_size"])


class Exponential(LRSchedule):
    name = "exponential"
    params = (Param("gamma", "float", 0.95, "factor applied every epoch (or step)", low=0.0), PER)
    formula = r"\eta_t = \eta_0\,\gamma^{t}"
    teaching = "The learning rate shrinks by the same factor after every epoch: a smooth decay."

    def lr(self, base_lr: float, t: int) -> float:
        return base_lr * self.hp["gamma"] ** t


class Cosine(LRSchedule):
    name = "cosine"
    params = (
        Param("t_max", "int", 100, "epochs (or steps) from the full rate to eta_min", low=1),
        Param("eta_min", "float", 0.0, "the lowest learning rate", low=0.0),
        PER,
    )
    formula = (
        r"\eta_t = \eta_{min} + \tfrac12(\eta_0 - \eta_{min})"
        r"\left(1 + \cos\frac{\pi t}{T_{max}}\right)"
    )
    teaching = (
        "The learning rate follows half a cosine wave from its start value down to eta_min at "
        "t_max: slow decay at first, fast in the middle, gentle landing. After t_max it rises "
        "again along the same wave, as PyTorch's CosineAnnealingLR does."
    )

    def lr(self, base_lr: float, t: int) -> float:
        eta_min = self.hp["eta_min"]
        return eta_min + (base_lr - eta_min) * (1.0 + math.cos(math.pi * t / self.hp["t_max"])) / 2


class LinearWarmup(LRSchedule):
    name = "linear_warmup"
    params = (
        Param(
            "start_factor",
            "float",
            1.0 / 3.0,
            "fraction of the rate used at t = 0",
            low=0.0,
            high=1.0,
            low_inclusive=False,
        ),
        Param(
            "end_factor",
            "float",
            1.0,
            "fraction of the rate reached at total_iters",
            low=0.0,
            high=1.0,
        ),
        Param("total_iters", "int", 5, "epochs (or steps) the ramp lasts", low=1),
        PER,
    )
    formula = r"\eta_t = \eta_0\left(f_s + (f_e - f_s)\,\frac{\min(t, T)}{T}\right)"
    teaching = (
        "Start with a fraction of the learning rate and raise it in a straight line over the first "
        "few epochs, so the first large, noisy gradients cannot throw the weights far off."
    )

    def lr(self, base_lr: float, t: int) -> float:
        start, end, total = self.hp["start_factor"], self.hp["end_factor"], self.hp["total_iters"]
        return base_lr * (start + (end - start) * min(t, total) / total)


PLUGINS = [Constant, Step, Exponential, Cosine, LinearWarmup]
