"""A pytest plugin that runs the conformance check on your own plugins.

Add this line to your ``conftest.py``::

    pytest_plugins = ["gradient_lab.engine.testing"]

then ask for the ``plugin_check`` fixture in a test::

    def test_my_activation(plugin_check):
        plugin_check(MyActivation)

The test fails with the list of failed items (derivative off, parameters not validated, ...).
Plugins the checked one relies on (a layer's own activation) can be passed after it:
``plugin_check(MyLayer, MyActivation)``; the built-ins are always available.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gradient_lab.engine.loading.conformance import CheckReport, check_plugin
from gradient_lab.engine.loading.discovery import discover
from gradient_lab.engine.loading.registry import Registry

PluginCheck = Callable[..., CheckReport]


def registry_with(*classes: Any) -> Registry:
    """The built-in plugins plus ``classes`` (registered under the source "test")."""
    registry = discover(safe_mode=True)
    for cls in classes:
        registry.add_class(cls, "test", getattr(cls, "__module__", "test"))
    return registry


def assert_conforms(cls: Any, *also: Any) -> CheckReport:
    """Check ``cls``; fail the current test with every failed item if any."""
    report = check_plugin(cls, registry_with(cls, *also))
    if not report.passed:
        pytest.fail(report.describe(only_failures=True), pytrace=False)
    return report


@pytest.fixture
def plugin_check() -> PluginCheck:
    """``plugin_check(cls, *also)`` runs the conformance check and fails the test on any failure."""
    return assert_conforms
