"""Sequence datasets: one target at every position, for recurrent and attention models.

Inputs are (n, T, F); classification labels (n, T) and regression targets (n, T, outputs), so
the loss is scored at every position (PyTorch's mean over batch and time).
"""

import math

import numpy as np

from gradient_lab.engine.plugin_api import Dataset, Param

_N = Param("n", "int", 256, "number of sequences", low=2, high=1_000_000)
_LENGTH = Param("length", "int", 12, "positions in each sequence (T)", low=2, high=10_000)


class DelayedCopy(Dataset):
    name = "delayed_copy"
    params = (
        _N,
        _LENGTH,
        Param("classes", "int", 4, "size of the token vocabulary", low=2, high=256),
        Param("delay", "int", 2, "how many positions back the answer lies", low=0),
    )
    formula = r"y_t = x_{t-d} \ (t \ge d), \quad y_t = 0 \ (t < d)"
    teaching = (
        "Random tokens, one-hot coded; at every position the model must name the token seen d "
        "positions earlier (class 0 before that). It needs memory: a recurrent state, or "
        "attention with a causal mask and a way to tell positions apart."
    )

    def generate(self, rng):
        n, t, k, d = self.hp["n"], self.hp["length"], self.hp["classes"], self.hp["delay"]
        tokens = rng.integers(0, k, size=(n, t))
        y = np.zeros((n, t), dtype=np.int64)
        if d < t:
            y[:, d:] = tokens[:, : t - d]
        return np.eye(k)[tokens], y


class SineSequence(Dataset):
    name = "sine_sequence"
    task = "regression"
    params = (
        _N,
        _LENGTH,
        Param("noise", "float", 0.05, "standard deviation of the noise on the inputs", low=0.0),
    )
    formula = r"x_t = \sin(\omega t + \phi) + \varepsilon_t, \quad y_t = \sin(\omega (t+1) + \phi)"
    teaching = (
        "Sine waves of random frequency and phase: at every position, predict the next value. "
        "One input is not enough to know where the wave is going; the positions before are."
    )

    def generate(self, rng):
        n, t = self.hp["n"], self.hp["length"]
        omega = rng.uniform(0.3, 1.2, size=(n, 1))
        phase = rng.uniform(0.0, 2.0 * math.pi, size=(n, 1))
        steps = np.arange(t + 1)
        wave = np.sin(omega * steps + phase)
        x = wave[:, :t] + self.hp["noise"] * rng.normal(size=(n, t))
        return x[:, :, None], wave[:, 1:, None]


PLUGINS = [DelayedCopy, SineSequence]
