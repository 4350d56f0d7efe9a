"""How long one forward and backward pass of the LSTM layer takes next to PyTorch's nn.LSTM.

Not a test: run ``python -m tests.bench_lstm`` from the repository. Both sides work in float64
on the calling thread only (NumPy's BLAS and PyTorch are limited to one thread); every pass is
timed on its own and the fastest of many is reported, which is what a busy machine disturbs
least. The shape is a small classroom sequence task: B = 32, T = 20, F = 8, H = 32.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads its BLAS
os.environ.setdefault("OMP_NUM_THREADS", "1")

import time

import numpy as np

from gradient_lab.engine.loading.discovery import default_registry
from gradient_lab.engine.model.single import SingleLayer

BATCH, STEPS, FEATURES, UNITS = 32, 20, 8, 32
REPEATS = 500


def fastest(run, repeats=REPEATS):
    """The fastest of ``repeats`` timed calls (after one untimed call), and the median."""
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times), float(np.median(times))


def main():
    import torch

    torch.set_num_threads(1)
    registry = default_registry()
    rng = np.random.default_rng(0)
    layer = SingleLayer(
        registry.create("layer", "lstm", units=UNITS),
        (STEPS, FEATURES),
        registry.create,
        registry.create("initializer", "xavier_uniform"),
        rng,
    )
    x = rng.normal(size=(BATCH, STEPS, FEATURES))
    dy = rng.normal(size=(BATCH, STEPS, UNITS))

    def ours():
        layer.forward(x, training=True)
        layer.backward(dy)

    lstm = torch.nn.LSTM(FEATURES, UNITS, batch_first=True, dtype=torch.float64)
    xt, dyt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dy)

    def theirs():
        lstm.zero_grad()
        xt.grad = None
        out, _ = lstm(xt)
        out.backward(dyt)

    (our_min, our_median), (their_min, their_median) = fastest(ours), fastest(theirs)
    print(f"LSTM forward + backward, B={BATCH} T={STEPS} F={FEATURES} H={UNITS}, float64")
    print(f"  Gradient Lab   {our_min * 1e6:8.0f} us fastest, {our_median * 1e6:8.0f} us median")
    print(
        f"  PyTorch (1 th) {their_min * 1e6:8.0f} us fastest, {their_median * 1e6:8.0f} us median"
    )
    print(f"  ratio (Gradient Lab / PyTorch): {our_min / their_min:.2f} fastest, "
          f"{our_median / their_median:.2f} median")  # fmt: skip


if __name__ == "__main__":
    main()
