"""The ``gradient-lab`` command line: the same engine as the app, without a window.

User mistakes (a bad file, a bad value, a missing file) end with one clear line and exit code 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from gradient_lab.engine.cli.lab import LabError, add_lab_commands, run_lab_command, steps_to_train
from gradient_lab.engine.plugin_api import KINDS, PluginError

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A mistake the user can fix; printed as one line."""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plugins-dir",
        metavar="DIR",
        help="folder of drop-in plugin files (default: the user data folder, "
        "or GRADIENT_LAB_PLUGINS)",
    )
    parser.add_argument("--safe-mode", action="store_true", help="load the built-in plugins only")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _common(common)
    parser = argparse.ArgumentParser(
        prog="gradient-lab",
        parents=[common],
        description="Gradient Lab: step through deep-learning training. Without a command it "
        "opens the app on the default experiment.",
    )
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", parents=[common], help="train an experiment file headless")
    run.add_argument("experiment", help="experiment .toml file")
    length = run.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="train this many minibatch steps")
    length.add_argument("--epochs", type=int, help="train this many epochs (default: the file's)")
    run.add_argument("--seed", type=int, help="override the experiment's seed")
    run.add_argument("--init-params", metavar="P.npz", help="start from these parameters")
    run.add_argument("--out", metavar="DIR", default="out", help="output folder (default: out)")
    run.add_argument("--quiet", action="store_true", help="no progress line")

    plugins = sub.add_parser("plugins", parents=[common], help="list or check plugins")
    psub = plugins.add_subparsers(dest="plugins_command", required=True)
    lst = psub.add_parser("list", parents=[common], help="every plugin with its status")
    lst.add_argument("--kind", choices=KINDS)
    lst.add_argument("--json", action="store_true")
    chk = psub.add_parser("check", parents=[common], help="run the conformance check")
    chk.add_argument("target", nargs="?", help="a plugin name or a drop-in .py file (default: all)")

    add_lab_commands(sub, common)

    bench = sub.add_parser("bench", parents=[common], help="measure training speed")
    bench.add_argument("--quick", action="store_true", help="a short run (for CI)")
    bench.add_argument("--json", action="store_true", help="print records as JSON")
    bench.add_argument("--peers", action="store_true", help="also run PyTorch (1 thread)")
    return parser


def _registry(args: argparse.Namespace) -> Any:
    from gradient_lab.engine.loading.discovery import discover

    return discover(plugins_dir=args.plugins_dir, safe_mode=args.safe_mode)


def default_experiment_path() -> Path:
    return Path(str(files("gradient_lab.assets").joinpath("default_experiment.toml")))


# ----------------------------------------------------------------------------------------- run


def _progress_printer(quiet: bool) -> Any:
    """Say when kernels are being prepared: slow on the first run, loaded from disk after."""
    started = time.perf_counter()

    def report(kernel: str, done: int, total: int) -> None:
        if quiet:
            return
        if done == 0:
            print(
                "preparing compiled kernels (the first run compiles; later runs load them)...",
                end="",
                file=sys.stderr,
                flush=True,
            )
        elif kernel == "done":
            print(f" ready in {time.perf_counter() - started:.2f} s", file=sys.stderr)

    return report


def command_run(args: argparse.Namespace) -> int:
    from gradient_lab.engine.files import load_npz
    from gradient_lab.engine.training.experiment import load_experiment
    from gradient_lab.engine.training.session import Session

    registry = _registry(args)
    experiment = load_experiment(args.experiment, registry)
    if args.seed is not None:
        experiment.seed = args.seed
    init = None
    if args.init_params:
        try:
            init = load_npz(args.init_params)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read --init-params {args.init_params}: {exc}") from None
    started = time.perf_counter()
    session = Session(
        experiment, registry, init_params=init, progress=_progress_printer(args.quiet)
    )
    compile_s = time.perf_counter() - started
    total_steps = steps_to_train(args, session)
    if total_steps < 1:
        raise UserError("--steps and --epochs must be at least 1")
    _train(session, total_steps, args.quiet)
    train_s = time.perf_counter() - started - compile_s
    write_outputs(session, Path(args.out), compile_s, train_s)
    if not args.quiet:
        print(
            f"wrote {args.out}/: history.csv, params_init.npz, params.npz, summary.json",
            file=sys.stderr,
        )
    if session.diverged is not None:
        print(f"error: {session.diverged.describe()}", file=sys.stderr)
        return 1
    return 0


def _train(session: Any, total_steps: int, quiet: bool) -> None:
    """Train epoch by epoch (or part of one) with a progress line, refreshed a few times a second
    on a terminal and every tenth of the run otherwise."""
    interactive = sys.stderr.isatty()
    last_print, next_tenth = 0.0, 0.1
    while session.step < total_steps and session.diverged is None:
        remaining_in_epoch = session.steps_per_epoch - session.batch_in_epoch
        session.run_steps(min(remaining_in_epoch, total_steps - session.step))
        if quiet:
            continue
        now, fraction = time.perf_counter(), session.step / total_steps
        too_soon = (now - last_print < 0.2) if interactive else (fraction < next_tenth)
        if too_soon and session.step < total_steps:
            continue
        last_print, next_tenth = now, fraction + 0.1
        last = session.history.epochs[-1] if session.history.epochs else {}
        val = f"  val_loss {last['val_loss']:.5g}" if "val_loss" in last else ""
        loss = session.history.steps.column("train_loss")[-1]
        line = f"step {session.step}/{total_steps}  epoch {session.epoch}  loss {loss:.5g}{val}"
        print(
            ("\r" + line + "   ") if interactive else line,
            end="" if interactive else "\n",
            file=sys.stderr,
            flush=True,
        )
    if not quiet and interactive:
        print(file=sys.stderr)


