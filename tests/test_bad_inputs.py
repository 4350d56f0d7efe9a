"""No traceback for any user mistake: a table of bad files, fields and options, each ending with
exit code 2 and one line naming the file, option or field; and the other exit codes (3 for a
divergence, 1 for an internal error) and strict JSON."""

import json
import subprocess
import sys

import numpy as np
import pytest

from gradient_lab.engine.cli import main as cli
from gradient_lab.engine.cli.main import main
from gradient_lab.engine.training.experiment import parse_experiment
from gradient_lab.engine.training.session import Session
from tests.experiments import dense, edit, experiment_text

CIRCLE = dict(
    layers=[dense(4), dense(1)],
    seed=5,
    dataset="circle",
    data="n = 100",
    optimizer='{ name = "sgd", lr = 0.1 }',
    batch_size=16,
)
SINE = dict(CIRCLE, dataset="sine", data="n = 60", layers=[dense(4), dense(1, "linear")])
GOOD = experiment_text(**CIRCLE)


def circle(**changes):
    return experiment_text(**{**CIRCLE, **changes})


def sine(**changes):
    return experiment_text(**{**SINE, **changes})


@pytest.fixture(scope="module")
def good_params():
    return Session(parse_experiment(GOOD)).parameters()


class Files:
    """A folder of inputs for one case; ``exp`` writes an experiment file there."""

    def __init__(self, folder, params):
        self.folder, self.params = folder, params

    def path(self, name):
        return self.folder / name

    def exp(self, text=GOOD, name="exp.toml"):
        path = self.folder / name
        path.write_text(text, encoding="utf-8")
        return path

    def write(self, name, content):
        path = self.folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    def npz(self, name, **changes):
        """The good parameters with some arrays changed (None drops one)."""
        arrays = {**self.params, **changes}
        path = self.folder / name
        np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
        return path

    def truncated(self, name):
        good = self.npz("whole.npz")
        return self.write(name, good.read_bytes()[:100])


def with_nan(params, key):
    values = params[key].copy()
    values.flat[1] = np.nan
    return values


CSV_ROWS = "x1,x2,y\n1,2,0\n3,abc,1\n5,6,0\n"
CLEAN_ROWS = "x1,x2,y\n1,2,0\n3,4,1\n5,6,0\n"

