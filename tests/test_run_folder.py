"""The output folder of `gradient-lab run`: checked before training, written as one consistent set
(at checkpoints and at the end), permissions kept, and what a killed run left cleared."""

import contextlib
import csv
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from gradient_lab.engine import files
from gradient_lab.engine.cli.main import main
from gradient_lab.engine.training import run_folder
from gradient_lab.engine.training.run_folder import (
    MANIFEST,
    OUTPUT_FILES,
    RunFolder,
    RunFolderError,
    verify,
)
from tests.experiments import dense, experiment_text

SMALL = experiment_text(
    [dense(4, "tanh"), dense(1, "tanh")],
    seed=5,
    dataset="circle",
    data="n = 100",
    optimizer='{ name = "sgd", lr = 0.1 }',
    batch_size=16,
)  # 80 training samples: 5 steps per epoch
NOBODY = 65534


@pytest.fixture
def experiment(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(SMALL)
    return path


def run(*args):
    return main([str(a) for a in args])


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def history_rows(folder):
    return list(csv.DictReader((folder / "history.csv").open()))


def entries(folder):
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------ checked before training


@pytest.fixture
def no_training(monkeypatch):
    """Building a session (data, model, kernels) fails the test: checks come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("a session was built before the output folder was checked")

    monkeypatch.setattr("gradient_lab.engine.training.session.Session.__init__", refuse)


def refused(args, capsys, needle):
    assert run(*args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("error: --out ") and needle in err
    return err


def test_an_existing_file_is_refused_before_training(experiment, tmp_path, capsys, no_training):
    (tmp_path / "results").write_text("not a folder")
    err = refused(("run", experiment, "--out", tmp_path / "results"), capsys, "is a file")
    assert str(tmp_path / "results") in err


def test_a_folder_inside_a_file_is_refused_before_training(
    experiment, tmp_path, capsys, no_training
):
    (tmp_path / "results").write_text("not a folder")
    out = tmp_path / "results" / "run1"
    err = refused(("run", experiment, "--out", out), capsys, "is a file, not a folder")
    assert str(tmp_path / "results") in err


def test_a_missing_parent_is_refused_before_training(experiment, tmp_path, capsys, no_training):
    out = tmp_path / "no" / "such" / "run1"
    err = refused(("run", experiment, "--out", out), capsys, "does not exist")
    assert str(tmp_path / "no" / "such") in err
    assert not (tmp_path / "no").exists()


@contextlib.contextmanager
def unprivileged():
    """Run the block with permissions that apply. Root may write anywhere, so as root (CI runs
    as root) the block runs with the effective user and group ids of nobody; as any other
    user it runs as that user. Never skipped."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def shared_folder():
    """A folder every user may enter (pytest's own are private to their owner)."""
    folder = Path(tempfile.mkdtemp(prefix="gradient-lab-run-folder-"))
    folder.chmod(0o755)
    yield folder
    for path in folder.rglob("*"):
        if path.is_dir():
            path.chmod(0o755)
    shutil.rmtree(folder)


def test_a_folder_one_may_not_write_in_is_refused_before_training(
    shared_folder, capsys, no_training
):
    experiment = shared_folder / "exp.toml"
    experiment.write_text(SMALL)
    locked = shared_folder / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    with unprivileged():
        assert not os.access(locked, os.W_OK, effective_ids=os.access in os.supports_effective_ids)
        code = run("run", experiment, "--out", locked / "run1")
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "cannot write in" in err and str(locked) in err
    assert entries(locked) == []


# ------------------------------------------------------------------- layout and manifest


def test_the_folder_holds_every_output_and_a_manifest_of_them(experiment, tmp_path):
    out = tmp_path / "out"
    assert run("run", experiment, "--out", out, "--quiet") == 0
    assert entries(out) == sorted([*OUTPUT_FILES, MANIFEST])
    listed = verify(out)
    assert listed["step"] == 15 and listed["complete"] is True and listed["diverged"] is None
    assert sorted(listed["files"]) == sorted(OUTPUT_FILES)
    assert all(entry["step"] == 15 for entry in listed["files"].values())
    assert entries(tmp_path) == ["exp.toml", "out"]  # nothing left beside it
    (out / "params.npz").write_bytes(b"changed")
    with pytest.raises(RunFolderError, match=r"params\.npz is not the file of step 15"):
        verify(out)


def test_checkpoints_write_the_progress_every_n_steps(experiment, tmp_path, monkeypatch):
    seen = []
    write = RunFolder.write

    def spy(self, contents, step, info):
        write(self, contents, step, info)
        seen.append((step, len(history_rows(self.target)), verify(self.target)["complete"]))

    monkeypatch.setattr(RunFolder, "write", spy)
    out = tmp_path / "out"
    assert run("run", experiment, "--out", out, "--steps", 17, "--checkpoint-every", 4) == 0
    assert seen == [(s, s, False) for s in (0, 4, 8, 12, 16)] + [(17, 17, True)]
    assert json.loads((out / "summary.json").read_text())["steps"] == 17


class Crash(BaseException):
    """Stands in for the process dying in the middle of a write."""


def test_a_crash_while_writing_a_checkpoint_leaves_the_previous_one(
    experiment, tmp_path, monkeypatch
):
    calls = []
    create = run_folder.create_file

    def failing(path, mode=None):
        calls.append(path)
        if len(calls) == 2 * 6 + 3:  # the third file of the third set (steps 0, 5, 10)
            raise Crash
        return create(path, mode)

    monkeypatch.setattr(run_folder, "create_file", failing)
    out = tmp_path / "out"
    with pytest.raises(Crash):
        run("run", experiment, "--out", out, "--steps", 30, "--checkpoint-every", 5, "--quiet")
    listed = verify(out)
    assert listed["step"] == 5 and not listed["complete"]
    assert len(history_rows(out)) == 5
    assert json.loads((out / "summary.json").read_text())["steps"] == 5
    assert entries(tmp_path) == ["exp.toml", "out"]


def test_a_folder_with_other_files_is_written_file_by_file(experiment, tmp_path):
    """The experiment's own folder, say: it cannot be replaced as a whole."""
    assert run("run", experiment, "--out", tmp_path, "--steps", 3, "--quiet") == 0
    assert entries(tmp_path) == sorted(["exp.toml", *OUTPUT_FILES, MANIFEST])
    assert verify(tmp_path)["step"] == 3


def test_files_and_folder_keep_their_permissions(experiment, tmp_path):
    out = tmp_path / "out"
    assert run("run", experiment, "--out", out, "--steps", 3, "--quiet") == 0
    out.chmod(0o750)
    (out / "params.npz").chmod(0o640)
    (out / "history.csv").chmod(0o664)
    (out / "summary.json").unlink()  # a new file again: the umask's default
    assert run("run", experiment, "--out", out, "--steps", 4, "--quiet") == 0
    assert verify(out)["step"] == 4
    assert mode(out) == 0o750
    assert mode(out / "params.npz") == 0o640 and mode(out / "history.csv") == 0o664
    umask = os.umask(0)
    os.umask(umask)
    assert mode(out / "summary.json") == 0o666 & ~umask


# ---------------------------------------------------------------- what a killed run left


def gone_pid():
    """The id of a process that has ended."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return int(done.stdout)


def test_leftovers_of_a_killed_run_are_removed(experiment, tmp_path):
    out = tmp_path / "out"
    assert run("run", experiment, "--out", out, "--steps", 3, "--quiet") == 0
    pid = gone_pid()
    for name in (f".out.tmp-{pid}-0a1b2c3d", f".out.old-{pid}-0a1b2c3e"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "params.npz").write_bytes(b"half")
    (out / f".params.npz.tmp-{pid}-0a1b2c3f").write_bytes(b"half")
    (out / ".history.csv.k2j3h4g5.tmp").write_bytes(b"half")  # an older atomic write's name
    mine = tmp_path / f".out.tmp-{os.getpid()}-0a1b2c40"  # a live process's: kept
    mine.mkdir()
    assert run("run", experiment, "--out", out, "--steps", 4, "--quiet") == 0
    assert entries(tmp_path) == sorted(["exp.toml", "out", mine.name])
    assert entries(out) == sorted([*OUTPUT_FILES, MANIFEST]) and verify(out)["step"] == 4


def test_a_swap_killed_between_its_renames_is_recovered(experiment, tmp_path, monkeypatch):
    """Where folders cannot be swapped in one step, a kill between the two renames leaves no
    output folder: the next run puts the newest complete set back before anything else."""
    out = tmp_path / "out"
    assert run("run", experiment, "--out", out, "--steps", 3, "--quiet") == 0
    pid = gone_pid()
    os.rename(out, tmp_path / f".out.old-{pid}-00000001")
    folder = RunFolder.prepare(out)
    assert verify(folder.target)["step"] == 3
    assert entries(tmp_path) == ["exp.toml", "out"]


def test_checkpoints_without_a_one_step_swap(experiment, tmp_path, monkeypatch):
    monkeypatch.setattr(files, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    assert run("run", experiment, "--out", out, "--steps", 9, "--checkpoint-every", 2) == 0
    assert verify(out)["step"] == 9 and entries(tmp_path) == ["exp.toml", "out"]


def command(*args):
    return [sys.executable, "-m", "gradient_lab.engine.cli", "run", *map(str, args)]


def test_a_run_killed_with_sigkill_leaves_a_complete_earlier_checkpoint(experiment, tmp_path):
    """A real process, killed with SIGKILL while it trains (subprocess.run kills the child
    with SIGKILL when its timeout expires): the folder holds a complete checkpoint."""
    warm, out = tmp_path / "warm", tmp_path / "out"
    started = time.perf_counter()
    subprocess.run(command(experiment, "--steps", 1, "--out", warm, "--quiet"),
                   check=True, capture_output=True, timeout=600)  # fmt: skip
    startup = time.perf_counter() - started  # kernels are in the disk cache from here on
    every = 20
    endless = command(experiment, "--steps", 10**9, "--checkpoint-every", every, "--out", out)
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run(endless, capture_output=True, timeout=startup + 5)
    listed = verify(out)  # every file is the one the manifest lists for its step
    step = listed["step"]
    assert step >= every and step % every == 0 and listed["complete"] is False
    assert entries(out) == sorted([*OUTPUT_FILES, MANIFEST])
    assert len(history_rows(out)) == step and int(history_rows(out)[-1]["step"]) == step
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == step and summary["complete"] is False
    assert summary["planned_steps"] == 10**9
    params = np.load(out / "params.npz")
    assert params["layers.0.W"].shape == (2, 4) and np.all(np.isfinite(params["layers.0.W"]))
    # Starting again into the folder clears whatever the killed process left beside it.
    assert run("run", experiment, "--out", out, "--steps", 2, "--quiet") == 0
    assert entries(tmp_path) == ["exp.toml", "out", "warm"] and verify(out)["step"] == 2


def test_an_output_folder_in_a_folder_one_may_not_write_in_is_written_in_place(shared_folder):
    locked = shared_folder / "locked"
    out = locked / "out"
    out.mkdir(parents=True)
    out.chmod(0o777)
    locked.chmod(0o555)
    with unprivileged():
        folder = RunFolder.prepare(out)
        assert folder.in_place
        folder.write({"history.csv": b"step\n1\n"}, 1, {"complete": True})
        assert verify(out)["files"]["history.csv"]["bytes"] == 7
    assert entries(locked) == ["out"] and entries(out) == ["history.csv", MANIFEST]
