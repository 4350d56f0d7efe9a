"""Suite-wide rules: tests never touch the checkout or the user's own plugins, and in CI a skip
is a failure (a missing PyTorch or sample package must not quietly drop the parity tests).

The environment is set at import, before any test module imports the engine or Numba, so the
command-line tests' subprocesses inherit it too.
"""

import os
import subprocess
import tempfile
from pathlib import Path

import numba.core.config
import platformdirs
import pytest
from hypothesis import settings

# Numba caches next to the sources unless told otherwise; keep the checkout clean and the cache
# shared by every run on this machine (Numba keys it by the sources' full paths).
os.environ.setdefault(
    "NUMBA_CACHE_DIR", str(Path(platformdirs.user_cache_dir("gradient-lab")) / "numba")
)
numba.core.config.reload_config()  # pytest's warning filters imported Numba already
# Drop-in plugins come from an empty folder of the suite's own, never from the user's folder or
# their GRADIENT_LAB_PLUGINS; tests that need drop-ins name their folders explicitly.
NO_DROPINS = Path(tempfile.mkdtemp(prefix="gradient-lab-no-dropins-"))
os.environ["GRADIENT_LAB_PLUGINS"] = str(NO_DROPINS)
# The plugin scan's cached manifest, likewise in a folder of the suite's own.
os.environ["GRADIENT_LAB_PLUGIN_CACHE"] = tempfile.mkdtemp(prefix="gradient-lab-plugin-cache-")

# Hypothesis would keep its example database and a cache of constants in .hypothesis/ here.
os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = tempfile.mkdtemp(prefix="gradient-lab-hypothesis-")
settings.register_profile("gradient-lab", database=None)
settings.load_profile("gradient-lab")

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
ROOT = Path(__file__).resolve().parents[1]
FILES_BEFORE = pytest.StashKey[set[str] | None]()


def files_git_does_not_track() -> set[str] | None:
    """Untracked and ignored files of the checkout, less the virtualenv and Python's bytecode
    (which the interpreter writes, not a test); None outside a git checkout."""
    try:
        listed = subprocess.run(
            ["git", "status", "--porcelain", "--ignored", "--untracked-files=all", "-z"],
            cwd=ROOT, capture_output=True, check=True, timeout=60,
        ).stdout.decode()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    paths = {entry[3:] for entry in listed.split("\0") if entry}
    return {p for p in paths if not p.startswith(".venv/") and not p.endswith(".pyc")}


def pytest_sessionstart(session):
    session.config.stash[FILES_BEFORE] = files_git_does_not_track()


def pytest_sessionfinish(session, exitstatus):
    """Fail the run if it left new files in the checkout (a cache, a database, an output)."""
    before = session.config.stash.get(FILES_BEFORE, None)
    after = files_git_does_not_track()
    if before is None or after is None or getattr(session.config, "workerinput", None):
        return
    new = sorted(after - before)
    if new:
        listing = "\n  ".join(new[:20])
        print(f"\nThe tests wrote into the checkout; write to tmp_path instead:\n  {listing}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI, a skipped test fails: every dependency of the suite is installed there."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where nothing may be skipped: {reason}"
