"""Models too large for the machine are refused before anything is allocated, saying what fits."""

import pytest

from gradient_lab.engine.memory import available_bytes, size_text
from gradient_lab.engine.plugin_api import PluginError
from gradient_lab.engine.training.session import SessionError
from tests.experiments import dense, small_session


def test_two_huge_dense_layers_are_refused_before_they_are_allocated():
    """100,000 by 100,000 float64 weights are 74.5 GiB: a one-line error naming the layer."""
    layers = [dense(100_000, "tanh"), dense(100_000, "tanh"), dense(1)]
    with pytest.raises(PluginError) as caught:
        small_session(layers, dataset="circle")
    message = str(caught.value)
    assert message.startswith("model.layers[1]: a weight of 74.5 GiB does not fit")
    assert "choose fewer units" in message


def test_levenberg_marquardt_says_how_many_weights_fit():
    """1-512-512-512-1 (sine has one input) has 526,849 weights: JᵀJ alone is 2.0 TiB."""
    layers = [dense(512), dense(512), dense(512), dense(1, "linear")]
    with pytest.raises(SessionError) as caught:
        small_session(layers, dataset="sine", optimizer='"levenberg_marquardt"')
    message = str(caught.value)
    assert message.startswith("training.optimizer = 'levenberg_marquardt': its Jacobian and JᵀJ")
    assert "526,849 weights and 48 residuals need 2.0 TiB" in message
    assert "it fits networks of up to about" in message


def test_sizes_read_as_people_write_them():
    assert size_text(80 * 2**30) == "80.0 GiB"
    assert size_text(1536) == "1.5 KiB"
    assert size_text(12) == "12 B"
    assert available_bytes() > 0
