"""The GAN and the VAE: architectures that own their step, against the same loops in PyTorch
(float64, same initial weights, same batches, same noise), and stepped, recorded and rewound
by the session like any other model."""

import numpy as np
import pytest

from gradient_lab.engine.training.experiment import parse_experiment
from gradient_lab.engine.training.session import Session, SessionError

torch = pytest.importorskip("torch")  # in CI a skip fails the run (tests/conftest.py)

STEPS = 20
BATCH = 32

GAN_TEXT = """
schema = 1
seed = 5
[data]
dataset = "gaussian_ring"
n = 128
validation_fraction = 0.0
[model]
architecture = { name = "gan", latent = 3, width = 12, depth = 2 }
[training]
loss = "bce_with_logits"
optimizer = { name = "adam", lr = 0.002 }
batch_size = 32
shuffle = false
epochs = 5
[training.groups.generator]
optimizer = { name = "adam", lr = 0.001, beta1 = 0.5 }
"""

VAE_TEXT = """
schema = 1
seed = 6
[data]
dataset = "gaussian_ring"
n = 128
validation_fraction = 0.0
[model]
architecture = { name = "vae", latent = 2, width = 10, depth = 1, beta = 0.7 }
[training]
loss = "mse"
optimizer = { name = "adam", lr = 0.005 }
batch_size = 32
shuffle = false
epochs = 5
"""


def torch_mlp(params, prefix, depth, activation):
    """nn.Sequential of Linear layers with our weights (W is (inputs, units): Linear's
    weight is its transpose)."""
    layers = []
    for i in range(depth + 1):
        w = params[f"{prefix}.layers.{i}.W"]
        linear = torch.nn.Linear(*w.shape, dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w.T.copy()))
            linear.bias.copy_(torch.from_numpy(params[f"{prefix}.layers.{i}.b"]))
        layers.append(linear)
        if i < depth:
            layers.append(activation())
    return torch.nn.Sequential(*layers)


def same_noise(session):
    """A generator in the state of the session's training noise: the next draws match."""
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = session.noise.bit_generator.state
    return rng


def batches(session):
    x = session.x_train
    for step in range(STEPS):
        start = (step * BATCH) % len(x)
        yield torch.from_numpy(x[start : start + BATCH])


def assert_same_weights(session, nets):
    params = session.parameters()
    for prefix, net in nets.items():
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        for i, linear in enumerate(linears):
            w = params[f"{prefix}.layers.{i}.W"]
            np.testing.assert_allclose(w, linear.weight.detach().numpy().T, rtol=1e-9, atol=1e-12)
            b = params[f"{prefix}.layers.{i}.b"]
            np.testing.assert_allclose(b, linear.bias.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_gan_trains_as_pytorch_s_alternating_loop():
    session = Session(parse_experiment(GAN_TEXT))
    params = session.parameters()
    leaky = torch.nn.LeakyReLU  # the default 0.01 slope, as the leaky_relu plugin's
    gen, disc = (
        torch_mlp(params, "generator", 2, leaky),
        torch_mlp(params, "discriminator", 2, leaky),
    )
    opt_d = torch.optim.Adam(disc.parameters(), lr=0.002)
    opt_g = torch.optim.Adam(gen.parameters(), lr=0.001, betas=(0.5, 0.999))
    bce = torch.nn.BCEWithLogitsLoss()
    for step, real in enumerate(batches(session)):
        z = torch.from_numpy(same_noise(session).normal(size=(BATCH, 3)))
        session.step_batch()
        fake = gen(z)
        out_real, out_fake = disc(real), disc(fake.detach())
        err_d = bce(out_real, torch.ones_like(out_real)) + bce(out_fake, torch.zeros_like(out_fake))
        opt_d.zero_grad()
        err_d.backward()
        opt_d.step()
        judged = disc(fake)
        err_g = bce(judged, torch.ones_like(judged))
        opt_g.zero_grad()
        err_g.backward()
        opt_g.step()
        terms = session.last_loss_terms
        assert terms["discriminator"] == pytest.approx(err_d.item(), rel=1e-10), step
        assert terms["generator"] == pytest.approx(err_g.item(), rel=1e-10), step
    assert_same_weights(session, {"generator": gen, "discriminator": disc})


def test_vae_trains_as_pytorch_with_the_reparameterization_trick():
    session = Session(parse_experiment(VAE_TEXT))
    params = session.parameters()
    enc = torch_mlp(params, "encoder", 1, torch.nn.Tanh)
    dec = torch_mlp(params, "decoder", 1, torch.nn.Tanh)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=0.005)
    for step, x in enumerate(batches(session)):
        eps = torch.from_numpy(same_noise(session).normal(size=(BATCH, 2)))
        session.step_batch()
        h = enc(x)
        mu, log_var = h[:, :2], h[:, 2:]
        z = mu + torch.exp(0.5 * log_var) * eps
        recon = torch.nn.functional.mse_loss(dec(z), x)
        kl = -0.5 * torch.sum(1 + log_var - mu**2 - log_var.exp()) / BATCH
        loss = recon + 0.7 * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        terms = session.last_loss_terms
        assert terms["reconstruction"] == pytest.approx(recon.item(), rel=1e-10), step
        assert terms["kl"] == pytest.approx(0.7 * kl.item(), rel=1e-10), step
        assert session.last_loss == pytest.approx(loss.item(), rel=1e-10), step
    assert_same_weights(session, {"encoder": enc, "decoder": dec})


