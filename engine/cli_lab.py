"""Command-line instruments: landscape, hessian, diagnose and the theory labs.

Each loads an experiment, either loads parameters (``--params``) or trains it first (recording
what the instrument needs along the way), runs the instrument, writes a documented ``.npz`` and
prints a short summary. The arrays in each file are listed in the README.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engine.files import atomic_save_npz


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


def run_lab_command(args: argparse.Namespace) -> int | None:
    """Run an instrument subcommand, or return None when ``args`` names none."""
    commands: dict[str, Callable[[argparse.Namespace], int]] = {"hessian": command_hessian}
    command = commands.get(args.command)
    return None if command is None else command(args)


# ------------------------------------------------------------------------------------ sessions


def prepare_session(
    args: argparse.Namespace, before_training: Callable[[Any], None] | None = None
) -> Any:
    """The experiment's session at the parameters to study: loaded, or trained here."""
    from engine.experiment import load_experiment
    from engine.files import load_npz
    from engine.registry import discover
    from engine.session import Session

    registry = discover(plugins_dir=args.plugins_dir, safe_mode=args.safe_mode)
    experiment = load_experiment(args.experiment, registry)
    if args.seed is not None:
        experiment.seed = args.seed
    session = Session(experiment, registry)
    if args.params:
        if args.epochs is not None or args.steps is not None:
            raise LabError("--params studies given parameters; leave out --epochs/--steps")
        try:
            params = load_npz(args.params)
        except (OSError, ValueError) as exc:
            raise LabError(f"cannot read --params {args.params}: {exc}") from None
        session.model.set_params(params, "--params")
        return session
    if before_training is not None:
        before_training(session)
    steps = (
        args.steps
        if args.steps is not None
        else (
            (args.epochs if args.epochs is not None else experiment.training.epochs)
            * session.steps_per_epoch
        )
    )
    if steps < 0:
        raise LabError("--steps and --epochs must be at least 0")
    print(f"training {steps} steps first...", file=sys.stderr, flush=True)
    session.run_steps(steps)
    if session.diverged is not None:
        raise LabError(session.diverged.describe())
    return session


def evaluator_for(session: Any, subsample: int | None) -> Any:
    from engine.evaluation import Evaluator, eval_data

    n = len(session.x_train)
    if subsample is not None and subsample < 1:
        raise LabError(f"--subsample {subsample} is not allowed: expected 1 to {n}")
    return Evaluator(session, eval_data(session, subsample))


def _write(path: str, arrays: dict[str, Any]) -> None:
    atomic_save_npz(Path(path), {k: np.asarray(v) for k, v in arrays.items()})
    print(f"wrote {path}", file=sys.stderr)


# ------------------------------------------------------------------------------------- hessian


def command_hessian(args: argparse.Namespace) -> int:
    """Top eigenpairs, Hutchinson trace, SLQ density, optionally the exact spectrum and sharpness.

    Arrays written: ``eigenvalues`` (top, descending), ``eigenvectors`` (top, P), ``trace``,
    ``trace_standard_error``, ``density_grid``, ``density`` (integrates to 1), ``spectrum`` (all
    eigenvalues, with --full), ``sharpness_epoch``, ``sharpness_step``, ``sharpness`` and
    ``stability_edge`` (2/lr; with --sharpness), ``method`` ("exact" or "finite differences"),
    ``data`` (what the loss was evaluated on)."""
    from engine import curvature

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
