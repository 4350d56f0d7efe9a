"""CSV import: task detection, label mapping, and errors that name the file, row and column."""

from __future__ import annotations

import numpy as np
import pytest

from gradient_lab.engine.plugin_api import PluginError
from gradient_lab.engine.training.data import split_data
from gradient_lab.plugins.datasets import CsvFile


def write(tmp_path, text: str, name: str = "data.csv", encoding: str = "utf-8") -> str:
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return str(path)


def load(path: str, **hp):
    ds = CsvFile(path=path, **hp)
    X, y = ds.generate(np.random.default_rng(0))
    return ds, X, y


CLASSES = "a,b,label\n1,2,7\n3,4,3\n5,6,7\n-1,0.5,3\n"


def test_defaults_are_valid():
    ds = CsvFile()
    assert ds.hp == {"path": "", "target": (), "task": "auto"}
    assert not ds.planar


def test_classification_with_labels_mapped_in_sorted_order(tmp_path):
    ds, X, y = load(write(tmp_path, CLASSES), target="label")
    np.testing.assert_array_equal(X, [[1, 2], [3, 4], [5, 6], [-1, 0.5]])
    assert X.dtype == np.float64
    np.testing.assert_array_equal(y, [1, 0, 1, 0])
    assert y.dtype == np.int64
    assert ds.task == "classification" and ds.n_classes() == 2
    assert ds.class_values == (3.0, 7.0)
    assert ds.feature_names == ["a", "b"] and ds.target_names == ["label"]


def test_target_defaults_to_the_last_column(tmp_path):
    _, X, y = load(write(tmp_path, CLASSES))
    assert X.shape == (4, 2)
    np.testing.assert_array_equal(y, [1, 0, 1, 0])


def test_target_can_be_any_column(tmp_path):
    ds, X, y = load(write(tmp_path, CLASSES), target="a", task="regression")
    assert ds.feature_names == ["b", "label"]
    np.testing.assert_array_equal(y[:, 0], [1, 3, 5, -1])
    np.testing.assert_array_equal(X[:, 1], [7, 3, 7, 3])


def test_many_classes(tmp_path):
    rows = "".join(f"{i * 0.1},{label}\n" for i, label in enumerate([2, 5, 9, 5, 2, 9, 11]))
    ds, _, y = load(write(tmp_path, "x,y\n" + rows))
    assert ds.task == "classification" and ds.n_classes() == 4
    np.testing.assert_array_equal(y, [0, 1, 2, 1, 0, 2, 3])


def test_float_target_is_regression(tmp_path):
    ds, X, y = load(write(tmp_path, "x,y\n1,0.5\n2,1.5\n3,2.25\n"))
    assert ds.task == "regression" and ds.n_classes() == 0
    assert y.shape == (3, 1) and y.dtype == np.float64
    np.testing.assert_array_equal(X[:, 0], [1, 2, 3])
    np.testing.assert_array_equal(y[:, 0], [0.5, 1.5, 2.25])


def test_more_than_twenty_whole_numbers_is_regression(tmp_path):
    rows = "".join(f"{i},{i * 3}\n" for i in range(21))
    ds, _, y = load(write(tmp_path, "x,y\n" + rows))
    assert ds.task == "regression" and y.shape == (21, 1)
    rows = "".join(f"{i},{i % 20}\n" for i in range(40))
    ds, _, y = load(write(tmp_path, "x,y\n" + rows, "twenty.csv"))
    assert ds.task == "classification" and ds.n_classes() == 20


def test_several_targets_are_regression(tmp_path):
    ds, X, y = load(write(tmp_path, "x,u,v\n1,2,3\n4,5,6\n"), target=["u", "v"])
    assert ds.task == "regression"
    assert X.shape == (2, 1) and y.shape == (2, 2)
    np.testing.assert_array_equal(y, [[2, 3], [5, 6]])


def test_task_can_be_forced(tmp_path):
    ds, _, y = load(write(tmp_path, CLASSES), task="regression")
    assert ds.task == "regression"
    np.testing.assert_array_equal(y[:, 0], [7, 3, 7, 3])
    ds, _, y = load(write(tmp_path, "x,y\n" + "".join(f"{i},{i}\n" for i in range(30))),
                    task="classification")  # fmt: skip
    assert ds.task == "classification" and ds.n_classes() == 30


def test_forced_classification_needs_whole_numbers(tmp_path):
    path = write(tmp_path, "x,y\n1,0\n2,1\n3,0.5\n")
    with pytest.raises(PluginError) as info:
        load(path, task="classification")
    message = str(info.value)
    assert path in message and "row 4" in message and "'y'" in message


def test_forced_classification_needs_one_target(tmp_path):
    path = write(tmp_path, "x,u,v\n1,0,1\n2,1,0\n")
    with pytest.raises(PluginError, match="one target column"):
        load(path, target=["u", "v"], task="classification")


