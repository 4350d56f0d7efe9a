"""Generative models: a GAN and a VAE that own their training steps, the VAE's sampling layer,
and a ring of Gaussians to learn.

Both architectures follow PyTorch's usual loops (the DCGAN tutorial's alternating updates with
the non-saturating generator loss; the VAE's reparameterization trick and KL divergence), so a
student can put the two side by side.
"""

import math
from typing import ClassVar

import numpy as np

from gradient_lab.engine.plugin_api import Architecture, Dataset, Layer, Param, PluginError

TWO_PI = 2.0 * math.pi


class GaussianRing(Dataset):
    name = "gaussian_ring"
    planar = True
    params = (
        Param("n", "int", 512, "number of samples", low=2, high=1_000_000),
        Param("classes", "int", 8, "number of Gaussians on the ring", low=1, high=64),
        Param("radius", "float", 2.0, "radius of the ring", low=0.0),
        Param("std", "float", 0.05, "standard deviation of each Gaussian", low=0.0),
    )
    formula = (
        r"x \sim \mathcal{N}\big(r(\cos\tfrac{2\pi k}{K}, \sin\tfrac{2\pi k}{K}), \sigma^2 I\big)"
    )
    teaching = (
        "K small Gaussians evenly spaced on a circle: the classic test of a generative model. "
        "A generator that covers only some of them shows mode collapse."
    )

    def generate(self, rng):
        n, k = self.hp["n"], self.hp["classes"]
        y = np.arange(n) % k
        angle = TWO_PI * y / k
        centres = self.hp["radius"] * np.column_stack([np.cos(angle), np.sin(angle)])
        return centres + self.hp["std"] * rng.normal(size=(n, 2)), y


