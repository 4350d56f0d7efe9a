"""Atomic writes: a file is either the old one or the complete new one, never half written.

A folder of files that belong together (a run's outputs) is replaced as a whole: the new set is
written into a folder beside it and swapped into place (``replace_folder``).
"""

from __future__ import annotations

import ctypes
import errno
import io
import json
import math
import os
import secrets
import shutil
import stat
import sys
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np


def temporary_name(target: Path, kind: str = "tmp") -> Path:
    """A fresh hidden name beside ``target`` that says which process made it:
    ``.NAME.KIND-PID-RANDOM``."""
    return target.parent / f".{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"


def create_file(path: Path, mode: int | None = None) -> IO[bytes]:
    """A new file opened for writing: ``mode`` if given, else the umask's default (0o666 less
    the umask, as a plain ``open`` would give; ``tempfile`` would give 0o600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        if mode is not None:
            os.chmod(fd if os.chmod in os.supports_fd else path, mode)
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def existing_mode(path: Path) -> int | None:
    """The permission bits of an existing file or folder, None when there is none."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it into place.

    A file that already existed keeps its permissions; a new one gets the umask's default."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(target)
    try:
        with create_file(tmp, existing_mode(target)) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def npz_bytes(arrays: Mapping[str, Any]) -> bytes:
    """An .npz archive of ``arrays`` (values as NumPy arrays: strings become unicode arrays)."""
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]
    return buffer.getvalue()


def atomic_save_npz(path: str | Path, arrays: Mapping[str, Any]) -> None:
    """Write arrays atomically to an .npz (no pickles): the one saver of every .npz output."""
    data = npz_bytes(arrays)
    atomic_write(path, lambda handle: handle.write(data))


class NpzError(ValueError):
    """A file that is not a readable .npz archive of arrays; the message says why."""


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Arrays of an .npz file. A missing or unreadable file raises OSError; a file that is not
    an .npz archive (empty, truncated, a renamed .npy, pickled objects) raises NpzError."""
    file = Path(path)
    if file.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(file))
    with file.open("rb") as handle:
        start = handle.read(6)
    if not start:
        raise NpzError("the file is empty; expected an .npz archive of arrays (np.savez)")
    if start == b"\x93NUMPY":
        raise NpzError("a single .npy array, not an .npz archive of named arrays (np.savez)")
    if not start.startswith(b"PK"):
        raise NpzError("not an .npz archive of arrays: it does not start as a zip file does")
    try:
        with np.load(file, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except OSError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise NpzError("holds Python objects, which are not loaded (numbers only)") from None
        raise NpzError(f"a damaged or truncated .npz archive ({_reason(exc)})") from None
    except zipfile.BadZipFile:
        raise NpzError("a damaged or truncated .npz archive") from None
    except (EOFError, KeyError, zlib.error) as exc:
        raise NpzError(f"a damaged or truncated .npz archive ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ----------------------------------------------------------------------------------- JSON


def finite(value: Any) -> Any:
    """``value`` made of JSON's types, with every NaN or infinity as None (JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, np.ndarray):
        return finite(value.tolist())
    if isinstance(value, np.generic):
        return finite(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_text(value: Any) -> str:
    """Strict JSON (RFC 8259) of ``value``: NaN and infinities are written as null."""
    return json.dumps(finite(value), indent=2, allow_nan=False) + "\n"


# -------------------------------------------------------------------------------- folders


def fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (POSIX; Windows cannot open folders)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename itself is done
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 with RENAME_EXCHANGE); False where the
    system or the file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    text, number = ctypes.c_char_p, ctypes.c_int
    function.argtypes = [number, text, number, text, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if function(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def replace_folder(staging: Path, target: Path) -> None:
    """Put the complete folder ``staging`` where ``target`` is, in one step where the system
    allows it, and remove the old folder. Both must be on one file system.

    Elsewhere the old folder is first renamed to ``.NAME.old-PID-RANDOM`` beside it: a process
    killed between the two renames leaves ``target`` missing and both complete folders beside
    it, for the next writer to recover."""
    if not target.exists():
        os.rename(staging, target)
    elif _exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)
    else:
        old = temporary_name(target, "old")
        os.rename(target, old)
        os.rename(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    fsync_folder(target.parent)
