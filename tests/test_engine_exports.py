"""The engine's top-level names, as a notebook user imports them."""

import pytest

import gradient_lab.engine as engine


@pytest.mark.parametrize("name", engine.__all__)
def test_every_exported_name_imports(name):
    assert callable(getattr(engine, name))