class GaussianSample(Layer):
    name = "gaussian_sample"
    check_input_shape = (4,)
    decay_names = ()
    params = (Param("beta", "float", 1.0, "weight of the KL term in the loss", low=0.0),)
    formula = (
        r"z = \mu + e^{\frac12 \log\sigma^2} \odot \varepsilon,"
        r"\ \varepsilon \sim \mathcal{N}(0, I),"
        r"\quad L_{KL} = \frac{\beta}{B}\sum_b \sum_j -\tfrac12"
        r"\left(1 + \log\sigma^2_{bj} - \mu^2_{bj} - \sigma^2_{bj}\right)"
    )
    teaching = (
        "The reparameterization trick: the first half of the input is the mean μ, the second "
        "half log σ². Sampling z = μ + σ ε with ε drawn outside the network lets gradients flow "
        "into μ and σ. It adds the KL divergence from N(0, I) to the loss; at evaluation z = μ."
    )

    def build(self, input_shape, ctx):
        if len(input_shape) != 1 or input_shape[0] % 2:
            raise PluginError(
                f"gaussian_sample expects flat samples of even width (μ and log σ²), got "
                f"shape {tuple(input_shape)}"
            )

    def output_shape(self, input_shape):
        return (input_shape[0] // 2,)

    def forward(self, ctx, p, x):
        half = x.shape[1] // 2
        mu, log_var = x[:, :half], x[:, half:]
        std = np.exp(0.5 * log_var)
        eps = ctx.rng.normal(size=mu.shape) if ctx.training else np.zeros_like(mu)
        z = mu + std * eps
        beta, batch = self.hp["beta"], len(x)
        kl = -0.5 * np.sum(1.0 + log_var - mu * mu - std * std) / batch
        ctx.add_loss("kl", beta * kl)
        ctx.save(mu=mu, std=std, eps=eps)
        ctx.observe(mean=mu, std=std, activation=z)
        return z

    def backward(self, ctx, p, dy):
        mu, std, eps = ctx.saved["mu"], ctx.saved["std"], ctx.saved["eps"]
        scale = self.hp["beta"] / len(mu)
        d_mu = dy + scale * mu
        d_log_var = 0.5 * dy * std * eps - 0.5 * scale * (1.0 - std * std)
        return np.concatenate([d_mu, d_log_var], axis=1), {}


def _mlp(width, depth, activation, outputs, output_activation="linear"):
    hidden = [{"type": "dense", "units": width, "activation": activation}] * depth
    return [*hidden, {"type": "dense", "units": outputs, "activation": output_activation}]


def _flat_width(input_shape):
    if len(input_shape) != 1:
        raise PluginError(
            f"this architecture takes flat samples, got shape {tuple(input_shape)}: use "
            "features or a dataset of flat samples"
        )
    return input_shape[0]


_WIDTH = Param("width", "int", 32, "units in each hidden layer", low=1, high=100_000)
_DEPTH = Param("depth", "int", 2, "hidden layers of each network", low=0, high=16)
_LATENT = Param("latent", "int", 2, "size of the latent code z", low=1, high=1024)


class GAN(Architecture):
    name = "gan"
    params = (
        _LATENT,
        _WIDTH,
        _DEPTH,
        Param("activation", "str", "leaky_relu", "activation of the hidden layers"),
    )
    groups: ClassVar = {"discriminator": ("discriminator",), "generator": ("generator",)}
    losses = ("discriminator", "generator")
    phases = (
        "generator forward",
        "discriminator on real",
        "discriminator on generated",
        "discriminator backward",
        "discriminator update",
        "generator backward",
        "generator update",
    )
    formula = (
        r"L_D = \ell(D(x), 1) + \ell(D(G(z)), 0),\quad L_G = \ell(D(G(z)), 1),"
        r"\quad z \sim \mathcal{N}(0, I)"
    )
    teaching = (
        "Two networks in a game: the discriminator D learns to tell data from the generator's "
        "samples, the generator G learns to fool it. Each has its own optimizer; a step updates "
        "D on a real and a generated batch, then G through the updated D. With the loss "
        "bce_with_logits this is the usual GAN (G maximizes log D(G(z))); with mse, a "
        "least-squares GAN."
    )

    def networks(self, input_shape):
        width, depth, act = self.hp["width"], self.hp["depth"], self.hp["activation"]
        data = _flat_width(input_shape)
        latent = self.hp["latent"]
        return {
            "generator": ((latent,), _mlp(width, depth, act, data)),
            "discriminator": ((data,), _mlp(width, depth, act, 1)),
        }

    def train_step(self, s):
        loss = s.loss
        z = s.rng.normal(size=(len(s.x), self.hp["latent"]))
        fake, generated = s.forward("generator", z)
        yield "generator forward"
        d_real, on_real = s.forward("discriminator", s.x)
        yield "discriminator on real"
        d_fake, on_fake = s.forward("discriminator", fake)
        yield "discriminator on generated"
        real, unreal = np.ones_like(d_real), np.zeros_like(d_fake)
        s.zero_grad("discriminator")
        s.backward(on_real, loss.grad(d_real, real))
        s.backward(on_fake, loss.grad(d_fake, unreal))
        s.record("discriminator", loss.value(d_real, real) + loss.value(d_fake, unreal))
        yield "discriminator backward"
        s.update("discriminator")
        yield "discriminator update"
        d_gen, judged = s.forward("discriminator", fake)
        s.zero_grad("generator")
        d_fake_x = s.backward(judged, loss.grad(d_gen, np.ones_like(d_gen)))
        s.backward(generated, d_fake_x)
        s.record("generator", loss.value(d_gen, np.ones_like(d_gen)))
        yield "generator backward"
        s.update("generator")
        yield "generator update"


class VAE(Architecture):
    name = "vae"
    params = (
        _LATENT,
        _WIDTH,
        Param("depth", "int", 1, "hidden layers of the encoder and of the decoder", low=0),
        Param("activation", "str", "tanh", "activation of the hidden layers"),
        Param("beta", "float", 1.0, "weight of the KL term (β-VAE)", low=0.0),
    )
    groups: ClassVar = {"vae": ("encoder", "decoder")}
    losses = ("reconstruction", "kl")
    phases = ("encode and sample", "decode", "backward", "update")
    formula = (
        r"L = \ell(\mathrm{dec}(z), x) + \beta\,\mathrm{KL}(\mathcal{N}(\mu, \sigma^2) \| "
        r"\mathcal{N}(0, I)),\quad z = \mu + \sigma \odot \varepsilon"
    )
    teaching = (
        "An autoencoder whose code is a distribution: the encoder gives a mean and a variance "
        "for each input, a sample z goes through the decoder, and the loss is the "
        "reconstruction error plus the KL divergence that keeps the codes close to N(0, I), "
        "so that decoding random z gives new samples."
    )

    def networks(self, input_shape):
        width, depth, act = self.hp["width"], self.hp["depth"], self.hp["activation"]
        data, latent = _flat_width(input_shape), self.hp["latent"]
        encoder = _mlp(width, depth, act, 2 * latent)
        encoder.append({"type": "gaussian_sample", "beta": self.hp["beta"]})
        return {
            "encoder": ((data,), encoder),
            "decoder": ((latent,), _mlp(width, depth, act, data)),
        }

    def train_step(self, s):
        z, encoded = s.forward("encoder", s.x)
        yield "encode and sample"
        recon, decoded = s.forward("decoder", z)
        s.record("reconstruction", s.loss.value(recon, s.x))
        yield "decode"
        s.zero_grad("vae")
        s.backward(encoded, s.backward(decoded, s.loss.grad(recon, s.x)))
        yield "backward"
        s.update("vae")
        yield "update"


PLUGINS = [GaussianRing, GaussianSample, GAN, VAE]
