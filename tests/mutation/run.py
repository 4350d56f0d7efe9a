"""Curated mutation testing: apply each deliberate bug of mutants.toml and see the tests fail.

A mutation tool such as mutmut would recompile the Numba kernels for almost every mutant (a cold
compile takes about 20 s), so the mutants are a hand-written list of realistic bugs instead, each
naming the tests that should catch it. For each one this script patches one file, runs pytest,
and restores the file; a mutant is killed when some test fails. The report ends with a Markdown
table and the kill ratio; the exit code says whether the ratio meets the target.

Everything happens in a copy of the project under the system temp folder, never in the checkout
(other people run tests there). Standard library only, so it runs before anything is installed.

    python tests/mutation/run.py                    # every mutant against its own tests
    python tests/mutation/run.py --all-tests        # every mutant against the whole suite
    python tests/mutation/run.py --only ID,ID --timeout 300 --json results.json
    python tests/mutation/run.py --tests-from REV   # an older suite against the same mutants
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPEC = HERE / "mutants.toml"
MUTATION_DIR = "tests/mutation"  # this folder: never mutated, never replaced, never run
TESTS_DIR = "tests"
PACKAGES = ("gradient_lab.engine", "gradient_lab.plugins")  # what the tests import
# The installed name of each folder (pyproject.toml's package-dir): the copy is imported under
# these names through links, ahead of the editable install that points at the checkout.
IMPORT_NAMES = {"engine": "gradient_lab.engine", "plugins": "gradient_lab.plugins",
                "app": "gradient_lab.app", "assets": "gradient_lab.assets"}  # fmt: skip
REQUIRED_KEYS = ("id", "file", "find", "replace", "bug", "tests")
OPTIONAL_KEYS = ("equivalent",)
ID_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
DEFAULT_TIMEOUT = 600.0
BASELINE_TIMEOUT = 3600.0  # the whole suite, cold Numba cache included
DEFAULT_TARGET = 90.0
# (the project's addopts already say -q; a second one would drop the closing count)
PYTEST_ARGS = ("-x", "-rfE", "-p", "no:cacheprovider", "-p", "no:randomly")
# ``--ignore`` keeps the spec's own test out of every run: a mutated file no longer contains
# its ``find`` text, so that test would "kill" every mutant.
IGNORE_ARGS = (f"--ignore={MUTATION_DIR}",)

# Outcomes. Killed: a test failed (or pytest could not even collect, or it hung).
KILLED, ERROR, TIMEOUT = "killed", "error", "timeout"
SURVIVED, EQUIVALENT = "survived", "equivalent"
STALE, SPEC_ERROR = "stale", "spec error"  # the spec is wrong: fix mutants.toml
KILLED_OUTCOMES = (KILLED, ERROR, TIMEOUT)
SPEC_OUTCOMES = (STALE, SPEC_ERROR)


class SpecError(Exception):
    """mutants.toml is malformed, or names a file or test that does not exist."""


class SetupError(Exception):
    """The copy cannot run the suite (imports resolve elsewhere, the baseline fails...)."""


# ------------------------------------------------------------------------------------- the spec


@dataclass
class Mutant:
    """One deliberate bug: replace ``find`` (exactly once in ``file``) by ``replace``."""

    id: str
    file: str
    find: str
    replace: str
    bug: str
    tests: list[str]
    equivalent: str = ""

    def mutated(self, source: str) -> str:
        """The file's text with the bug in; SpecError unless ``find`` occurs exactly once."""
        count = source.count(self.find)
        if count != 1:
            where = "does not occur" if count == 0 else f"occurs {count} times"
            raise SpecError(
                f"mutant {self.id}: its find text {where} in {self.file} (it must occur exactly "
                "once): the code changed, so update find/replace in mutants.toml"
            )
        return source.replace(self.find, self.replace)


