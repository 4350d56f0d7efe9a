"""The ``gradient-lab`` command line: the same engine as the app, without a window.

User mistakes (a bad file, a bad value, a missing file) end with one clear line and exit code 2,
never a traceback; a divergence ends with exit code 3 and an internal error with 1 (see
``EXIT_CODES``).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from gradient_lab.engine.cli import warm_up
from gradient_lab.engine.cli.lab import LabError, add_lab_commands, run_lab_command, steps_to_train
from gradient_lab.engine.files import json_text
from gradient_lab.engine.plugin_api import KINDS, PluginError

EXIT_OK = 0
EXIT_INTERNAL_ERROR = 1
EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130

EXIT_CODES = f"""\
exit codes:
  {EXIT_OK}    success
  {EXIT_INTERNAL_ERROR}    internal error: a bug in Gradient Lab or in a plugin (with its traceback)
  {EXIT_USER_ERROR}    a mistake in an option or a file: one line naming it, the value and
       what is allowed
  {EXIT_DIVERGED}    training diverged (a NaN or infinity): the outputs up to that step are
       written (run) and the line names where it first appeared
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)
"""


class UserError(Exception):
    """A mistake the user can fix; printed as one line."""


def _common(parser: argparse.ArgumentParser, top: bool) -> None:
    """The options every command takes. They may come before the command or after it: the
    subcommands' copies default to nothing, so they never undo a value given before."""
    unset: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument(
        "--plugins-dir",
        metavar="DIR",
        help="folder of drop-in plugin files (default: the user data folder, "
        "or GRADIENT_LAB_PLUGINS)",
        **unset,
    )
    parser.add_argument(
        "--safe-mode", action="store_true", help="load the built-in plugins only", **unset
    )


def build_parser() -> argparse.ArgumentParser:
    top, common = argparse.ArgumentParser(add_help=False), argparse.ArgumentParser(add_help=False)
    _common(top, top=True)
    _common(common, top=False)
    parser = argparse.ArgumentParser(
        prog="gradient-lab",
        parents=[top],
        description="Gradient Lab: step through deep-learning training. Without a command it "
        "opens the app on the default experiment.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser(
        "run",
        parents=[common],
        help="train an experiment file headless",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("experiment", help="experiment .toml file")
    length = run.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="train this many minibatch steps")
    length.add_argument("--epochs", type=int, help="train this many epochs (default: the file's)")
    run.add_argument("--seed", type=int, help="override the experiment's seed")
    run.add_argument("--init-params", metavar="P.npz", help="start from these parameters")
    run.add_argument(
        "--out",
        metavar="DIR",
        default="out",
        help="output folder (default: out); its parent must exist. A folder of the run's own "
        "(new, empty or an earlier run's) is replaced as a whole, so it never holds a mixture",
    )
    run.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="also write the outputs every N steps while training (a killed run loses at "
        "most N steps)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress line")

    open_app = sub.add_parser("open", parents=[common], help="open an experiment file in the app")
    open_app.add_argument("experiment", help="experiment .toml file")

    plugins = sub.add_parser("plugins", parents=[common], help="list or check plugins")
    psub = plugins.add_subparsers(dest="plugins_command", required=True)
    lst = psub.add_parser("list", parents=[common], help="every plugin with its status")
    lst.add_argument("--kind", choices=KINDS)
    lst.add_argument("--json", action="store_true")
    chk = psub.add_parser("check", parents=[common], help="run the conformance check")
    chk.add_argument("target", nargs="?", help="a plugin name or a drop-in .py file (default: all)")

    add_lab_commands(sub, common)

    warm_up.add_parser(sub, common)
    bench = sub.add_parser("bench", parents=[common], help="measure training speed")
    bench.add_argument("--quick", action="store_true", help="a short run (for CI)")
    bench.add_argument("--json", action="store_true", help="print records as JSON")
    bench.add_argument("--peers", action="store_true", help="also run PyTorch (1 thread)")
    bench.add_argument(
        "--app",
        action="store_true",
        help="the window's speed instead: frames per second of every view while training W1 "
        "at full speed, and the share of headless speed kept",
    )
    bench.add_argument(
        "--default-layout",
        action="store_true",
        help="with --app: the window as it opens (docks behind tabs, the curves shown) instead "
        "of every dock open and a landscape computed",
    )
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
    from gradient_lab.engine.training.experiment import load_experiment
    from gradient_lab.engine.training.run_folder import RunFolder

    _check_counts(args)
    folder = RunFolder.prepare(args.out, "--out")
    registry = _registry(args)
    experiment = load_experiment(args.experiment, registry)
    if args.seed is not None:
        experiment.seed = args.seed
    init = _init_params(args.init_params) if args.init_params else None
    started = time.perf_counter()
    session = _session(args, experiment, registry, init)
    compile_s = time.perf_counter() - started
    total_steps = steps_to_train(args, session)
    outputs = RunOutputs(session, folder, total_steps, compile_s)
    if args.checkpoint_every:
        outputs.write(complete=False)  # from the start the folder holds this run
    _train(session, total_steps, args.quiet, args.checkpoint_every, outputs)
    outputs.write(complete=session.diverged is None)
    if not args.quiet:
        print(
            f"wrote {args.out}/: history.csv, params_init.npz, params.npz, summary.json, "
            "experiment.toml, manifest.json",
            file=sys.stderr,
        )
    if session.diverged is not None:
        print(f"error: {session.diverged.describe()}", file=sys.stderr)
        return EXIT_DIVERGED
    return EXIT_OK