def test_a_single_class_is_refused(tmp_path):
    path = write(tmp_path, "x,y\n1,4\n2,4\n")
    with pytest.raises(PluginError, match="single class"):
        load(path)


def test_semicolons_blank_lines_bom_and_spaces(tmp_path):
    path = write(tmp_path, "a; b ;label\n\n1; 2;0\n3;4 ;1\n\n", encoding="utf-8-sig")
    ds, X, y = load(path, target="label")
    assert ds.feature_names == ["a", "b"]
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(y, [0, 1])


def test_split_data_reads_the_task_after_generating(tmp_path):
    rows = "".join(f"{i},{-i},{5 if i % 2 else 2}\n" for i in range(10))
    split = split_data(CsvFile(path=write(tmp_path, "p,q,kind\n" + rows)),
                       np.random.default_rng(1), 0.2, None)  # fmt: skip
    assert split.task == "classification" and split.n_classes == 2
    assert split.feature_names == ["p", "q"] and split.input_shape == (2,)
    assert split.class_names == ["2", "5"]
    assert len(split.X_train) == 8 and len(split.X_val) == 2
    # every row keeps its own label: kind is 5 exactly on odd p
    for X, y in ((split.X_train, split.y_train), (split.X_val, split.y_val)):
        np.testing.assert_array_equal(y, (X[:, 0] % 2 == 1).astype(np.int64))

    reg = split_data(CsvFile(path=write(tmp_path, "x,y\n1,0.5\n2,0.25\n3,1\n", "r.csv")),
                     np.random.default_rng(1), 0.0, None)  # fmt: skip
    assert reg.task == "regression" and reg.n_outputs == 1 and reg.n_classes == 0


# -------------------------------------------------------------------------------- errors


def error_of(path: str, **hp) -> str:
    with pytest.raises(PluginError) as info:
        load(path, **hp)
    return str(info.value)


def test_no_path():
    with pytest.raises(PluginError, match="path"):
        CsvFile().generate(np.random.default_rng(0))


def test_missing_file(tmp_path):
    path = str(tmp_path / "nowhere.csv")
    message = error_of(path)
    assert path in message and "not found" in message


def test_folder_instead_of_file(tmp_path):
    assert "folder" in error_of(str(tmp_path))


@pytest.mark.parametrize("text", ["", "\n\n", " , \n"])
def test_empty_file(tmp_path, text):
    path = write(tmp_path, text)
    message = error_of(path)
    assert path in message and "empty" in message


def test_header_without_rows(tmp_path):
    path = write(tmp_path, "a,b,c\n")
    message = error_of(path)
    assert path in message and "no data rows" in message


def test_missing_target_lists_the_columns(tmp_path):
    path = write(tmp_path, CLASSES)
    message = error_of(path, target="lable")
    assert path in message and "'lable'" in message
    assert "a, b, label" in message


def test_non_numeric_cell_names_row_and_column(tmp_path):
    path = write(tmp_path, "a,b,label\n1,2,0\n3,four,1\n")
    message = error_of(path)
    assert path in message and "row 3" in message and "column 'b'" in message
    assert "'four'" in message


def test_row_numbers_count_the_header_and_blank_lines(tmp_path):
    path = write(tmp_path, "a,b,label\n1,2,0\n\n3,4,1\n5,6,x\n")
    message = error_of(path)
    assert "row 5" in message and "column 'label'" in message


@pytest.mark.parametrize("cell", ["", "nan", "inf"])
def test_missing_or_infinite_values(tmp_path, cell):
    path = write(tmp_path, f"a,b,label\n1,2,0\n{cell},4,1\n")
    message = error_of(path)
    assert "row 3" in message and "column 'a'" in message and "not a number" in message


def test_ragged_row(tmp_path):
    path = write(tmp_path, "a,b,label\n1,2,0\n3,4\n")
    message = error_of(path)
    assert path in message and "row 3" in message and "2 cells" in message


@pytest.mark.parametrize(
    ("header", "message"), [("a,,label", "column 2 has no name"), ("a,a,label", "twice")]
)
def test_bad_header(tmp_path, header, message):
    path = write(tmp_path, header + "\n1,2,0\n3,4,1\n")
    text = error_of(path)
    assert path in text and message in text and "row 1" in text


def test_only_a_target_column(tmp_path):
    assert "no input columns" in error_of(write(tmp_path, "y\n1\n2\n"))


def test_target_named_twice(tmp_path):
    assert "twice" in error_of(write(tmp_path, CLASSES), target=["a", "a"])


def test_bad_parameters_name_themselves():
    with pytest.raises(PluginError, match=r"csv\.task"):
        CsvFile(task="clustering")
    with pytest.raises(PluginError, match=r"csv\.target"):
        CsvFile(target=3)
    with pytest.raises(PluginError, match=r"csv\.path"):
        CsvFile(path=None)
