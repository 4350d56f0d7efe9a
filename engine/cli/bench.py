"""``gradient-lab bench``: training steps per second on two fixed workloads and seconds per loss
landscape grid on a third, optionally next to PyTorch (CPU, 1 thread) started from the same data
and weights.

A step is forward + loss + backward + update on one minibatch. Gradient Lab runs with per-epoch
evaluation off, so a timed round is one compiled call. A landscape grid (W5) is the loss at every
point of a 41 x 41 filter-normalized random plane around W2's weights after 2 epochs, on the full
data set. With ``--peers`` the two engines take turns (Gradient Lab round, PyTorch round, ...) and
each reports the median of its rounds; ``ratio`` is always Gradient Lab's speed over PyTorch's. A
record gets a "note" when a workload could not use the compiled path.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

EXIT_USER_ERROR = 2
ROUND_SECONDS = 1.0  # a full run sizes each round to take about this long
ROUNDS = 5


@dataclass(frozen=True)
class Workload:
    name: str
    toml: str
    activations: tuple[str, ...]  # per layer, for the PyTorch twin
    loss: str  # "mse" or "cross_entropy" (on logits)
    optimizer: str  # "sgd" or "adam"
    lr: float
    target: float  # wanted speed ratio to PyTorch with 1 thread
    health_every: int = 0  # > 0: a HealthRecorder records every this many steps


W1 = Workload(
    name="W1 playground",
    toml="""
schema = 1
seed = 1
[data]
dataset = "spiral"
n = 500
noise = 0.0
validation_fraction = 0.0
features = ["x1", "x2"]
[model]
init = "xavier_uniform"
dtype = "float64"
layers = [
  { type = "dense", units = 8, activation = "tanh" },
  { type = "dense", units = 8, activation = "tanh" },
  { type = "dense", units = 1, activation = "tanh" },
]
[training]
loss = "mse"
optimizer = { name = "sgd", lr = 0.03 }
batch_size = 10
shuffle = true
""",
    activations=("tanh", "tanh", "tanh"),
    loss="mse",
    optimizer="sgd",
    lr=0.03,
    target=40.0,
)

W2 = Workload(
    name="W2 digits MLP",
    toml="""