# (id, arguments from a Files object, what the one error line must name)
CASES = [
    ("experiment missing", lambda f: ["run", f.path("nope.toml")], ["nope.toml"]),
    ("experiment is a folder", lambda f: ["run", f.folder], ["{folder}"]),
    (
        "experiment not UTF-8",
        lambda f: ["run", f.write("latin.toml", "schema = 1 # caf\xe9".encode("latin-1"))],
        ["latin.toml", "UTF-8"],
    ),
    ("TOML syntax", lambda f: ["run", f.exp("schema = = 1\n")], ["exp.toml", "not valid TOML"]),
    ("schema", lambda f: ["run", f.exp(circle(schema=2))], ["exp.toml", "schema = 2"]),
    (
        "unknown key",
        lambda f: ["run", f.exp(edit(GOOD, "epochs = 3", "epochz = 3"))],
        ["exp.toml", "training.epochz"],
    ),
    ("batch size", lambda f: ["run", f.exp(circle(batch_size=0))], ["training.batch_size"]),
    (
        "bce on regression",
        lambda f: ["run", f.exp(sine(loss="bce"))],
        ["exp.toml", "training.loss = 'bce'", "[0, 1]"],
    ),
    (
        "cross_entropy on one output",
        lambda f: ["run", f.exp(sine(loss="cross_entropy"))],
        ["exp.toml", "training.loss = 'cross_entropy'"],
    ),
    (
        "r2 on class labels",
        lambda f: ["run", f.exp(circle(metrics=["r2"]))],
        ["exp.toml", "training.metrics[0] = 'r2'"],
    ),
    (
        "accuracy on regression",
        lambda f: ["run", f.exp(sine(metrics=["accuracy"]))],
        ["exp.toml", "training.metrics[0] = 'accuracy'"],
    ),
    (
        "output width",
        lambda f: ["run", f.exp(circle(layers=[dense(4), dense(3)]))],
        ["exp.toml", "model.layers[1].units = 3"],
    ),
    (
        "input shape",
        lambda f: [
            "run",
            f.exp(experiment_text([dense(10)], dataset="digits", data='shape = "image"')),
        ],
        ["exp.toml", "model.layers[0]", "flatten"],
    ),
    (
        "unknown feature",
        lambda f: ["run", f.exp(circle(features=["x1", "cos(x1)"]))],
        ["exp.toml", "data.features[1] = 'cos(x1)'"],
    ),
    (
        "features of a non-2D set",
        lambda f: ["run", f.exp(sine(features=["x1"]))],
        ["exp.toml", "data.features"],
    ),
    (
        "no training rows",
        lambda f: ["run", f.exp(circle(data="n = 2", validation=0.9))],
        ["exp.toml", "data.validation_fraction"],
    ),
    (
        "optimizer without residuals",
        lambda f: [
            "run",
            f.exp(
                circle(
                    layers=[dense(2, "linear")],
                    loss="cross_entropy",
                    optimizer="levenberg_marquardt",
                )
            ),
        ],
        ["exp.toml", "training.optimizer = 'levenberg_marquardt'"],
    ),
    (
        "CSV file missing (relative to the experiment)",
        lambda f: ["run", f.exp(circle(dataset="csv", data='path = "gone.csv"'))],
        ["{folder}/gone.csv", "file not found"],
    ),
    (
        "CSV cell",
        lambda f: [
            "run",
            f.exp(circle(dataset="csv", data=f'path = "{f.write("d.csv", CSV_ROWS).name}"')),
        ],
        ["d.csv", "row 3", "column 'x2'", "'abc'"],
    ),
    (
        "CSV target column",
        lambda f: [
            "run",
            f.exp(
                circle(
                    dataset="csv",
                    data=f'path = "{f.write("d.csv", CLEAN_ROWS).name}"\ntarget = "label"',
                )
            ),
        ],
        ["d.csv", "no column named 'label'"],
    ),
    ("--steps 0", lambda f: ["run", f.exp(), "--steps", 0], ["--steps 0"]),
    ("--epochs -1", lambda f: ["run", f.exp(), "--epochs", -1], ["--epochs -1"]),
    ("--seed -1", lambda f: ["run", f.exp(), "--seed", -1], ["--seed -1"]),
    (
        "--checkpoint-every 0",
        lambda f: ["run", f.exp(), "--checkpoint-every", 0],
        ["--checkpoint-every 0"],
    ),
    ("--steps not a number", lambda f: ["run", f.exp(), "--steps", "ten"], ["--steps", "'ten'"]),
    ("unknown option", lambda f: ["run", f.exp(), "--stepz", 3], ["--stepz"]),
    (
        "--out is a file",
        lambda f: ["run", f.exp(), "--out", f.write("taken", "x")],
        ["--out", "taken", "is a file"],
    ),
    (
        "--out inside a file",
        lambda f: ["run", f.exp(), "--out", f.write("taken", "x") / "run"],
        ["--out", "taken", "not a folder"],
    ),
    (
        "--out parent missing",
        lambda f: ["run", f.exp(), "--out", f.path("a") / "b" / "c"],
        ["--out", "{folder}/a/b", "does not exist"],
    ),
    (
        "--plugins-dir missing",
        lambda f: ["run", f.exp(), "--plugins-dir", f.path("mine")],
        ["--plugins-dir", "mine", "no such folder"],
    ),
    (
        "--plugins-dir a file",
        lambda f: ["run", f.exp(), "--plugins-dir", f.write("one.py", "")],
        ["--plugins-dir", "one.py", "is a file"],
    ),
    (
        "--plugins-dir before the command",
        lambda f: ["--plugins-dir", f.path("mine"), "run", f.exp()],
        ["--plugins-dir", "mine", "no such folder"],
    ),
    (
        "--plugins-dir before an instrument",
        lambda f: ["--plugins-dir", f.path("mine"), "hessian", f.exp()],
        ["--plugins-dir", "mine"],
    ),
    (
        "--init-params missing",
        lambda f: ["run", f.exp(), "--init-params", f.path("p.npz")],
        ["--init-params", "p.npz", "file not found"],
    ),
    (
        "--init-params a folder",
        lambda f: ["run", f.exp(), "--init-params", f.folder],
        ["--init-params", "folder"],
    ),
    (
        "--init-params empty",
        lambda f: ["run", f.exp(), "--init-params", f.write("p.npz", b"")],
        ["--init-params", "p.npz", "empty"],
    ),
    (
        "--init-params truncated",
        lambda f: ["run", f.exp(), "--init-params", f.truncated("p.npz")],
        ["--init-params", "p.npz", "truncated"],
    ),
    (
        "--init-params a renamed .npy",
        lambda f: [
            "run",
            f.exp(),
            "--init-params",
            f.write("p.npz", b"\x93NUMPY\x01\x00v\x00{'descr': '<f8'}"),
        ],
        ["--init-params", "p.npz", ".npy"],
    ),
    (
        "--init-params text",
        lambda f: ["run", f.exp(), "--init-params", f.write("p.npz", "layers.0.W = 1\n")],
        ["--init-params", "p.npz", "not an .npz archive"],
    ),
    (
        "--init-params NaN",
        lambda f: [
            "run",
            f.exp(),
            "--init-params",
            f.npz("p.npz", **{"layers.0.W": with_nan(f.params, "layers.0.W")}),
        ],
        ["--init-params", "p.npz", "'layers.0.W'", "nan", "finite"],
    ),
    (
        "--init-params infinity",
        lambda f: [
            "run",
            f.exp(),
            "--init-params",
            f.npz("p.npz", **{"layers.1.b": np.array([np.inf])}),
        ],
        ["--init-params", "p.npz", "'layers.1.b'", "inf"],
    ),
    (
        "--init-params wrong shape",
        lambda f: ["run", f.exp(), "--init-params", f.npz("p.npz", **{"layers.0.W": np.ones(3)})],
        ["--init-params", "p.npz", "'layers.0.W'", "(3,)"],
    ),
    (
        "--init-params missing key",
        lambda f: ["run", f.exp(), "--init-params", f.npz("p.npz", **{"layers.1.b": None})],
        ["--init-params", "p.npz", "missing 'layers.1.b'"],
    ),
    (
        "--init-params text values",
        lambda f: [
            "run",
            f.exp(),
            "--init-params",
            f.npz("p.npz", **{"layers.1.b": np.array(["0.5"])}),
        ],
        ["--init-params", "p.npz", "'layers.1.b'", "real numbers"],
    ),
    (
        "instrument --params empty",
        lambda f: ["hessian", f.exp(), "--params", f.write("p.npz", b"")],
        ["--params", "p.npz", "empty"],
    ),
    (
        "plugins check a missing file",
        lambda f: ["plugins", "check", f.path("mine.py")],
        ["mine.py"],
    ),
]
PROGRESS = ("preparing compiled kernels", "training ")
ARGPARSE = {"--steps not a number", "unknown option"}  # argparse prints its usage first