def load_mutants(path: Path = SPEC) -> list[Mutant]:
    """Read and check the spec's shape (types, keys, unique kebab-case ids)."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"{path}: {exc}") from None
    tables = doc.get("mutant")
    if not isinstance(tables, list) or not tables:
        raise SpecError(f"{path}: expected a list of [[mutant]] tables")
    mutants: list[Mutant] = []
    seen: set[str] = set()
    for i, table in enumerate(tables):
        where = f"{path.name}: mutant #{i + 1} ({table.get('id', 'no id')})"
        missing = [k for k in REQUIRED_KEYS if k not in table]
        unknown = [k for k in table if k not in REQUIRED_KEYS + OPTIONAL_KEYS]
        if missing or unknown:
            raise SpecError(f"{where}: missing keys {missing}, unknown keys {unknown}")
        strings = [k for k in ("id", "file", "find", "replace", "bug") if isinstance(table[k], str)]
        tests = table["tests"]
        if len(strings) != 5 or not isinstance(tests, list) or not tests:
            raise SpecError(f"{where}: id, file, find, replace, bug are texts; tests a list")
        if not all(isinstance(t, str) and t for t in tests):
            raise SpecError(f"{where}: every tests entry must be a pytest path or node id")
        if not ID_PATTERN.match(table["id"]) or table["id"] in seen:
            raise SpecError(f"{where}: ids must be unique kebab-case ({table['id']!r})")
        if table["find"] == table["replace"]:
            raise SpecError(f"{where}: replace is the same as find, so nothing changes")
        seen.add(table["id"])
        mutants.append(Mutant(**table))
    return mutants


def file_of(node_id: str) -> str:
    """The file part of a pytest node id (``tests/test_x.py::test_y[p]`` -> ``tests/test_x.py``)."""
    return node_id.split("::", 1)[0]


def spec_problem(mutant: Mutant, root: Path, check_tests: bool = True) -> tuple[str, str] | None:
    """(outcome, message) when the mutant cannot be run as written against the tree at ``root``:
    STALE when its find text is not there exactly once, SPEC_ERROR when the mutated file would
    not parse or a test file it names does not exist. None when it is fine."""
    target = root / mutant.file
    if not target.is_file():
        return STALE, f"mutant {mutant.id}: file {mutant.file} does not exist"
    try:
        text = mutant.mutated(target.read_text(encoding="utf-8"))
    except SpecError as exc:
        return STALE, str(exc)
    if mutant.file.endswith(".py"):
        try:
            ast.parse(text, filename=mutant.file)
        except SyntaxError as exc:
            return (
                SPEC_ERROR,
                f"mutant {mutant.id}: the mutated {mutant.file} does not parse: {exc}",
            )
    missing = [t for t in mutant.tests if not (root / file_of(t)).exists()]
    if check_tests and missing:
        return SPEC_ERROR, f"mutant {mutant.id}: no test file {', '.join(missing)}"
    return None


# ------------------------------------------------------------------------------- the work copy


def git(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True).stdout


def repository_root() -> Path:
    """The checkout this script belongs to (git knows it; the folders may move)."""
    out = git(HERE, "rev-parse", "--show-toplevel")
    return Path(out.decode().strip()).resolve()


def work_folder(repo: Path) -> Path:
    """A fixed folder per checkout, outside it, so the Numba cache survives between runs."""
    key = hashlib.sha1(str(repo).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / "gradient-lab-mutants" / key


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """One run per work folder at a time: two would mutate the same copy."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SetupError(f"another mutation run is using {folder}; wait for it") from None
        yield


def sync_tree(repo: Path, tree: Path) -> int:
    """Make ``tree`` hold exactly the files git lists (tracked plus untracked-not-ignored), as in
    the working tree. copy2 keeps their mtimes, so Numba's cache of unchanged files stays valid;
    files that are gone from the checkout are deleted. Returns the number of files."""
    listed = git(repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    names = sorted({n for n in listed.decode().split("\0") if n and (repo / n).is_file()})
    wanted = set(names)
    if tree.exists():
        for path in sorted(tree.rglob("*"), reverse=True):  # children before their folders
            rel = path.relative_to(tree).as_posix()
            if path.is_dir() and not path.is_symlink():
                if not any(path.iterdir()):
                    path.rmdir()
            elif rel not in wanted:
                path.unlink()
    for name in names:
        dest = tree / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, dest)
    return len(names)


def replace_tests(repo: Path, tree: Path, rev: str) -> None:
    """Swap the copy's tests/ (except tests/mutation) for ``git archive REV tests``."""
    try:
        archive = git(repo, "archive", "--format=tar", rev, TESTS_DIR)
    except subprocess.CalledProcessError as exc:
        why = exc.stderr.decode().strip()
        raise SetupError(f"git archive {rev} {TESTS_DIR} failed: {why}") from None
    tests = tree / TESTS_DIR
    for path in tests.iterdir():
        if path.relative_to(tree).as_posix() == MUTATION_DIR:
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = [
            m
            for m in tar.getmembers()
            if m.name != MUTATION_DIR and not m.name.startswith(MUTATION_DIR + "/")
        ]
        tar.extractall(tree, members=members, filter="data")