schema = 1
seed = 1
[data]
dataset = "digits"
validation_fraction = 0.0
[model]
init = "xavier_uniform"
dtype = "float64"
layers = [
  { type = "dense", units = 128, activation = "relu" },
  { type = "dense", units = 64, activation = "relu" },
  { type = "dense", units = 10, activation = "linear" },
]
[training]
loss = { name = "cross_entropy", input = "logits" }
optimizer = { name = "adam", lr = 0.001 }
batch_size = 32
shuffle = true
""",
    activations=("relu", "relu", "linear"),
    loss="cross_entropy",
    optimizer="adam",
    lr=1e-3,
    target=3.0,
)

# W1 watched: the training-health diagnostics recorded every 10 steps (and their pass over the
# data every 100), against plain PyTorch.
W1_HEALTH = replace(W1, name="W1 + health", target=20.0, health_every=10)

WORKLOADS = (W1, W1_HEALTH, W2)


@dataclass(frozen=True)
class LandscapeWorkload:
    name: str
    base: Workload  # the training workload whose weights the landscape is taken around
    epochs: int  # trained before the scan
    size: int  # grid points per axis (--quick: quick_size)
    quick_size: int
    seed: int  # of the random directions
    target: float  # wanted speed ratio to PyTorch with 1 thread


W5 = LandscapeWorkload(
    name="W5 landscape", base=W2, epochs=2, size=41, quick_size=5, seed=0, target=4.0
)
LANDSCAPE_ROUNDS = 3  # a full run: median of this many grids per engine
TARGETS = {w.name: w.target for w in (*WORKLOADS, W5)}


@dataclass
class Sizes:
    warm_up: int  # steps in the untimed first call
    steps: int | None  # steps per round; None sizes rounds to ROUND_SECONDS
    rounds: int


FULL = Sizes(warm_up=200, steps=None, rounds=ROUNDS)
QUICK = Sizes(warm_up=5, steps=20, rounds=1)


# ------------------------------------------------------------------------------------ engines


def gradient_lab_runner(
    work: Workload, registry: Any, evaluate_epochs: bool = False
) -> tuple[Any, Callable[[int], None], float]:
    """The session, a function running n steps, and the seconds the session took to build
    (which compiles the kernels, or loads them from the disk cache)."""
    from gradient_lab.engine.training.experiment import parse_experiment
    from gradient_lab.engine.training.session import Session

    experiment = parse_experiment(work.toml, registry, source=work.name)
    started = time.perf_counter()
    session = Session(experiment, registry)
    session.evaluate_epochs = evaluate_epochs
    if work.health_every:
        from gradient_lab.engine.instruments.diagnostics import HealthRecorder

        HealthRecorder(session, every=work.health_every).record(0)  # compiles its kernels
    compile_s = time.perf_counter() - started

    def run(n: int) -> None:
        done = session.run_steps(n)
        if done != n or session.diverged is not None:
            raise RuntimeError(f"{work.name}: training stopped after {done} of {n} steps")

    return session, run, compile_s


def torch_runner(work: Workload, session: Any, seed: int) -> Callable[[int], None]:
    """The same network, data, initial weights, batch size and per-epoch shuffling in a plain
    PyTorch loop (float64, the calling thread only). Like Gradient Lab's history, it keeps every
    step's loss (``loss.item()``, as PyTorch's own tutorials do)."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    x = torch.from_numpy(np.ascontiguousarray(session.x_train, dtype=np.float64))
    t = torch.from_numpy(np.ascontiguousarray(session.targets_train, dtype=np.float64))
    if work.loss == "cross_entropy":
        t = t.argmax(dim=1)
    params = []
    for i in range(len(work.activations)):
        w = session.initial_params[f"layers.{i}.W"]  # (inputs, units); PyTorch wants (out, in)
        b = session.initial_params[f"layers.{i}.b"]
        params.append(torch.tensor(w.T.copy(), dtype=torch.float64, requires_grad=True))
        params.append(torch.tensor(b.copy(), dtype=torch.float64, requires_grad=True))
    acts: dict[str, Callable[[Any], Any]] = {
        "tanh": torch.tanh,
        "relu": torch.relu,
        "linear": lambda z: z,
    }
    layers = [(params[2 * i], params[2 * i + 1], acts[a]) for i, a in enumerate(work.activations)]
    loss_fn = F.mse_loss if work.loss == "mse" else F.cross_entropy
    optimizer_cls = torch.optim.SGD if work.optimizer == "sgd" else torch.optim.Adam
    opt = optimizer_cls(params, lr=work.lr)
    rng = np.random.default_rng(seed)
    n_train, bs = len(x), session.batch_size
    start, perm = n_train, torch.arange(n_train)
    losses: list[float] = []

    def run(n: int) -> None:
        nonlocal start, perm
        for _ in range(n):
            if start >= n_train:  # a new epoch: a new permutation
                start, perm = 0, torch.from_numpy(rng.permutation(n_train))
            idx = perm[start : start + bs]
            start += bs
            h = x[idx]
            for w, b, act in layers:
                h = act(F.linear(h, w, b))
            loss = loss_fn(h, t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())

    return run


# ----------------------------------------------------------------------------------- measuring