def _check_counts(args: argparse.Namespace) -> None:
    """Whole-number options, before anything is loaded."""
    for option, value, low in (
        ("--steps", args.steps, 1),
        ("--epochs", args.epochs, 1),
        ("--seed", args.seed, 0),
        ("--checkpoint-every", args.checkpoint_every, 1),
    ):
        if value is not None and value < low:
            raise UserError(f"{option} {value} is not allowed: expected a whole number >= {low}")


def _init_params(path: str) -> dict[str, np.ndarray]:
    """The arrays of ``--init-params``: readable, an .npz archive, real and finite numbers."""
    from gradient_lab.engine.files import NpzError, load_npz

    where = f"--init-params {path}"
    try:
        arrays = load_npz(path)
    except FileNotFoundError:
        raise UserError(f"{where}: file not found") from None
    except OSError as exc:
        raise UserError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    except NpzError as exc:
        raise UserError(f"{where}: {exc}") from None
    for key, values in arrays.items():
        if values.dtype.kind not in "fiu":
            raise UserError(f"{where}: {key!r} holds {values.dtype} values; expected real numbers")
        bad = np.argwhere(~np.isfinite(values))
        if len(bad):
            index = tuple(int(i) for i in bad[0])
            raise UserError(
                f"{where}: {key!r}{list(index) if index else ''} = {values[index]} is not "
                "allowed: expected finite numbers (no NaN or infinity)"
            )
    return arrays


def _session(
    args: argparse.Namespace, experiment: Any, registry: Any, init: dict[str, np.ndarray] | None
) -> Any:
    """The session, checked before training; its mistakes name the file they are in."""
    from gradient_lab.engine.training.errors import ExperimentError
    from gradient_lab.engine.training.session import Session

    try:
        session = Session(
            experiment, registry, init_params=init, progress=_progress_printer(args.quiet)
        )
    except ExperimentError as exc:
        raise exc.in_file(str(args.experiment)) from None
    except PluginError as exc:
        message = str(exc)
        if message.startswith("--init-params: "):  # the session's name for these parameters
            raise UserError(f"--init-params {args.init_params}: {message[15:]}") from None
        raise UserError(f"{args.experiment}: {message}") from None
    return session


class RunOutputs:
    """The run's files, written as one set: at checkpoints and at the end."""

    def __init__(self, session: Any, folder: Any, total_steps: int, setup_s: float) -> None:
        from gradient_lab.engine.training.run_folder import HistoryCsv

        self.session, self.folder, self.total_steps = session, folder, total_steps
        self.setup_s = setup_s
        self.started = time.perf_counter()
        self.history = HistoryCsv()

    def write(self, complete: bool) -> None:
        from gradient_lab.engine.training.run_folder import run_files, summary

        s = self.session
        train_s = time.perf_counter() - self.started
        info = summary(s, self.setup_s, train_s, self.total_steps, complete)
        files = run_files(s, self.history, self.folder.target, info)
        listed = {
            "epoch": s.epoch,
            "planned_steps": self.total_steps,
            "complete": complete,
            "diverged": info["diverged"],
        }
        try:
            self.folder.write(files, s.step, listed)
        except OSError as exc:  # a full disk, the folder removed meanwhile, ...
            raise UserError(
                f"{self.folder.shown}: cannot write the outputs of step {s.step} "
                f"({exc.strerror or exc})"
            ) from None


