"""The README's examples work as written: the experiment file and the drop-in plugin."""

import re
from pathlib import Path

import pytest

from gradient_lab.engine.loading.conformance import check_path
from gradient_lab.engine.training.experiment import parse_experiment
from gradient_lab.engine.training.session import Session

README = (Path(__file__).parent.parent / "README.md").read_text()


def code_block(after_heading: str, language: str) -> str:
    section = README[README.index(after_heading) :]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert match, f"no {language} block after {after_heading!r}"
    return match.group(1)


def test_readme_experiment_example_loads():
    exp = parse_experiment(code_block("## Experiment files", "toml"))
    assert exp.data.dataset == "spiral" and exp.training.batch_size == 10
    assert [layer["units"] for layer in exp.model.layers] == [8, 8, 1]


@pytest.mark.parametrize(
    "after, name", [("### Write a plugin", "bent_identity"), ("A layer is pure over", "scale")]
)
def test_readme_plugin_examples_pass_the_check(tmp_path, after, name):
    path = tmp_path / f"{name}.py"
    path.write_text(code_block(after, "python"))
    results = check_path(path)
    assert [record.name for record, _ in results] == [name]
    failed = [item for _, report in results for item in report.items if not item.passed]
    assert not failed, failed


@pytest.mark.parametrize(
    "heading", ["### Images and sequences", "### Generative models: architectures that own"]
)
def test_readme_model_examples_train(heading):
    text = "schema = 1\nseed = 1\n" + code_block(heading, "toml")
    session = Session(parse_experiment(text))
    session.run_steps(3)
    assert session.step == 3 and session.diverged is None


def test_every_picture_the_readme_shows_is_in_the_repository():
    import re

    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert len(pictures) >= 10
    root = Path(__file__).parent.parent
    assert [p for p in pictures if not (root / p).is_file()] == []