def peak_rss_mb() -> float:
    """The process's peak resident set so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _seconds(run: Callable[[int], None], n: int) -> float:
    started = time.perf_counter()
    run(n)
    return time.perf_counter() - started


def _round_steps(run: Callable[[int], None], sizes: Sizes) -> int:
    """Steps per round: fixed, or sized from timed probes (doubling up to 0.1 s) to take about
    ROUND_SECONDS."""
    if sizes.steps is not None:
        return sizes.steps
    probe = sizes.warm_up
    while (elapsed := _seconds(run, probe)) < 0.1:
        probe *= 2
    return max(1, int(probe * ROUND_SECONDS / elapsed))


def measure(work: Workload, registry: Any, sizes: Sizes, peers: bool) -> dict[str, Any]:
    session, gl_run, compile_s = gradient_lab_runner(work, registry)
    runners = {"value": gl_run}
    if peers:
        runners["torch_value"] = torch_runner(work, session, seed=session.experiment.seed)
    steps = {}
    for key, run in runners.items():
        run(sizes.warm_up)
        steps[key] = _round_steps(run, sizes)
    rates: dict[str, list[float]] = {key: [] for key in runners}
    for _ in range(sizes.rounds):  # interleaved: Gradient Lab, PyTorch, Gradient Lab, ...
        for key, run in runners.items():
            rates[key].append(steps[key] / _seconds(run, steps[key]))
    record: dict[str, Any] = {
        "workload": work.name,
        "unit": "steps/s",
        "value": statistics.median(rates["value"]),
        "compile_s": compile_s,
        "peak_rss_mb": peak_rss_mb(),
    }
    if peers:
        record["torch_value"] = statistics.median(rates["torch_value"])
        record["ratio"] = record["value"] / record["torch_value"]
    if session.fused is None:
        print(f"warning: {work.name} did not use the compiled path", file=sys.stderr)
        record["note"] = "not fused: phase-by-phase path"
    return record


# ---------------------------------------------------------------------------- as run trains it

PAIRED_SPLIT = 3  # a share of a twin's speed: three times the rounds, each a third as long
AS_RUN_TARGET = 0.8  # W1 with an evaluation at every epoch end: this share of steps only at least


def measure_as_run(work: Workload, registry: Any, sizes: Sizes) -> dict[str, Any]:
    """W1 as ``gradient-lab run`` and the app train it: the metrics and layer norms recorded
    at every epoch end (every 50 steps); ``of_bare`` is its share of the steps-only speed,
    measured in alternating rounds with a twin session that records nothing, so both see the
    same machine."""
    _, bare, _ = gradient_lab_runner(work, registry)
    _, run, compile_s = gradient_lab_runner(work, registry, evaluate_epochs=True)
    rates: dict[str, list[float]] = {"bare": [], "as run": []}
    runners = {"bare": bare, "as run": run}
    for go in runners.values():
        go(sizes.warm_up)
    steps = max(1, _round_steps(run, sizes) // PAIRED_SPLIT)
    for _ in range(sizes.rounds * PAIRED_SPLIT):
        for key, go in runners.items():
            rates[key].append(steps / _seconds(go, steps))
    share = _paired_share(rates["as run"], rates["bare"])
    return {
        "workload": "W1 as run",
        "unit": "steps/s",
        "value": statistics.median(rates["as run"]),
        "compile_s": compile_s,
        "peak_rss_mb": peak_rss_mb(),
        "bare_value": statistics.median(rates["bare"]),
        "of_bare": share,
        "note": f"{share:.2f} of steps only (target {AS_RUN_TARGET:.2f})",
    }


def _paired_share(rates: list[float], bare: list[float]) -> float:
    """The median over rounds of a rate's share of its twin's rate in the same round: this
    virtual machine's speed drifts by a third within seconds, and a pair sees the same drift."""
    return statistics.median(r / b for r, b in zip(rates, bare, strict=True))


# ------------------------------------------------------------------------------------ service

SERVICE_TARGET = 0.9  # W1 through the session service: this share of bare run_steps at least


