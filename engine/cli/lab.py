"""Command-line instruments: landscape, hessian, diagnose and the theory labs.

Each loads an experiment, either loads parameters (``--params``) or trains it first (recording
what the instrument needs along the way), runs the instrument, writes a documented ``.npz`` and
prints a short summary. The arrays in each file are listed in the README.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from gradient_lab.engine.files import atomic_save_npz


class LabError(Exception):
    """A user mistake in an instrument's options; printed as one line."""


def _session_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", help="experiment .toml file")
    parser.add_argument("--params", metavar="P.npz", help="use these parameters (no training)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="train this many epochs first (default: file)")
    length.add_argument("--steps", type=int, help="train this many steps first")
    parser.add_argument("--seed", type=int, help="override the experiment's seed")
    parser.add_argument(
        "--subsample",
        type=int,
        metavar="N",
        help="evaluate on a seeded subsample of N training samples",
    )


def add_lab_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register the instrument subcommands on the main parser."""
    hessian = sub.add_parser(
        "hessian", parents=[common], help="curvature: top eigenvalues, trace, density, sharpness"
    )
    _session_options(hessian)
    hessian.add_argument("--top", type=int, default=2, help="how many top eigenpairs (default 2)")
    hessian.add_argument("--probes", type=int, default=5, help="SLQ probe vectors (default 5)")
    hessian.add_argument(
        "--samples", type=int, default=100, help="Hutchinson samples (default 100)"
    )
    hessian.add_argument(
        "--full",
        action="store_true",
        help="also the full Hessian's exact spectrum (up to 2,000 parameters)",
    )
    hessian.add_argument(
        "--sharpness",
        action="store_true",
        help="record the top eigenvalue every epoch while training",
    )
    hessian.add_argument("--out", default="hessian.npz", metavar="FILE.npz")

    landscape = sub.add_parser(
        "landscape", parents=[common], help="loss landscape: a 2D grid or a 1D line, with the path"
    )
    _session_options(landscape)
    landscape.add_argument(
        "--mode",
        choices=("random", "pca", "weights", "hessian"),
        default="random",
        help="the two directions of the plane (random)",
    )
    landscape.add_argument(
        "--weights",
        nargs=2,
        metavar="KEY:I,J",
        help="with --mode weights: two weights, e.g. layers.0.W:0,1",
    )
    landscape.add_argument("--grid", type=int, default=41, help="points per axis (41)")
    landscape.add_argument("--range", type=float, default=1.0, help="coordinates in ±R (1)")
    landscape.add_argument(
        "--line",
        choices=("init", "gradient", "random", "hessian"),
        help="a 1D line instead: init→current, or along one direction",
    )
    landscape.add_argument(
        "--include-biases",
        action="store_true",
        help="random directions also move biases and batch-norm parameters",
    )
    landscape.add_argument("--out", default="landscape.npz", metavar="FILE.npz")

    diagnose = sub.add_parser(
        "diagnose", parents=[common], help="training health per layer while training"
    )
    _session_options(diagnose)
    diagnose.add_argument("--every", type=int, default=10, help="record every N steps (10)")
    diagnose.add_argument(
        "--data-every", type=int, help="data statistics every N steps (default 10 x --every)"
    )
    diagnose.add_argument("--out", default="diagnose.npz", metavar="FILE.npz")

    theory = sub.add_parser("theory", parents=[common], help="the theory labs' instruments")
    labs = theory.add_subparsers(dest="lab", required=True)
    ntk = labs.add_parser("ntk", parents=[common], help="empirical NTK along training")
    _session_options(ntk)
    ntk.add_argument("--every", type=int, default=100, help="measure every N steps (100)")
    ntk.add_argument("--inputs", type=int, default=32, help="training inputs used (32)")
    ntk.add_argument("--out", default="ntk.npz", metavar="FILE.npz")
    width = labs.add_parser(
        "ntk-width", parents=[common], help="NTK change after training versus width"
    )
    width.add_argument("--widths", default="64,256,1024,4096,16384", help="comma-separated widths")
    width.add_argument("--steps", type=int, default=2000)
    width.add_argument("--lr", type=float, default=1.0)
    width.add_argument("--parameterization", choices=("ntk", "standard"), default="ntk")
    width.add_argument("--seeds", type=int, default=1)
    width.add_argument("--out", default="ntk_width.npz", metavar="FILE.npz")
    race = labs.add_parser(
        "race", parents=[common], help="every optimizer on a 2D objective from one start"
    )
    race.add_argument("objective", help="objective plugin name (quadratic, rosenbrock, ...)")
    race.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an objective parameter, e.g. --set kappa=100",
    )
    race.add_argument("--optimizers", help="comma-separated optimizer names (default: all)")
    race.add_argument("--start", help="x,y start (default: the objective's)")
    race.add_argument("--steps", type=int, default=500)
    race.add_argument("--lr", type=float, help="learning rate for every optimizer")
    race.add_argument("--tol", type=float, default=1e-6)
    race.add_argument("--out", default="race.npz", metavar="FILE.npz")
    approx = labs.add_parser(
        "approximate", parents=[common], help="universal approximation: fits and bump constructions"
    )
    approx.add_argument("--target", default="sine", help="sine, gaussian, absolute, ...")
    approx.add_argument("--steepness", type=float, default=20.0)
    approx.add_argument("--out", default="approximation.npz", metavar="FILE.npz")
    signal = labs.add_parser(
        "signal", parents=[common], help="signal propagation through depth at initialization"
    )
    signal.add_argument("--activation", default="relu")
    signal.add_argument("--gain", type=float, default=2.0**0.5)
    signal.add_argument("--depth", type=int, default=20)
    signal.add_argument("--width", type=int, default=256)
    signal.add_argument("--seeds", type=int, default=10)
    signal.add_argument("--out", default="signal.npz", metavar="FILE.npz")


def run_lab_command(args: argparse.Namespace) -> int | None:
    """Run an instrument subcommand, or return None when ``args`` names none."""
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "hessian": command_hessian,
        "landscape": command_landscape,
        "diagnose": command_diagnose,
        "theory": command_theory,
    }
    command = commands.get(args.command)
    return None if command is None else command(args)


# ------------------------------------------------------------------------------------ sessions


def prepare_session(
    args: argparse.Namespace,
    before_training: Callable[[Any], None] | None = None,
    train_from_params: bool = False,
) -> Any:
    """The experiment's session at the parameters to study: loaded, or trained here.

    ``train_from_params``: ``--params`` is the starting point of the training run (instruments
    that record along training) instead of the point to study."""
    from gradient_lab.engine.loading.discovery import discover
    from gradient_lab.engine.training.experiment import load_experiment
    from gradient_lab.engine.training.session import Session

    registry = discover(plugins_dir=args.plugins_dir, safe_mode=args.safe_mode)
    experiment = load_experiment(args.experiment, registry)
    if args.seed is not None:
        experiment.seed = args.seed
    start = _load_params(args.params) if args.params and train_from_params else None
    session = Session(experiment, registry, init_params=start)
    if args.params and not train_from_params:
        if args.epochs is not None or args.steps is not None:
            raise LabError("--params studies given parameters; leave out --epochs/--steps")
        session.model.set_params(_load_params(args.params), "--params")
        return session
    if before_training is not None:
        before_training(session)
    steps = steps_to_train(args, session)
    if steps < 0:
        raise LabError("--steps and --epochs must be at least 0")
    print(f"training {steps} steps first...", file=sys.stderr, flush=True)
    session.run_steps(steps)
    if session.diverged is not None:
        raise LabError(session.diverged.describe())
    return session


def steps_to_train(args: argparse.Namespace, session: Any) -> int:
    """``--steps``, else ``--epochs`` (default: the experiment's) times the steps per epoch."""
    if args.steps is not None:
        return int(args.steps)
    epochs = args.epochs if args.epochs is not None else session.experiment.training.epochs
    return int(epochs * session.steps_per_epoch)


def _load_params(path: str) -> dict[str, np.ndarray]:
    from gradient_lab.engine.files import load_npz

    try:
        return load_npz(path)
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot read --params {path}: {exc}") from None


def evaluator_for(session: Any, subsample: int | None) -> Any:
    from gradient_lab.engine.training.evaluation import Evaluator, eval_data

    n = len(session.x_train)
    if subsample is not None and subsample < 1:
        raise LabError(f"--subsample {subsample} is not allowed: expected 1 to {n}")
    return Evaluator(session, eval_data(session, subsample))


def _write(path: str, arrays: dict[str, Any]) -> None:
    atomic_save_npz(path, arrays)
    print(f"wrote {path}", file=sys.stderr)


# ----------------------------------------------------------------------------------- landscape


def command_landscape(args: argparse.Namespace) -> int:
    """A 2D landscape (arrays as ``landscape.save_npz``) with the training path projected when
    this command trained the network, or a 1D line with ``--line``."""
    from gradient_lab.engine.instruments import landscape

    recorders: list[Any] = []

    def attach(session: Any) -> None:
        recorder = landscape.TrajectoryRecorder(every=1)
        recorder.attach(session)
        recorders.append(recorder)

    session = prepare_session(args, attach)
    if args.grid < 3 or args.range <= 0:
        raise LabError("--grid needs at least 3 points and --range must be positive")
    try:
        result = _line(args, session) if args.line else _plane(args, session, recorders)
    except landscape.LandscapeError as exc:
        raise LabError(str(exc)) from None
    landscape.save_npz(result, args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    if args.line:
        print(
            f"{result.label}: loss from {np.nanmin(result.loss):.6g} to "
            f"{np.nanmax(result.loss):.6g} ({result.description})"
        )
    else:
        ev = result.explained_variance
        pca = f", explained variance {ev[0]:.3f} and {ev[1]:.3f}" if ev is not None else ""
        print(
            f"{len(result.y)}x{len(result.x)} grid in {result.seconds:.2f} s: loss from "
            f"{np.nanmin(result.loss):.6g} to {np.nanmax(result.loss):.6g}, "
            f"{result.origin_loss:.6g} at the centre{pca} ({result.description})"
        )
    return 0


def _plane(args: argparse.Namespace, session: Any, recorders: list[Any]) -> Any:
    from gradient_lab.engine.instruments import landscape

    weights = None
    if args.mode == "weights":
        if not args.weights:
            raise LabError("--mode weights needs --weights KEY:I,J KEY:I,J")
        weights = (_weight_choice(args.weights[0]), _weight_choice(args.weights[1]))
    trajectory = recorders[0] if recorders else None
    job = landscape.LandscapeJob(
        session, args.mode, size=args.grid, x_range=(-args.range, args.range),
        include_biases=args.include_biases, weights=weights, trajectory=trajectory,
        subsample=args.subsample,
    )  # fmt: skip
    return job.run()


def _line(args: argparse.Namespace, session: Any) -> Any:
    from gradient_lab.engine.instruments import landscape

    evaluator = landscape.snapshot_evaluator(session, args.subsample)
    theta = session.model.theta.copy()
    if args.line == "init":
        start = landscape.parameters_at(session, "init")
        return landscape.line_between(evaluator, start, theta, label="init to current")
    if args.line == "gradient":
        direction = landscape.gradient_direction(evaluator, theta)
    elif args.line == "hessian":
        direction = landscape.hessian_direction(evaluator, theta)
    else:
        rng = np.random.default_rng(0)
        direction = landscape.random_direction(session.model.slots, theta, rng, args.include_biases)
    alpha = landscape.axis(args.grid, -args.range, args.range)
    return landscape.line_along(evaluator, theta, direction, alpha, label=args.line)


def _weight_choice(text: str) -> tuple[str, tuple[int, ...]]:
    key, sep, index = text.partition(":")
    try:
        numbers = tuple(int(i) for i in index.split(","))
    except ValueError:
        numbers = ()
    if not sep or not numbers:
        raise LabError(f"--weights {text!r} is not allowed: expected KEY:I,J like layers.0.W:0,1")
    return key, numbers


# ------------------------------------------------------------------------------------- hessian


def command_hessian(args: argparse.Namespace) -> int:
    """Top eigenpairs, Hutchinson trace, SLQ density, optionally the exact spectrum and sharpness.

    Arrays written: ``eigenvalues`` (top, descending), ``eigenvectors`` (top, P), ``trace``,
    ``trace_standard_error``, ``density_grid``, ``density`` (integrates to 1), ``spectrum`` (all
    eigenvalues, with --full), ``sharpness_epoch``, ``sharpness_step``, ``sharpness`` and
    ``stability_edge`` (2/lr; with --sharpness), ``method`` ("exact" or "finite differences"),
    ``data`` (what the loss was evaluated on)."""
    from gradient_lab.engine.instruments import curvature

    recorder: list[Any] = []

    def attach(session: Any) -> None:
        if args.sharpness:
            recorder.append(curvature.record_sharpness(session, subsample=args.subsample))

    session = prepare_session(args, attach)
    evaluator = evaluator_for(session, args.subsample)
    theta = session.model.theta.copy()
    if args.top < 1:
        raise LabError(f"--top {args.top} is not allowed: expected 1 or more")
    values, vectors = curvature.top_eigenvectors(evaluator, theta, k=args.top)
    trace, trace_se = curvature.hutchinson_trace(evaluator, theta, samples=args.samples)
    grid, density = curvature.density(evaluator, theta, probes=args.probes)
    arrays: dict[str, Any] = {
        "eigenvalues": values,
        "eigenvectors": vectors,
        "trace": trace,
        "trace_standard_error": trace_se,
        "density_grid": grid,
        "density": density,
        "method": curvature.hvp_method(session.model, session.loss),
        "data": evaluator.data.description,
    }
    if args.full:
        if session.model.n_params > curvature.MAX_FULL_HESSIAN:
            raise LabError(
                f"--full needs at most {curvature.MAX_FULL_HESSIAN} parameters; this model has "
                f"{session.model.n_params}"
            )
        arrays["spectrum"] = curvature.spectrum(curvature.full_hessian(evaluator, theta))
    if recorder:
        records = recorder[0].records
        for key, name in (
            ("epoch", "sharpness_epoch"),
            ("step", "sharpness_step"),
            ("top_eigenvalue", "sharpness"),
            ("stability_edge", "stability_edge"),
        ):
            arrays[name] = np.array([r[key] for r in records])
    _write(args.out, arrays)
    print(
        f"top eigenvalues: {', '.join(f'{v:.6g}' for v in values)}  "
        f"trace: {trace:.6g} ± {trace_se:.2g}  ({arrays['method']}, {arrays['data']})"
    )
    if "spectrum" in arrays:
        s = arrays["spectrum"]
        print(f"exact spectrum: {len(s)} eigenvalues from {s[0]:.6g} to {s[-1]:.6g}")
    if recorder and len(arrays.get("sharpness", [])):
        print(
            f"sharpness at the last epoch: {arrays['sharpness'][-1]:.6g} "
            f"(stability edge 2/lr = {arrays['stability_edge'][-1]:.6g})"
        )
    return 0


# ------------------------------------------------------------------------------------ diagnose


def command_diagnose(args: argparse.Namespace) -> int:
    """Train while recording every layer's health; arrays as ``HealthRecorder.arrays``.

    With ``--params`` the recording run starts from those parameters."""
    from gradient_lab.engine.instruments.diagnostics import HealthRecorder
    from gradient_lab.engine.training.evaluation import eval_data

    recorders: list[Any] = []

    def attach(session: Any) -> None:
        data = eval_data(session, args.subsample) if args.subsample else None
        try:
            recorders.append(HealthRecorder(session, args.every, data, args.data_every))
        except ValueError as exc:
            raise LabError(str(exc)) from None

    session = prepare_session(args, attach, train_from_params=True)
    recorder = recorders[0]
    recorder.save(args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    arrays = recorder.arrays()
    keys = [str(k) for k in arrays["parameter_keys"]]
    print(f"{len(arrays['steps'])} records over {session.step} steps; last record:")
    for i, key in enumerate(keys):
        ratio = arrays["update_ratio"][-1, i]
        print(
            f"  {key:<16} grad norm {arrays['grad_norm'][-1, i]:.3g}  "
            f"weight norm {arrays['weight_norm'][-1, i]:.3g}  log10 update/weight {ratio:.2f}"
        )
    return 0


# -------------------------------------------------------------------------------------- theory


def command_theory(args: argparse.Namespace) -> int:
    from gradient_lab.engine.instruments import theory
    from gradient_lab.engine.instruments.diagnostics import signal_propagation
    from gradient_lab.engine.loading.discovery import discover

    registry = discover(plugins_dir=args.plugins_dir, safe_mode=args.safe_mode)
    if args.lab == "ntk":
        trackers: list[Any] = []

        def attach(session: Any) -> None:
            x = session.x_train[: args.inputs]
            trackers.append(theory.NTKTracker(session, x, every=args.every))

        prepare_session(args, attach, train_from_params=True)
        arrays = trackers[0].arrays()
        change = arrays.get("relative_change", np.array([np.nan]))
        print(f"relative NTK change at the end: {float(np.asarray(change)[-1]):.4g}")
    elif args.lab == "ntk-width":
        widths = _ints(args.widths, "--widths")
        arrays = theory.ntk_width_experiment(
            widths,
            args.steps,
            args.lr,
            parameterization=args.parameterization,
            seeds=args.seeds,
            registry=registry,
        )
        for w, c in zip(arrays["widths"], arrays["relative_change"], strict=True):
            print(f"width {int(w):>6}: relative NTK change {float(c):.4g}")
    elif args.lab == "race":
        objective = registry.create("objective", args.objective, **_settings(args.set))
        names = args.optimizers.split(",") if args.optimizers else None
        start = _floats(args.start, "--start", 2) if args.start else None
        results = theory.race(objective, names, start, args.steps, args.tol, args.lr, registry)
        arrays = theory.race_arrays(objective, results, args.tol)
        for label, steps, skipped in zip(
            arrays["optimizers"], arrays["steps_to_tolerance"], arrays["skipped"], strict=True
        ):
            status = skipped or ("never" if steps < 0 else f"{int(steps)} steps")
            print(f"{label:<22} to tolerance: {status}")
    elif args.lab == "approximate":
        try:
            arrays = theory.approximation_sweep(args.target, steepness=args.steepness)
        except ValueError as exc:
            raise LabError(str(exc)) from None
        for n, e in zip(arrays["n_units"], arrays["fit_max_error"], strict=True):
            print(f"{int(n):>4} sigmoid units: max error {float(e):.3g}")
    else:
        arrays = signal_propagation(
            args.activation, args.gain, args.depth, args.width, args.seeds, registry=registry
        )
        first, last = arrays["pre_activation_variance"][[0, -1]]
        print(f"pre-activation variance: layer 1 {first:.3g}, layer {args.depth} {last:.3g}")
    _write(args.out, arrays)
    return 0


def _ints(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise LabError(
            f"{option} {text!r} is not allowed: expected whole numbers like 64,256"
        ) from None
    if not values or min(values) < 1:
        raise LabError(f"{option} {text!r} is not allowed: expected whole numbers >= 1")
    return values


def _floats(text: str, option: str, count: int) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != count:
        raise LabError(f"{option} {text!r} is not allowed: expected {count} numbers like 1,-0.5")
    return values


def _settings(pairs: list[str]) -> dict[str, Any]:
    """NAME=VALUE options for a plugin, with numbers and booleans parsed."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise LabError(f"--set {pair!r} is not allowed: expected NAME=VALUE")
        out[name] = _value(value)
    return out


def _value(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text