def link_import_names(tree: Path) -> Path:
    """A folder beside the copy where gradient_lab/engine (and the others) link to the copy's
    folders, so that the first entry of PYTHONPATH makes the tests import the copy."""
    names = tree.parent / "import-names"
    for folder, name in IMPORT_NAMES.items():
        link = names.joinpath(*name.split("."))
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(tree / folder, target_is_directory=True)
    return names


def child_environment(tree: Path, cache: Path) -> dict[str, str]:
    """The tests import the copy (PYTHONPATH) with a persistent Numba cache next to it; CI would
    turn skips into failures and GRADIENT_LAB_PLUGINS would load someone's drop-ins."""
    env = dict(os.environ)
    for name in ("CI", "GRADIENT_LAB_PLUGINS"):
        env.pop(name, None)
    env.update(
        PYTHONPATH=os.pathsep.join([str(link_import_names(tree)), str(tree)]),
        NUMBA_CACHE_DIR=str(cache),
        QT_QPA_PLATFORM="offscreen",
        # A .pyc written for a mutated file must never be picked up after the file is restored.
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def check_imports(tree: Path, env: dict[str, str]) -> None:
    """The packages must come from the copy: the editable install points at the checkout, and a
    mutant applied to the copy but imported from the checkout would always survive."""
    code = (
        "import importlib, json, sys\n"
        f"print(json.dumps({{n: getattr(importlib.import_module(n), '__file__', None) "
        f"for n in {list(PACKAGES)!r}}}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True
    )
    fix = (
        "fix PACKAGES (the import names the tests use) or the PYTHONPATH set in "
        f"child_environment in {Path(__file__).name}, so that they import from the copy"
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SetupError(
            f"in the copy {tree}, importing {', '.join(PACKAGES)} failed: {last}; {fix}"
        )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    outside = {
        name: where
        for name, where in found.items()
        if where is None or not Path(where).resolve().is_relative_to(tree.resolve())
    }
    if outside:
        raise SetupError(f"in the copy {tree} these resolve outside it: {outside}; {fix}")


def prepare_cache(base: Path, scratch: Path, tree: Path, mutated: str) -> None:
    """A throw-away copy of the Numba cache for one mutant, so the persistent cache never holds
    code compiled from a mutant. Numba keys a cache on its own source file only, so a module
    whose jitted code calls into the mutated one (landscape/scan_kernels.py and diagnostics.py
    call kernels.py) would load kernels compiled before the mutation: their entries are dropped."""
    if scratch.exists():
        shutil.rmtree(scratch)
    if base.exists():
        shutil.copytree(base, scratch)
    else:
        scratch.mkdir(parents=True)
    for dependent in numba_dependents(tree, mutated):
        for entry in scratch.glob(f"{dependent.parent.name}_*/{dependent.stem}.*"):
            entry.unlink()


def numba_dependents(tree: Path, mutated: str) -> list[Path]:
    """Source files with disk-cached Numba code that import the mutated module, spelled
    ``from pkg import mod``, ``import pkg.mod``, ``from pkg.mod import ...`` or, inside the same
    package, ``from . import mod`` / ``from .mod import ...``. (A dependency through a third
    module is not followed: none exists here.)"""
    rel = Path(mutated)
    if rel.suffix != ".py" or len(rel.parts) < 2:
        return []
    parts = rel.with_suffix("").parts
    top = IMPORT_NAMES.get(parts[0], parts[0])  # imported under its installed name
    package, module = re.escape(".".join([top, *parts[1:-1]])), re.escape(rel.stem)
    absolute = re.compile(
        rf"^\s*(from\s+{package}\s+import\s+.*\b{module}\b|(from|import)\s+{package}\.{module}\b)",
        re.MULTILINE,
    )
    relative = re.compile(rf"^\s*from\s+(\.\s+import\s+.*\b{module}\b|\.{module}\b)", re.MULTILINE)
    found = []
    for path in sorted(tree.rglob("*.py")):
        name = path.relative_to(tree)
        if name == rel or name.parts[0] == TESTS_DIR:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if "cache=True" not in text:
            continue
        same_package = name.parent == rel.parent
        if absolute.search(text) or (same_package and relative.search(text)):
            found.append(path)
    return found


# ------------------------------------------------------------------------------------ running


@dataclass
class Run:
    """What one pytest run did."""

    returncode: int | None  # None: timed out
    seconds: float
    failed: list[str]  # node ids from the FAILED / ERROR summary lines
    output: str


FAILED_LINE = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


def run_pytest(
    tests: Sequence[str], tree: Path, env: dict[str, str], timeout: float, first_failure: bool
) -> Run:
    """pytest in the copy, in its own process group so that a timeout also ends its children
    (the command-line tests start subprocesses)."""
    args = [a for a in PYTEST_ARGS if first_failure or a != "-x"]
    cmd = [sys.executable, "-m", "pytest", *args, *IGNORE_ARGS, *tests]
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=tree,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        kill_group(proc)
        output, _ = proc.communicate()
        code = None
    except BaseException:  # Ctrl-C reaches only this process: the group is in its own session
        kill_group(proc)
        raise
    seconds = time.monotonic() - start
    return Run(code, seconds, FAILED_LINE.findall(output or ""), output or "")


def kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@dataclass
class Result:
    """One mutant's verdict, as printed and written to --json."""

    id: str
    file: str
    bug: str
    outcome: str
    seconds: float = 0.0
    killed_by: str = ""
    tests: list[str] = field(default_factory=list)
    returncode: int | None = None
    log: str = ""
    note: str = ""


def classify(run: Run) -> tuple[str, str]:
    """(outcome, killed by) from pytest's exit code (``pytest.ExitCode``)."""
    first = run.failed[0] if run.failed else ""
    if run.returncode is None:
        return TIMEOUT, "timeout"
    if run.returncode == 0:
        return SURVIVED, ""
    if run.returncode == 1:
        return KILLED, first or "a test failed"
    if run.returncode in (2, 3):
        kind = "interrupted or collection error" if run.returncode == 2 else "internal error"
        return ERROR, first or kind
    if run.returncode in (4, 5):
        return SPEC_ERROR, "usage error" if run.returncode == 4 else "no tests collected"
    return ERROR, f"pytest died (exit code {run.returncode})"  # e.g. a crash inside a kernel


def selected_tests(mutant: Mutant, tree: Path, all_tests: bool, from_rev: bool) -> list[str]:
    """The mutant's tests, or the whole folder; with --tests-from, entries whose file is missing
    from that revision are dropped, and a mutant left with none runs the whole folder."""
    if all_tests:
        return [TESTS_DIR]
    tests = list(mutant.tests)
    if from_rev:
        tests = [t for t in tests if (tree / file_of(t)).exists()]
    return tests or [TESTS_DIR]


def run_mutant(
    mutant: Mutant, tests: list[str], work: Path, env: dict[str, str], timeout: float
) -> Result:
    """Patch the copy, run the tests with a throw-away Numba cache, restore the file (copy2 gives
    it its original mtime back, so Python and Numba see the original again)."""
    tree = work / "tree"
    target = tree / mutant.file
    mutated = mutant.mutated(target.read_text(encoding="utf-8"))  # checked by spec_problem
    backup = work / "original" / mutant.file
    backup.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(target, backup)
    scratch = work / "numba-scratch"
    prepare_cache(work / "numba-cache", scratch, tree, mutant.file)
    try:
        target.write_text(mutated, encoding="utf-8")
        run = run_pytest(tests, tree, dict(env, NUMBA_CACHE_DIR=str(scratch)), timeout, True)
    finally:
        shutil.copy2(backup, target)
    log = work / "logs" / f"{mutant.id}.log"
    log.write_text(run.output, encoding="utf-8")
    result = Result(mutant.id, mutant.file, mutant.bug, SURVIVED, tests=tests)
    result.outcome, result.killed_by = classify(run)
    result.seconds, result.returncode, result.log = run.seconds, run.returncode, str(log)
    if result.outcome == SPEC_ERROR:
        result.note = f"pytest found nothing to run in {' '.join(tests)}: fix its tests list"
    return result


def run_baseline(tests: list[str], work: Path, env: dict[str, str], timeout: float) -> float:
    """The union of the selected tests must pass on the unmutated copy, or no verdict means
    anything. It runs with the persistent Numba cache, which it fills for the mutants."""
    tests = [TESTS_DIR] if TESTS_DIR in tests else tests
    run = run_pytest(tests, work / "tree", env, timeout, first_failure=False)
    log = work / "logs" / "baseline.log"
    log.write_text(run.output, encoding="utf-8")
    if run.returncode in (4, 5):  # usage error / nothing collected: a tests entry is wrong
        lines = [line for line in run.output.splitlines() if line.startswith("ERROR")]
        raise SpecError(
            "a tests entry in mutants.toml names no test (pytest exit code "
            f"{run.returncode}):\n  " + "\n  ".join(lines or [f"see {log}"])
        )
    if run.returncode != 0:
        why = run.failed or [
            "timed out" if run.returncode is None else f"pytest exit code {run.returncode}"
        ]
        tail = "\n".join(run.output.strip().splitlines()[-15:])
        raise SetupError(
            "the baseline (the unmutated copy) fails, so no mutant can be judged:\n  "
            + "\n  ".join(why[:5])
            + (f"\n  ... and {len(why) - 5} more" if len(why) > 5 else "")
            + f"\n--- last lines of {log} ---\n{tail}"
        )
    return run.seconds


# ------------------------------------------------------------------------------------ reports


def ratio(results: Sequence[Result]) -> tuple[int, int, float]:
    """(killed, counted, percent): equivalent mutants are not counted; stale ones and spec
    errors count as not killed, so a broken spec can never raise the ratio."""
    counted = [r for r in results if r.outcome != EQUIVALENT]
    killed = sum(r.outcome in KILLED_OUTCOMES for r in counted)
    percent = 100.0 * killed / len(counted) if counted else 100.0
    return killed, len(counted), percent


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(results: Sequence[Result]) -> str:
    lines = ["| mutant | file | bug | outcome | killed by |", "|---|---|---|---|---|"]
    for r in results:
        by = r.killed_by if r.outcome in KILLED_OUTCOMES else r.note
        lines.append(
            f"| {r.id} | {r.file} | {cell(r.bug)} | {r.outcome} | {cell(by)} |".replace("  ", " ")
        )
    return "\n".join(lines)


def progress(index: int, total: int, r: Result) -> str:
    width = len(str(total))
    by = r.killed_by or r.note
    return f"[{index:>{width}}/{total}] {r.id:<40} {r.outcome:<10} {r.seconds:7.1f} s  {by}"


def list_mutants(mutants: Sequence[Mutant]) -> None:
    for m in mutants:
        mark = f"  (equivalent: {m.equivalent})" if m.equivalent else ""
        print(f"{m.id}  [{m.file}]{mark}\n    {m.bug}\n    tests: {' '.join(m.tests)}")
    print(f"{len(mutants)} mutants")


# --------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="comma-separated mutant ids to run (default: all)")
    p.add_argument("--all-tests", action="store_true", help="run all of tests/ for every mutant")
    p.add_argument("--tests-from", metavar="REV", help="use tests/ as of git revision REV")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per mutant")
    p.add_argument("--target", type=float, default=DEFAULT_TARGET, help="kill ratio to meet, %%")
    p.add_argument("--list", action="store_true", help="print the mutants and exit")
    p.add_argument("--json", metavar="FILE", help="write the results to FILE")
    return p.parse_args(argv)


def choose(mutants: list[Mutant], only: str | None) -> list[Mutant]:
    if not only:
        return mutants
    wanted = [s.strip() for s in only.split(",") if s.strip()]
    known = {m.id for m in mutants}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise SpecError(f"--only names unknown mutants: {', '.join(unknown)}")
    return [m for m in mutants if m.id in wanted]


def stop(signum: int, frame: object) -> None:
    """SIGTERM ends the run like Ctrl-C: the running pytest group is killed and the mutated file
    restored on the way out (the copy is re-synced at the next start anyway)."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, stop)
    try:
        mutants = choose(load_mutants(), args.only)
        if args.list:
            list_mutants(mutants)
            return 0
        repo = repository_root()
        work = work_folder(repo)
        with locked(work):
            return run_all(args, mutants, repo, work)
    except SpecError as exc:
        print(f"spec error: {exc}", file=sys.stderr)
        return 2
    except SetupError as exc:
        print(f"cannot run the mutants: {exc}", file=sys.stderr)
        return 2


def run_all(args: argparse.Namespace, mutants: list[Mutant], repo: Path, work: Path) -> int:
    started = time.monotonic()
    tree = work / "tree"
    count = sync_tree(repo, tree)
    (work / "logs").mkdir(exist_ok=True)
    print(f"copied {count} files from {repo} to {tree}", flush=True)
    if args.tests_from:
        replace_tests(repo, tree, args.tests_from)
        print(f"tests/ replaced by {args.tests_from}'s (tests/mutation kept)", flush=True)
    env = child_environment(tree, work / "numba-cache")
    check_imports(tree, env)

    # Stale or broken mutants are reported, never skipped silently, and never run.
    results: dict[str, Result] = {}
    tests_of: dict[str, list[str]] = {}
    for m in mutants:
        tests_of[m.id] = selected_tests(m, tree, args.all_tests, bool(args.tests_from))
        problem = spec_problem(m, tree, check_tests=not args.tests_from)
        if m.equivalent:
            results[m.id] = Result(m.id, m.file, m.bug, EQUIVALENT, note=m.equivalent)
        elif problem is not None:
            results[m.id] = Result(m.id, m.file, m.bug, problem[0], note=problem[1])
    runnable = [m for m in mutants if m.id not in results]
    union = list(dict.fromkeys(t for m in runnable for t in tests_of[m.id]))
    base_seconds = 0.0
    if runnable:
        print(f"baseline: {len(union)} test paths on the unmutated copy...", flush=True)
        base_seconds = run_baseline(union, work, env, max(args.timeout, BASELINE_TIMEOUT))
        print(f"baseline passed in {base_seconds:.1f} s", flush=True)

    def save(done: list[Result], complete: bool) -> None:
        """--json after every mutant, so a run that is stopped still leaves what it found."""
        if args.json:
            seconds = time.monotonic() - started
            write_json(Path(args.json), args, repo, union, done, base_seconds, seconds, complete)

    done: list[Result] = []
    for i, m in enumerate(mutants, 1):
        if m.id not in results:
            results[m.id] = run_mutant(m, tests_of[m.id], work, env, args.timeout)
        done.append(results[m.id])
        print(progress(i, len(mutants), results[m.id]), flush=True)
        save(done, complete=False)
    ordered = [results[m.id] for m in mutants]
    report(args, ordered, base_seconds, time.monotonic() - started)
    save(ordered, complete=True)
    if any(r.outcome in SPEC_OUTCOMES for r in ordered):
        return 2
    return 0 if ratio(ordered)[2] >= args.target else 1


def report(
    args: argparse.Namespace, results: list[Result], base_seconds: float, total: float
) -> None:
    """The Markdown table, what was not counted or is broken, and the kill ratio."""
    killed, counted, percent = ratio(results)
    print()
    print(markdown_table(results))
    print()
    equivalent = [r.id for r in results if r.outcome == EQUIVALENT]
    broken = [r for r in results if r.outcome in SPEC_OUTCOMES]
    if equivalent:
        print(f"{len(equivalent)} equivalent, not counted: {', '.join(equivalent)}")
    for r in broken:
        print(f"{r.outcome}: {r.note}")
    survivors = [r.id for r in results if r.outcome == SURVIVED]
    if survivors:
        print(f"{len(survivors)} survived: {', '.join(survivors)}")
    print(f"killed {killed} of {counted} ({percent:.1f}%), target {args.target:g}%")
    print(f"took {total:.0f} s (baseline {base_seconds:.0f} s)")


def write_json(
    path: Path,
    args: argparse.Namespace,
    repo: Path,
    baseline_tests: list[str],
    results: list[Result],
    base_seconds: float,
    total: float,
    complete: bool,
) -> None:
    killed, counted, percent = ratio(results)
    data = {
        "complete": complete,  # False: the run stopped (or is still going) after these results
        "repository": str(repo),
        "tree": str(work_folder(repo) / "tree"),
        "options": {k: v for k, v in vars(args).items() if k != "json"},
        "baseline_tests": baseline_tests,
        "baseline_seconds": round(base_seconds, 1),
        "seconds": round(total, 1),
        "killed": killed,
        "counted": counted,
        "percent": round(percent, 1),
        "target": args.target,
        "results": [asdict(r) for r in results],
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