def measure_service(work: Workload, registry: Any, sizes: Sizes) -> dict[str, Any]:
    """W1 played at full speed by the session service (worker thread, 30 snapshots a second),
    in steps/s; ``of_bare`` is its share of a bare twin session's ``run_steps``, measured in
    alternating rounds, and ``pause_ms`` the longest time a pause took to return in the middle
    of a fast run."""
    from gradient_lab.engine.service.worker import SessionService
    from gradient_lab.engine.training.experiment import parse_experiment

    experiment = parse_experiment(work.toml, registry, source=work.name)
    started = time.perf_counter()
    service = SessionService(experiment, registry, snapshot_rate=30.0).start()
    try:
        service.wait_compiled()  # a compile beside the timed rounds would slow them
        compile_s = time.perf_counter() - started
        service.call(lambda s: setattr(s, "evaluate_epochs", False)).result()
        finished = threading.Event()

        def on_snapshot(event: str, payload: dict[str, Any]) -> None:
            if event == "snapshot" and not payload["snapshot"].playing:
                finished.set()

        service.subscribe(on_snapshot)

        def play(n: int) -> None:
            snapshot = service.snapshot
            assert snapshot is not None
            finished.clear()
            service.play(until_step=snapshot.step + n).result()
            finished.wait()

        _, bare_run, _ = gradient_lab_runner(work, registry)
        play(sizes.warm_up)
        bare_run(sizes.warm_up)
        n = max(1, _round_steps(bare_run, sizes) // PAIRED_SPLIT)
        rates, bare_rates = [], []
        for _ in range(sizes.rounds * PAIRED_SPLIT):
            rates.append(n / _seconds(play, n))
            bare_rates.append(n / _seconds(bare_run, n))
        pauses = []
        for _ in range(sizes.rounds):
            service.play().result()
            time.sleep(0.1)
            paused = time.perf_counter()
            service.pause().result()
            pauses.append(time.perf_counter() - paused)
    finally:
        service.close()
    share = _paired_share(rates, bare_rates)
    return {
        "workload": "W1 service",
        "unit": "steps/s",
        "value": statistics.median(rates),
        "compile_s": compile_s,
        "peak_rss_mb": peak_rss_mb(),
        "bare_value": statistics.median(bare_rates),
        "of_bare": share,
        "pause_ms": 1000.0 * max(pauses),
        "note": f"{share:.2f} of bare run_steps (target {SERVICE_TARGET:.2f}); "
        f"pause within {1000.0 * max(pauses):.0f} ms",
    }


# ----------------------------------------------------------------------------------- landscape


def torch_grid(
    work: Workload, session: Any, center: np.ndarray, dirs: Any, x: np.ndarray, y: np.ndarray
) -> Callable[[], np.ndarray]:
    """The same grid in plain PyTorch (float64, 1 thread, no autograd): a loop over the points,
    each building its weights W + a D1 + b D2 and running the forward pass and the loss."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    model = session.model
    data = torch.from_numpy(np.ascontiguousarray(session.x_train, dtype=np.float64))
    t = torch.from_numpy(np.ascontiguousarray(session.targets_train, dtype=np.float64))
    if work.loss == "cross_entropy":
        t = t.argmax(dim=1)
    loss_fn = F.mse_loss if work.loss == "mse" else F.cross_entropy
    acts: dict[str, Callable[[Any], Any]] = {
        "tanh": torch.tanh,
        "relu": torch.relu,
        "linear": lambda z: z,
    }

    def tensors(vector: np.ndarray, name: str) -> list[Any]:
        out = []
        for i in range(len(work.activations)):
            slot = next(s for s in model.slots if s.key == f"layers.{i}.{name}")
            value = model.view(vector, slot)
            out.append(torch.from_numpy((value.T if name == "W" else value).copy()))
        return out

    layers = list(
        zip(
            *(tensors(v, name) for name in ("W", "b") for v in (center, dirs.d1, dirs.d2)),
            (acts[a] for a in work.activations),
            strict=True,
        )
    )

    def run() -> np.ndarray:
        out = np.empty((len(y), len(x)))
        with torch.no_grad():
            for j, b in enumerate(y):
                for i, a in enumerate(x):
                    h = data
                    for w, w1, w2, bias, b1, b2, act in layers:
                        h = act(F.linear(h, w + a * w1 + b * w2, bias + a * b1 + b * b2))
                    out[j, i] = loss_fn(h, t).item()
        return out

    return run


def measure_landscape(
    work: LandscapeWorkload, registry: Any, sizes: Sizes, peers: bool
) -> dict[str, Any]:
    """Seconds per grid (and to the first coarse picture), after an untimed warm-up grid."""
    from gradient_lab.engine.instruments import landscape

    session, train, compile_s = gradient_lab_runner(work.base, registry)
    train(work.epochs * session.steps_per_epoch)
    compile_s += landscape.warm_up(session.dtype)
    size = work.quick_size if sizes is QUICK else work.size

    def job() -> Any:
        return landscape.LandscapeJob(session, "random", size=size, seed=work.seed, trajectory=None)

    def ours() -> tuple[float, float, Any]:
        started = time.perf_counter()
        first, last = 0.0, None
        for result in job().results():
            first = first or time.perf_counter() - started
            last = result
        return time.perf_counter() - started, first, last

    _, _, warm = ours()
    peer = None
    if peers:
        peer = torch_grid(work.base, session, warm.center, warm.directions, warm.x, warm.y)
    seconds: dict[str, list[float]] = {"value": [], "torch_value": []}
    firsts: list[float] = []
    torch_loss = None
    for _ in range(1 if sizes is QUICK else min(sizes.rounds, LANDSCAPE_ROUNDS)):
        taken, first, _ = ours()  # interleaved: Gradient Lab, PyTorch, Gradient Lab, ...
        seconds["value"].append(taken)
        firsts.append(first)
        if peer is not None:
            started = time.perf_counter()
            torch_loss = peer()
            seconds["torch_value"].append(time.perf_counter() - started)
    record: dict[str, Any] = {
        "workload": work.name,
        "unit": "s/grid",
        "value": statistics.median(seconds["value"]),
        "compile_s": compile_s,
        "peak_rss_mb": peak_rss_mb(),
        "first_picture_s": statistics.median(firsts),
    }
    if peers:
        record["torch_value"] = statistics.median(seconds["torch_value"])
        record["ratio"] = record["torch_value"] / record["value"]
        if torch_loss is None or not np.allclose(torch_loss, warm.loss, rtol=1e-9, atol=0.0):
            record["note"] = "PyTorch's grid differs from Gradient Lab's"
    if not landscape.fast_path_supported(landscape.snapshot_evaluator(session)):
        record["note"] = "not compiled: point-by-point path"
    return record


# ------------------------------------------------------------------------------------- report


def machine_info(peers: bool) -> list[str]:
    import numba

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                cpu,
            )
    except OSError:
        pass
    lines = [
        f"CPU: {cpu}, {os.cpu_count()} logical cores",
        f"Python {platform.python_version()}, NumPy {np.__version__}, Numba {numba.__version__}",
    ]
    if peers:
        import torch

        lines.append(f"PyTorch {torch.__version__}, {torch.get_num_threads()} thread")
    return lines


def _speed(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}" if unit == "steps/s" else f"{value:.3f} {unit}"


def table(records: list[dict[str, Any]], peers: bool, sizes: Sizes) -> str:
    head = f"{'workload':<15} {'speed':>16} {'compile s':>10} {'peak RSS MB':>12}"
    if peers:
        head += f" {'PyTorch':>16} {'ratio':>8} {'target':>8}"
    lines = [*machine_info(peers), "", head, "-" * len(head)]
    for r in records:
        line = (
            f"{r['workload']:<15} {_speed(r['value'], r['unit']):>16} {r['compile_s']:>10.2f} "
            f"{r['peak_rss_mb']:>12.0f}"
        )
        if peers and r["workload"] in TARGETS:
            target = TARGETS[r["workload"]]
            mark = "met" if r["ratio"] >= target else "below"
            torch_speed = _speed(r["torch_value"], r["unit"])
            line += f" {torch_speed:>16} {r['ratio']:>7.1f}x {target:>5.0f}x {mark}"
        if "note" in r:
            line += f"  ({r['note']})"
        lines.append(line)
    rounds = "1 round" if sizes.rounds == 1 else f"median of {sizes.rounds} rounds of ~1 s"
    grids = "1 grid" if sizes is QUICK else f"median of {min(sizes.rounds, LANDSCAPE_ROUNDS)} grids"
    size = W5.quick_size if sizes is QUICK else W5.size
    firsts = [f"{r['first_picture_s']:.3f} s" for r in records if "first_picture_s" in r]
    lines += [
        "",
        f"steps/s: {rounds}, float64, after an untimed warm-up call.",
        f"s/grid: seconds for the loss at every point of a {size}x{size} plane on the full data",
        f"  set ({grids}, lower is better); the first picture came after {', '.join(firsts)}.",
        f"W1 + health: W1 with training-health diagnostics every {W1_HEALTH.health_every} steps"
        f" (data pass every {10 * W1_HEALTH.health_every}).",
        "compile s: building the session (and its recorder) in this process, which compiles the",
        "  kernels or loads them from the disk cache (small when cached; later workloads reuse",
        "  them).",
        "peak RSS: the whole process's peak so far" + (", PyTorch included." if peers else "."),
    ]
    if peers:
        lines.append(
            "ratio: Gradient Lab's speed over PyTorch's (> 1 is faster): steps/s over steps/s,"
        )
        lines.append("  or PyTorch's seconds per grid over Gradient Lab's.")
    return "\n".join(lines)


def command_bench(args: argparse.Namespace) -> int:
    if args.peers:
        try:
            import torch  # noqa: F401
        except ImportError:
            print(
                "error: --peers needs PyTorch (CPU build): pip install torch==2.13.0",
                file=sys.stderr,
            )
            return EXIT_USER_ERROR
    from gradient_lab.engine.loading.discovery import discover

    registry = discover(plugins_dir=args.plugins_dir, safe_mode=args.safe_mode)
    sizes = QUICK if args.quick else FULL
    records = [measure(work, registry, sizes, args.peers) for work in WORKLOADS]
    records.append(measure_as_run(W1, registry, sizes))
    records.append(measure_service(W1, registry, sizes))
    records.append(measure_landscape(W5, registry, sizes, args.peers))
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        print(table(records, args.peers, sizes))
    return 0
