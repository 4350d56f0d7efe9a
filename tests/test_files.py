"""engine/files.py: .npz files that are not archives are one clear error, atomic writes keep an
existing file's permissions, JSON is strict, and a folder is replaced as a whole."""

import json
import os
import stat

import numpy as np
import pytest

from gradient_lab.engine import files
from gradient_lab.engine.files import (
    NpzError,
    atomic_write_text,
    json_text,
    load_npz,
    replace_folder,
)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def params(tmp_path):
    path = tmp_path / "params.npz"
    np.savez(path, **{"layers.0.W": np.arange(6.0).reshape(2, 3), "layers.0.b": np.zeros(3)})
    return path


def not_an_archive(tmp_path, params):
    """(name, file) pairs: every way a file can fail to be an .npz of arrays."""
    data = params.read_bytes()
    made = {}
    for name, content in {
        "empty": b"",
        "truncated": data[: len(data) // 2],
        "cut short at the end": data[:-30],
        "text": b"layers.0.W = 1, 2, 3\n",
    }.items():
        made[name] = tmp_path / f"{name}.npz"
        made[name].write_bytes(content)
    made["a .npy renamed .npz"] = tmp_path / "single.npz"
    with made["a .npy renamed .npz"].open("wb") as handle:
        np.save(handle, np.zeros(3))
    made["pickled objects"] = tmp_path / "objects.npz"
    np.savez(made["pickled objects"], a=np.array([{"x": 1}], dtype=object))
    return made


def test_every_file_that_is_not_an_archive_is_an_npz_error(tmp_path, params):
    expected = {
        "empty": "empty",
        "truncated": "truncated",
        "cut short at the end": "truncated",
        "text": "not an .npz archive",
        "a .npy renamed .npz": "single .npy array",
        "pickled objects": "Python objects",
    }
    for name, path in not_an_archive(tmp_path, params).items():
        with pytest.raises(NpzError, match=expected[name]):
            load_npz(path)
    assert set(load_npz(params)) == {"layers.0.W", "layers.0.b"}


def test_missing_file_and_folder_are_os_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "nope.npz")
    with pytest.raises(IsADirectoryError):
        load_npz(tmp_path)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_atomic_write_keeps_the_permissions_of_the_file_it_replaces(tmp_path, umask_022):
    path = tmp_path / "shared.txt"
    path.write_text("old")
    os.chmod(path, 0o664)
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and mode(path) == 0o664
    fresh = tmp_path / "fresh.txt"
    atomic_write_text(fresh, "x")
    assert mode(fresh) == 0o644  # a new file: 0o666 less the umask, like any other
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh.txt", "shared.txt"]


def test_json_text_writes_null_for_nan_and_infinities():
    text = json_text(
        {"loss": float("nan"), "r2": np.float64("-inf"), "n": np.int64(3), "v": np.array([1.5])}
    )

    def refuse(token):
        raise AssertionError(f"{token} is not JSON")

    assert json.loads(text, parse_constant=refuse) == {"loss": None, "r2": None, "n": 3, "v": [1.5]}


def make_folder(path, **contents):
    path.mkdir()
    for name, text in contents.items():
        (path / name).write_text(text)
    return path


@pytest.mark.parametrize("one_step", [True, False], ids=["exchange", "two renames"])
def test_replace_folder_puts_the_new_set_in_place_and_removes_the_old(
    tmp_path, monkeypatch, one_step
):
    if not one_step:
        monkeypatch.setattr(files, "_exchange", lambda a, b: False)
    target = make_folder(tmp_path / "out", a="old a", b="old b")
    staging = make_folder(tmp_path / ".out.tmp-1-ab", a="new a")
    replace_folder(staging, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [p.name for p in target.iterdir()] == ["a"] and (target / "a").read_text() == "new a"
    fresh = make_folder(tmp_path / ".new.tmp-1-ab", a="first")
    replace_folder(fresh, tmp_path / "new")
    assert (tmp_path / "new" / "a").read_text() == "first"