def history_csv(session: Any) -> str:
    """One row per recorded step; validation loss and metrics on the steps that end an epoch."""
    epochs = {r["step"]: r for r in session.history.epochs}
    extra = [
        k
        for r in session.history.epochs
        for k in r
        if k not in ("epoch", "step", "lr", "train_loss")
    ]
    extra = list(
        dict.fromkeys(
            k for k in extra if not isinstance(session.history.epochs[-1].get(k, 0.0), list)
        )
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["step", "epoch", "train_loss", *extra])
    for step, epoch, loss in session.history.steps.array():
        done = int(step) + 1
        record = epochs.get(done, {})
        values = [_scalar_text(record.get(k, "")) for k in extra]
        writer.writerow([done, int(epoch), repr(float(loss)), *values])
    return out.getvalue()


def _scalar_text(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if hasattr(value, "tolist"):
        return json.dumps(value.tolist())
    return str(value)


def write_outputs(session: Any, out: Path, compile_s: float, train_s: float) -> None:
    from gradient_lab.engine.files import atomic_save_npz, atomic_write_text
    from gradient_lab.engine.training.experiment import experiment_to_toml

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "history.csv", history_csv(session))
    atomic_save_npz(out / "params_init.npz", session.initial_params)
    atomic_save_npz(out / "params.npz", session.parameters())
    atomic_write_text(out / "experiment.toml", experiment_to_toml(session.experiment))
    last = session.history.epochs[-1] if session.history.epochs else {}
    summary = {
        "seed": session.experiment.seed,
        "steps": session.step,
        "epochs": session.epoch,
        "n_params": session.model.n_params,
        "fused": session.fused is not None,
        "final": {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in last.items()},
        "diverged": None if session.diverged is None else session.diverged.describe(),
        "setup_seconds": round(compile_s, 4),
        "train_seconds": round(train_s, 4),
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")


# ------------------------------------------------------------------------------------- plugins


def command_plugins(args: argparse.Namespace) -> int:
    registry = _registry(args)
    if args.plugins_command == "list":
        records = [r for r in registry.records if args.kind in (None, r.kind)]
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "name": r.name,
                            "kind": r.kind,
                            "source": r.source,
                            "origin": r.origin,
                            "version": r.version,
                            "status": r.status,
                            "error": r.error,
                        }
                        for r in records
                    ],
                    indent=2,
                )
            )
            return 0
        for r in sorted(records, key=lambda r: (r.kind, r.name)):
            status = "ok" if r.ok else f"failed: {r.error}"
            print(f"{r.kind:<13} {r.name:<22} {r.version:<6} {r.source:<10} {status}")
        return 0
    return _command_check(args, registry)


def _command_check(args: argparse.Namespace, registry: Any) -> int:
    from gradient_lab.engine.loading.conformance import check_name, check_path, check_plugin

    target = args.target
    if target is None:
        results = [(r, check_plugin(r.cls, registry)) for r in registry.ok_records()]
    elif target.endswith(".py"):
        if not Path(target).is_file():
            raise UserError(f"no such plugin file: {target}")
        results = check_path(target)
    else:
        results = check_name(target, registry)
        if not results:
            raise UserError(f"no plugin named {target!r}; see 'gradient-lab plugins list'")
    failed = 0
    for record, report in results:
        print(
            f"{record.kind} {record.name} ({record.source}): {'PASS' if report.passed else 'FAIL'}"
        )
        for item in report.items:
            mark = "pass" if item.passed else "FAIL"
            print(f"  {mark}  {item.name}: {item.message}")
        failed += not report.passed
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


# ----------------------------------------------------------------------------------------- app


def command_default(args: argparse.Namespace) -> int:
    """Open the app; without a display toolkit, train the default experiment headless."""
    try:
        from gradient_lab.app.main import main as app_main
    except ImportError:
        app_main = None
    if app_main is not None:
        return int(app_main(args))
    path = default_experiment_path()
    print(f"The desktop app is not part of this version yet: training {path} headless.")
    run_args = argparse.Namespace(
        experiment=str(path),
        steps=None,
        epochs=None,
        seed=None,
        init_params=None,
        out="out",
        quiet=False,
        plugins_dir=args.plugins_dir,
        safe_mode=args.safe_mode,
    )
    return command_run(run_args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Paths made absolute before any plugin loads: a plugin may change the working directory.
    for name in ("experiment", "out", "init_params", "params", "plugins_dir"):
        if isinstance(getattr(args, name, None), str):
            setattr(args, name, str(Path(getattr(args, name)).absolute()))
    try:
        if args.command == "run":
            return command_run(args)
        if args.command == "plugins":
            return command_plugins(args)
        lab = run_lab_command(args)
        if lab is not None:
            return lab
        if args.command == "bench":
            from gradient_lab.engine.cli.bench import command_bench

            return command_bench(args)
        return command_default(args)
    except (UserError, PluginError, LabError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except FileNotFoundError as exc:
        print(f"error: file not found: {exc.filename}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
