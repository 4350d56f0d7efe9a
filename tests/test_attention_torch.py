"""Layer norm, multi-head attention and the pre-norm transformer block against PyTorch in
float64: forward, backward, attention weights, and 20 training steps from the same weights."""

import numpy as np
import pytest

from gradient_lab.engine.loading.discovery import default_registry
from tests.experiments import single_layer

torch = pytest.importorskip("torch")  # in CI a skip fails the run (tests/conftest.py)

B, T, F, HEADS = 3, 5, 6, 2


def single(name, input_shape, seed=0, **hp):
    return single_layer(name, input_shape, seed, "xavier_uniform", **hp)


def tensor(array, grad=False):
    t = torch.from_numpy(np.array(array, dtype=np.float64))
    return t.requires_grad_() if grad else t


def close(ours, theirs, rtol=1e-11, atol=1e-12):
    if isinstance(theirs, torch.Tensor):
        theirs = theirs.detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol)


def torch_attention(params, prefix="", features=F):
    """nn.MultiheadAttention holding the weights of our attention layer (x W: transposed)."""
    w = {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}
    mha = torch.nn.MultiheadAttention(features, HEADS, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        mha.in_proj_weight.copy_(tensor(np.concatenate([w["W_q"].T, w["W_k"].T, w["W_v"].T])))
        mha.in_proj_bias.copy_(tensor(np.concatenate([w["b_q"], w["b_k"], w["b_v"]])))
        mha.out_proj.weight.copy_(tensor(w["W_o"].T))
        mha.out_proj.bias.copy_(tensor(w["b_o"]))
    return mha


def attention_grads(mha):
    wq, wk, wv = mha.in_proj_weight.grad.numpy().reshape(3, F, F)
    bq, bk, bv = mha.in_proj_bias.grad.numpy().reshape(3, F)

    return {
        "W_q": wq.T, "W_k": wk.T, "W_v": wv.T, "W_o": mha.out_proj.weight.grad.numpy().T,
        "b_q": bq, "b_k": bk, "b_v": bv, "b_o": mha.out_proj.bias.grad.numpy(),
    }  # fmt: skip


def randomize(layer, seed):
    """Biases away from zero too, so every gradient is exercised."""
    for value in layer.params.values():
        value[...] = np.random.default_rng(seed).normal(scale=0.5, size=value.shape)
        seed += 1


def test_layer_norm_matches_pytorch():
    rng = np.random.default_rng(0)
    layer = single("layer_norm", (T, F))
    randomize(layer, 1)
    ln = torch.nn.LayerNorm(F, dtype=torch.float64)
    with torch.no_grad():
        ln.weight.copy_(tensor(layer.params["gamma"]))
        ln.bias.copy_(tensor(layer.params["beta"]))
    x, dy = rng.normal(size=(B, T, F)) * 3 + 1, rng.normal(size=(B, T, F))
    xt = tensor(x, grad=True)
    yt = ln(xt)
    yt.backward(tensor(dy))
    close(layer.forward(x, training=True), yt)
    close(layer.backward(dy), xt.grad)
    close(layer.grads["gamma"], ln.weight.grad)
    close(layer.grads["beta"], ln.bias.grad)


@pytest.mark.parametrize("causal", [False, True])
def test_self_attention_matches_pytorch(causal):
    rng = np.random.default_rng(2)
    layer = single("multi_head_attention", (T, F), heads=HEADS, causal=causal)
    randomize(layer, 3)
    mha = torch_attention(layer.params)
    x, dy = rng.normal(size=(B, T, F)), rng.normal(size=(B, T, F))
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if causal else None
    xt = tensor(x, grad=True)
    yt, weights = mha(xt, xt, xt, attn_mask=mask, average_attn_weights=False)
    yt.backward(tensor(dy))
    close(layer.forward(x, training=True), yt)
    close(layer.last_call.observed["attention"], weights)
    close(layer.backward(dy), xt.grad)
    for name, grad in attention_grads(mha).items():
        close(layer.grads[name], grad)
    if causal:
        assert np.all(np.triu(layer.last_call.observed["attention"], 1) == 0.0)


def test_a_mask_input_and_cross_attention_match_pytorch():
    """(x, mask, memory): keys and values from a memory of another length, and a mask per
    sample; the mask gets no gradient."""
    rng = np.random.default_rng(4)
    layer = single("multi_head_attention", (T, F), heads=HEADS)
    randomize(layer, 5)
    mha = torch_attention(layer.params)
    x, memory = rng.normal(size=(B, T, F)), rng.normal(size=(B, 7, F))
    allowed = rng.random((B, T, 7)) < 0.7
    allowed[:, :, 0] = True  # every query sees at least one key
    dy = rng.normal(size=(B, T, F))
    xt, mt = tensor(x, grad=True), tensor(memory, grad=True)
    torch_mask = torch.from_numpy(~allowed).repeat_interleave(HEADS, dim=0)
    yt, _ = mha(xt, mt, mt, attn_mask=torch_mask)
    yt.backward(tensor(dy))
    close(layer.forward(x, allowed, memory, training=True), yt)
    dx, d_mask, d_memory = layer.backward(dy)
    assert d_mask is None
    close(dx, xt.grad)
    close(d_memory, mt.grad)
    for name, grad in attention_grads(mha).items():
        close(layer.grads[name], grad)


class TorchBlock(torch.nn.Module):
    """The pre-norm block written out in PyTorch: x + MHA(LN(x)), then + MLP(LN(h))."""

    def __init__(self, params, prefix="", features=F, hidden=8, length=T):
        super().__init__()
        p = {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}
        self.ln1, self.ln2 = (torch.nn.LayerNorm(features, dtype=torch.float64) for _ in range(2))
        self.attn = torch_attention(p, "attn.", features)
        self.fc1 = torch.nn.Linear(features, hidden, dtype=torch.float64)
        self.fc2 = torch.nn.Linear(hidden, features, dtype=torch.float64)
        with torch.no_grad():
            for ln, name in ((self.ln1, "ln1"), (self.ln2, "ln2")):
                ln.weight.copy_(tensor(p[f"{name}.gamma"]))
                ln.bias.copy_(tensor(p[f"{name}.beta"]))
            for fc, name in ((self.fc1, "fc1"), (self.fc2, "fc2")):
                fc.weight.copy_(tensor(p[f"{name}.W"].T))
                fc.bias.copy_(tensor(p[f"{name}.b"]))
        self.mask = torch.triu(torch.ones(length, length, dtype=torch.bool), 1)

    def forward(self, x):
        u = self.ln1(x)
        h = x + self.attn(u, u, u, attn_mask=self.mask, need_weights=False)[0]
        return h + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(h))))

    def ours(self):
        """Our parameter names and the matching PyTorch gradients or values."""
        out = {"ln1.gamma": self.ln1.weight, "ln1.beta": self.ln1.bias}
        out |= {"ln2.gamma": self.ln2.weight, "ln2.beta": self.ln2.bias}
        out |= {"fc1.W": self.fc1.weight, "fc1.b": self.fc1.bias}
        out |= {"fc2.W": self.fc2.weight, "fc2.b": self.fc2.bias}
        return out