def _train(
    session: Any,
    total_steps: int,
    quiet: bool,
    checkpoint_every: int | None = None,
    outputs: RunOutputs | None = None,
) -> None:
    """Train epoch by epoch (or part of one) with a progress line, refreshed a few times a second
    on a terminal and every tenth of the run otherwise; write the outputs every
    ``checkpoint_every`` steps."""
    interactive = sys.stderr.isatty()
    last_print, next_tenth = 0.0, 0.1
    while session.step < total_steps and session.diverged is None:
        remaining_in_epoch = session.steps_per_epoch - session.batch_in_epoch
        count = min(remaining_in_epoch, total_steps - session.step)
        if checkpoint_every:
            count = min(count, checkpoint_every - session.step % checkpoint_every)
        session.run_steps(count)
        running = session.diverged is None and session.step < total_steps
        if running and checkpoint_every and session.step % checkpoint_every == 0:
            assert outputs is not None
            outputs.write(complete=False)
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


# ------------------------------------------------------------------------------------- plugins


def command_plugins(args: argparse.Namespace) -> int:
    registry = _registry(args)
    if args.plugins_command == "list":
        records = [r for r in registry.records if args.kind in (None, r.kind)]
        if args.json:
            print(
                json_text(
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
                    ]
                ),
                end="",
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
    """Open the app (on ``args.experiment`` or the default experiment); where Qt is not
    installed, train the default experiment headless instead."""
    try:
        from gradient_lab.app.main import main as app_main
    except ImportError as exc:
        if getattr(args, "experiment", None):
            raise UserError(f"the desktop app needs Qt, which is not installed: {exc}") from None
    else:
        return int(app_main(args))
    path = default_experiment_path()
    print(f"The desktop app needs Qt (PySide6), which is not installed: training {path} headless.")
    run_args = argparse.Namespace(
        experiment=str(path),
        steps=None,
        epochs=None,
        seed=None,
        init_params=None,
        out="out",
        checkpoint_every=None,
        quiet=False,
        plugins_dir=args.plugins_dir,
        safe_mode=args.safe_mode,
    )
    return command_run(run_args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (see ``EXIT_CODES``)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a malformed command line (argparse printed why)
        return exc.code if isinstance(exc.code, int) else EXIT_USER_ERROR
    # Paths made absolute before any plugin loads: a plugin may change the working directory.
    for name in ("experiment", "out", "init_params", "params", "plugins_dir"):
        if isinstance(getattr(args, name, None), str):
            setattr(args, name, str(Path(getattr(args, name)).absolute()))
    try:
        _check_plugins_dir(args.plugins_dir)
        if args.command == "run":
            return command_run(args)
        if args.command == "open":
            return command_default(args)
        if args.command == "plugins":
            return command_plugins(args)
        lab = run_lab_command(args)
        if lab is not None:
            return lab
        if args.command == "warm-up":
            return warm_up.command_warm_up(args, _registry(args))
        if args.command == "bench":
            if args.app:  # the window's bench lives with the window
                from gradient_lab.app.bench import command_bench_app

                return int(command_bench_app(args))
            from gradient_lab.engine.cli.bench import command_bench

            return command_bench(args)
        return command_default(args)
    except (UserError, PluginError, LabError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        # The instruments stop on a divergence while training first (lab.prepare_session).
        diverged = isinstance(exc, LabError) and str(exc).startswith("training diverged")
        return EXIT_DIVERGED if diverged else EXIT_USER_ERROR
    except FileNotFoundError as exc:
        print(f"error: file not found: {exc.filename}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        traceback.print_exc()
        line = (str(exc).strip().splitlines() or [""])[0]
        print(
            f"internal error ({type(exc).__name__}: {line}): a bug in Gradient Lab or in a "
            "plugin; please report it with the traceback above",
            file=sys.stderr,
        )
        return EXIT_INTERNAL_ERROR


def _check_plugins_dir(folder: str | None) -> None:
    if folder is None:
        return
    path = Path(folder).expanduser()
    if not path.exists():
        raise UserError(
            f"--plugins-dir {folder}: no such folder; expected a folder of drop-in plugin .py files"
        )
    if not path.is_dir():
        raise UserError(
            f"--plugins-dir {folder}: is a file, not a folder; expected a folder of drop-in "
            "plugin .py files (check a single file with 'gradient-lab plugins check FILE.py')"
        )


if __name__ == "__main__":
    sys.exit(main())