# ------------------------------------------------------------------- the session drives them


@pytest.mark.parametrize("text", [GAN_TEXT, VAE_TEXT], ids=["gan", "vae"])
def test_an_owned_step_runs_phase_by_phase_and_rewinds_bit_for_bit(text):
    phased, fast = Session(parse_experiment(text)), Session(parse_experiment(text))
    names = []
    for _ in range(len(phased.phase_names) * 3):
        names.append(phased.step_phase().phase)
    assert names == phased.phase_names * 3
    fast.run_steps(3)
    assert phased.model.theta.tobytes() == fast.model.theta.tobytes()
    fast.run_steps(9)
    expected = (fast.model.theta.copy(), fast.optimizer_state(), fast.history.components.array())
    fast.rewind(0)
    fast.run_steps(12)
    assert fast.model.theta.tobytes() == expected[0].tobytes()
    for key, value in expected[1].items():
        assert np.array_equal(fast.optimizer_state()[key], value), key
    assert np.array_equal(fast.history.components.array(), expected[2])
    epoch = fast.history.epochs[-1]
    assert {f"train_{name}" for name in fast.architecture.losses} <= set(epoch)


def test_the_gan_s_groups_update_only_their_own_network():
    session = Session(parse_experiment(GAN_TEXT))
    generator = session.model.network_slice("generator")
    before = session.model.theta.copy()
    while session.next_phase != "generator backward":
        session.step_phase()
    moved = session.model.theta != before
    assert not moved[generator].any()  # the discriminator has stepped, the generator not yet
    assert moved.any()
    session.step_batch()
    assert (session.model.theta[generator] != before[generator]).any()


def test_a_group_the_architecture_lacks_is_named_in_the_error():
    text = GAN_TEXT.replace("[training.groups.generator]", "[training.groups.critic]")
    with pytest.raises(SessionError, match=r"training\.groups\.critic: gan has no such"):
        Session(parse_experiment(text))


def test_layer_values_reach_the_networks_of_an_owned_step():
    session = Session(parse_experiment(VAE_TEXT))
    session.step_phase()
    session.step_phase()  # encode and sample
    values = session.layer_values("encoder.layers.2")
    np.testing.assert_allclose(values["mean"], values["input"][:, :2], rtol=0)
    assert values["activation"].shape == (BATCH, 2)


def test_regularizers_chain_around_every_group_s_optimizer():
    """Clipping in front of each group's optimizer: the gradient the optimizer saw (and views
    show) has the clipped norm, and the run differs from the unclipped one."""
    clipped_text = VAE_TEXT.replace(
        "epochs = 5", 'epochs = 5\nregularizers = [{ name = "clip_norm", max_norm = 1e-6 }]'
    )
    plain, clipped = Session(parse_experiment(VAE_TEXT)), Session(parse_experiment(clipped_text))
    plain.run_steps(3)
    clipped.run_steps(3)
    assert plain.model.theta.tobytes() != clipped.model.theta.tobytes()
    norm = np.linalg.norm(clipped.model.grad)
    assert norm <= 1e-6 * (1 + 1e-9)  # the gradient the optimizer saw, as views show it
