"""Running a plugin's code (its import, its check) so that what it does to the process is undone.

What a guard survives: an exception of any kind (``SystemExit`` too), output on stdout and
stderr (Python's streams and the file descriptors under them; the text is kept as a note), a
change of the working directory (restored) and replaced ``sys.stdout``/``sys.stderr`` (put
back). What it cannot undo it reports: a thread left running. A loop, ``os._exit`` or a crash
cannot be survived inside the process at all; the scan (``scan.py``) runs such code in a
subprocess first.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

NOTE_CHARS = 2000  # the longest note kept from a plugin's output


@dataclass
class Guarded:
    """What running a plugin's code gave: its value or its exception, and what it left behind."""

    value: Any = None
    error: BaseException | None = None
    output: str = ""
    moved_to: str = ""  # the working directory it changed to (the old one is restored)
    threads: list[str] = field(default_factory=list)  # non-daemon threads it left running

    @property
    def note(self) -> str:
        """One text for a record: the plugin's output and what was undone."""
        parts = []
        if self.output.strip():
            parts.append(f"printed: {self.output.strip()[:NOTE_CHARS]}")
        if self.moved_to:
            parts.append(f"changed the working directory to {self.moved_to} (restored)")
        return "\n".join(parts)


def thread_message(names: list[str], when: str) -> str:
    listed = ", ".join(repr(n) for n in names)
    return (
        f"started a thread {when} that is still running ({listed}): "
        "it would keep the program from exiting"
    )


def run_guarded(
    call: Callable[[], Any], capture_fds: bool = True, thread_grace: float = 0.5
) -> Guarded:
    """Call ``call()`` with its output captured and the working directory kept; never raises.

    ``capture_fds`` also redirects the file descriptors 1 and 2 (output written by C code or
    ``os.write``); ``thread_grace`` is how long a thread it started may take to finish."""
    result = Guarded()
    before_threads = set(threading.enumerate())
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = ""
    buffer = io.StringIO()
    with _captured_fds(capture_fds) as fd_output:
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = buffer
        try:
            result.value = call()
        except BaseException as exc:  # SystemExit and KeyboardInterrupt from a plugin too
            result.error = exc
        finally:
            sys.stdout, sys.stderr = saved
            result.moved_to = _restore_cwd(cwd)
    result.output = buffer.getvalue() + fd_output.getvalue()
    result.threads = _left_running(before_threads, thread_grace)
    return result


def _restore_cwd(cwd: str) -> str:
    """Go back to ``cwd``; the folder moved to, or "" when it did not move."""
    if not cwd:
        return ""
    try:
        now = os.getcwd()
    except OSError:
        now = "(a folder that no longer exists)"
    if now == cwd:
        return ""
    with contextlib.suppress(OSError):
        os.chdir(cwd)
    return now


def _left_running(before: set[threading.Thread], grace: float) -> list[str]:
    """Names of the non-daemon threads started since ``before`` and alive after ``grace``."""
    started = [t for t in threading.enumerate() if t not in before and not t.daemon]
    deadline = time.monotonic() + grace
    for thread in started:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in started if t.is_alive()]


def _fds_open() -> bool:
    try:
        os.fstat(1)
        os.fstat(2)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _captured_fds(enabled: bool) -> Iterator[io.StringIO]:
    """Point file descriptors 1 and 2 at a temporary file; its text lands in the yielded
    buffer after the block. Does nothing when disabled or when they are not open."""
    text = io.StringIO()
    if not (enabled and _fds_open()):
        yield text
        return
    for stream in (sys.__stdout__, sys.__stderr__, sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()  # type: ignore[union-attr]
    with tempfile.TemporaryFile() as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield text
        finally:
            for stream in (sys.__stdout__, sys.__stderr__):
                with contextlib.suppress(Exception):
                    stream.flush()  # type: ignore[union-attr]
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            text.write(sink.read().decode("utf-8", errors="replace"))
