"""Writing a new drop-in plugin from a template: a working plugin of the chosen kind, with
comments telling a student what to change, saved under a name that is free, so nothing a
student wrote is ever overwritten.

The templates are text files shipped with the app (``assets/plugin_templates/<kind>.py.txt``)
holding two placeholders: ``{{name}}``, the plugin's name, and ``{{Class}}``, its class name.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path

NAME = "{{name}}"
CLASS = "{{Class}}"
TEMPLATE_KINDS = (
    "activation",
    "loss",
    "optimizer",
    "layer",
    "initializer",
    "regularizer",
    "lr_schedule",
    "dataset",
    "metric",
    "objective",
    "architecture",
)
MAX_TRIES = 1000


def template_text(kind: str) -> str:
    """The template of ``kind``, placeholders still in it."""
    if kind not in TEMPLATE_KINDS:
        raise ValueError(f"no template for {kind!r}; there are: {', '.join(TEMPLATE_KINDS)}")
    source = files("gradient_lab.assets").joinpath("plugin_templates", f"{kind}.py.txt")
    return source.read_text(encoding="utf-8")


def class_name(name: str) -> str:
    """my_activation_2 -> MyActivation2."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def fill(template: str, name: str) -> str:
    return template.replace(NAME, name).replace(CLASS, class_name(name))


def candidate_names(kind: str) -> Iterable[str]:
    """my_<kind>, my_<kind>_2, my_<kind>_3, ..."""
    yield f"my_{kind}"
    for n in range(2, MAX_TRIES):
        yield f"my_{kind}_{n}"


def write_plugin(kind: str, folder: str | Path, taken: Iterable[str] = ()) -> Path:
    """Write a new plugin of ``kind`` into ``folder`` (made if missing) and return its path.

    The file and the plugin share a name that no file in the folder has and that is not in
    ``taken`` (the names of the kind already registered, which would clash). The file is
    created exclusively: a file that appears meanwhile is left alone and the next name tried."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = template_text(kind)
    taken = set(taken)
    for name in candidate_names(kind):
        path = folder / f"{name}.py"
        if name in taken or path.exists():
            continue
        try:
            with path.open("x", encoding="utf-8") as handle:
                handle.write(fill(text, name))
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free name for a new {kind} in {folder}")