def block_and_torch(seed=6):
    block = single("transformer_block", (T, F), heads=HEADS, hidden=8, activation="gelu")
    randomize(block, seed)
    return block, TorchBlock(block.params)


def test_the_transformer_block_matches_pytorch_forward_and_backward():
    rng = np.random.default_rng(7)
    block, reference = block_and_torch()
    assert [n.path for n in block.nodes] == [
        "layer", "layer.ln1", "layer.attn", "layer.ln2", "layer.fc1", "layer.fc2",
    ]  # fmt: skip
    x, dy = rng.normal(size=(B, T, F)), rng.normal(size=(B, T, F))
    xt = tensor(x, grad=True)
    yt = reference(xt)
    yt.backward(tensor(dy))
    close(block.forward(x, training=True), yt)
    close(block.backward(dy), xt.grad)
    for name, param in reference.ours().items():
        grad = param.grad.numpy()
        close(block.grads[name], grad.T if name.endswith(".W") else grad)
    for name, grad in attention_grads(reference.attn).items():
        close(block.grads[f"attn.{name}"], grad)


def test_twenty_adam_steps_of_the_block_match_pytorch():
    """Same weights, same batches: predict a shifted copy of the sequence, MSE, Adam."""
    rng = np.random.default_rng(8)
    block, reference = block_and_torch(seed=9)
    adam = default_registry().create("optimizer", "adam", lr=0.01)
    state = adam.init(block.theta)
    torch_adam = torch.optim.Adam(reference.parameters(), lr=0.01)
    for step in range(20):
        x = rng.normal(size=(B, T, F))
        target = np.roll(x, 1, axis=1)
        y = block.forward(x, training=True)
        loss = float(np.mean((y - target) ** 2))
        block.backward(2.0 * (y - target) / y.size)
        update, state = adam.update(block.grad, state, block.theta)
        block.theta += update
        yt = reference(tensor(x))
        torch_loss = torch.nn.functional.mse_loss(yt, tensor(target))
        torch_adam.zero_grad()
        torch_loss.backward()
        torch_adam.step()
        assert loss == pytest.approx(torch_loss.item(), rel=1e-10), step
    for name, param in reference.ours().items():
        value = param.detach().numpy()
        close(block.params[name], value.T if name.endswith(".W") else value, rtol=1e-9)


SEQUENCE_TEXT = """
schema = 1
seed = 2
[data]
dataset = "delayed_copy"
n = 48
length = 6
validation_fraction = 0.0
[model]
layers = [
  { type = "dense", units = 8 },
  { type = "transformer_block", heads = 2, hidden = 16 },
  { type = "dense", units = 4 },
]
[training]
loss = "cross_entropy"
optimizer = { name = "adam", lr = 0.01 }
batch_size = 16
shuffle = false
epochs = 10
"""


def linear(params, prefix):
    w = params[f"{prefix}.W"]
    layer = torch.nn.Linear(*w.shape, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(tensor(w.T))
        layer.bias.copy_(tensor(params[f"{prefix}.b"]))
    return layer


def test_a_session_trains_a_transformer_on_per_position_targets_as_pytorch():
    """Cross-entropy at every position of (batch, T, classes), PyTorch's mean over batch and
    time: the session's loss at each of 20 Adam steps and the weights after them."""
    from gradient_lab.engine.training.experiment import parse_experiment
    from gradient_lab.engine.training.session import Session

    session = Session(parse_experiment(SEQUENCE_TEXT))
    params = session.parameters()
    model = torch.nn.Sequential(
        linear(params, "layers.0"),
        TorchBlock(params, "layers.1.", features=8, hidden=16, length=6),
        linear(params, "layers.2"),
    )
    adam = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = session.x_train, session.data.y_train
    for step in range(20):
        start = (step * 16) % len(x)
        logits = model(tensor(x[start : start + 16]))
        labels = torch.from_numpy(y[start : start + 16])
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels)
        adam.zero_grad()
        loss.backward()
        adam.step()
        assert session.step_batch() == pytest.approx(loss.item(), rel=1e-10), step
    for name, param in model[1].ours().items():
        value = param.detach().numpy()
        ours = session.parameters()[f"layers.1.{name}"]
        close(ours, value.T if name.endswith(".W") else value, rtol=1e-8, atol=1e-11)