def arguments(build, folder, params):
    return [str(a) for a in build(Files(folder, params))]


def expected(needles, folder):
    return [needle.replace("{folder}", str(folder)) for needle in needles]


def test_the_table_is_large_enough():
    assert len(CASES) >= 25 and len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("name", "build", "needles"), CASES, ids=[c[0] for c in CASES])
def test_a_user_mistake_is_one_line_and_exit_code_2(
    tmp_path, capsys, monkeypatch, good_params, name, build, needles
):
    monkeypatch.chdir(tmp_path)  # a mistake let through would write its default outputs here
    code = main(arguments(build, tmp_path, good_params))
    captured = capsys.readouterr()
    err = captured.err
    assert code == 2, err
    assert "Traceback" not in err + captured.out
    lines = err.strip().splitlines()
    line = lines[-1]
    assert line.startswith(("error:", "gradient-lab")), err
    if name not in ARGPARSE:  # one error line, after at most the line on preparing kernels
        assert [x for x in lines if not x.startswith(PROGRESS)] == [line], err
    for needle in expected(needles, tmp_path):
        assert needle in line, (needle, line)


SUBPROCESS_CASES = ["--init-params truncated", "--out inside a file", "bce on regression"]


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_a_user_mistake_in_a_real_process(tmp_path, good_params, name):
    _, build, needles = next(case for case in CASES if case[0] == name)
    done = subprocess.run(
        [sys.executable, "-m", "gradient_lab.engine.cli", *arguments(build, tmp_path, good_params)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    for needle in expected(needles, tmp_path):
        assert needle in done.stderr


# --------------------------------------------------------------------- options' positions


DROPIN = """from gradient_lab.plugins.activations import Tanh


class Mine(Tanh):
    name = "mine"


PLUGINS = [Mine]
"""


def test_common_options_work_before_and_after_the_command(tmp_path, capsys):
    (tmp_path / "mine.py").write_text(DROPIN)
    for argv in (
        ["--plugins-dir", str(tmp_path), "plugins", "list", "--json"],
        ["plugins", "--plugins-dir", str(tmp_path), "list", "--json"],
        ["plugins", "list", "--json", "--plugins-dir", str(tmp_path)],
    ):
        assert main(argv) == 0
        names = {r["name"]: r["source"] for r in json.loads(capsys.readouterr().out)}
        assert names.get("mine") == "folder", argv
    assert main(["--safe-mode", "--plugins-dir", str(tmp_path), "plugins", "list", "--json"]) == 0
    assert "mine" not in {r["name"] for r in json.loads(capsys.readouterr().out)}


# -------------------------------------------------------------------------- exit codes


def test_help_documents_the_exit_codes(capsys):
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    assert main(["run", "--help"]) == 0
    run_help = capsys.readouterr().out
    for text in (top, run_help):
        assert "exit codes:" in text
        for code, meaning in (("0", "success"), ("1", "internal error"), ("2", "mistake"),
                              ("3", "diverged"), ("130", "interrupted")):  # fmt: skip
            assert any(line.split()[:1] == [code] and meaning in line for line in text.splitlines())
    assert "--checkpoint-every N" in run_help


DIVERGING = sine(optimizer='{ name = "sgd", lr = 1e6 }', epochs=30)


def strict_json(text):
    def refuse(token):
        raise AssertionError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_a_divergence_exits_3_and_writes_the_outputs_up_to_it(tmp_path, capsys):
    exp = tmp_path / "exp.toml"
    exp.write_text(DIVERGING)
    out = tmp_path / "out"
    assert main(["run", str(exp), "--out", str(out), "--quiet"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err and "training diverged at step" in err
    summary = strict_json((out / "summary.json").read_text())
    manifest = strict_json((out / "manifest.json").read_text())
    assert summary["diverged"].startswith("training diverged") and not summary["complete"]
    assert manifest["diverged"] == summary["diverged"] and manifest["step"] == summary["steps"]
    assert main(["hessian", str(exp), "--out", str(tmp_path / "h.npz")]) == 3  # instruments too


def test_json_outputs_write_null_for_undefined_values(tmp_path, capsys):
    rows = "".join(f"{i / 10},0.5\n" for i in range(20))  # a constant target: R² is undefined
    (tmp_path / "flat.csv").write_text("x,y\n" + rows)
    exp = tmp_path / "exp.toml"
    exp.write_text(sine(dataset="csv", data='path = "flat.csv"\ntask = "regression"'))
    assert main(["run", str(exp), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    summary = strict_json((tmp_path / "out" / "summary.json").read_text())
    assert summary["final"]["train_r2"] is None and summary["final"]["val_r2"] is None
    assert isinstance(summary["final"]["train_mse"], float)
    assert main(["plugins", "list", "--json", "--safe-mode"]) == 0
    strict_json(capsys.readouterr().out)


def test_an_internal_error_exits_1_with_its_traceback(monkeypatch, capsys):
    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "command_plugins", broken)
    assert main(["plugins", "list"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "internal error (ZeroDivisionError: a bug)" in err
