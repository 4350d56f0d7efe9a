"""Built-in losses with PyTorch's definitions and ``mean`` reduction.

``value`` and ``grad`` are the readable NumPy versions (the conformance check compares them with
finite differences and with the engine's inlined copies named by ``inline``).
"""

import numpy as np

from gradient_lab.engine.plugin_api import Loss, Param, PluginError


class MSE(Loss):
    name = "mse"
    inline = "mse"
    formula = r"L = \frac{1}{N}\sum_i (\hat y_i - y_i)^2"
    teaching = "Mean squared error: large mistakes cost much more than small ones."

    def value(self, pred, target):
        return float(np.mean((pred - target) ** 2))

    def grad(self, pred, target):
        return 2.0 * (pred - target) / pred.size

    def residuals(self, pred, target):
        return ((pred - target) / np.sqrt(pred.size)).ravel()

    def residual_scale(self, pred, target):
        return np.full(pred.shape, 1.0 / np.sqrt(pred.size))


class MAE(Loss):
    name = "mae"
    inline = "mae"
    formula = r"L = \frac{1}{N}\sum_i |\hat y_i - y_i|"
    teaching = "Mean absolute error (PyTorch's L1Loss): robust to outliers, constant-size gradient."

    def value(self, pred, target):
        return float(np.mean(np.abs(pred - target)))

    def grad(self, pred, target):
        return np.sign(pred - target) / pred.size


class Huber(Loss):
    name = "huber"
    inline = "huber"
    params = (
        Param(
            "delta",
            "float",
            1.0,
            "where the loss turns from quadratic to linear",
            low=0.0,
            low_inclusive=False,
        ),
    )
    formula = (
        r"\ell(d) = \begin{cases} \tfrac12 d^2 & |d| < \delta \\"
        r" \delta(|d| - \tfrac12\delta) & \text{otherwise} \end{cases}"
    )
    teaching = "Quadratic near zero like MSE, linear far away like MAE."

    def value(self, pred, target):
        d = np.abs(pred - target)
        delta = self.hp["delta"]
        return float(np.mean(np.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))))

    def grad(self, pred, target):
        d = pred - target
        delta = self.hp["delta"]
        return np.where(np.abs(d) < delta, d, delta * np.sign(d)) / pred.size


class BCE(Loss):
    name = "bce"
    inline = "bce"
    target_encoding = "zero_one"
    formula = r"L = -\frac{1}{N}\sum_i y_i \log p_i + (1 - y_i)\log(1 - p_i)"
    teaching = (
        "Binary cross-entropy on probabilities (after a sigmoid): the log-likelihood of the labels."
    )

    def value(self, pred, target):
        log_p = np.maximum(np.log(pred), -100.0)
        log_q = np.maximum(np.log1p(-pred), -100.0)
        return float(-np.mean(target * log_p + (1.0 - target) * log_q))

    def grad(self, pred, target):
        return (pred - target) / np.maximum((1.0 - pred) * pred, 1e-12) / pred.size


class BCEWithLogits(Loss):
    name = "bce_with_logits"
    inline = "bce_with_logits"
    target_encoding = "zero_one"
    takes_logits = True
    formula = r"L = \frac{1}{N}\sum_i \max(z_i, 0) - z_i y_i + \log(1 + e^{-|z_i|})"
    teaching = (
        "Binary cross-entropy computed from raw scores, stable where sigmoid then log is not."
    )

    def value(self, pred, target):
        return float(np.mean(np.maximum(pred, 0) - pred * target + np.log1p(np.exp(-np.abs(pred)))))

    def grad(self, pred, target):
        return (0.5 * (1.0 + np.tanh(0.5 * pred)) - target) / pred.size


class CrossEntropy(Loss):
    name = "cross_entropy"
    target_encoding = "one_hot"
    task = "classification"
    params = (
        Param(
            "input",
            "str",
            "auto",
            "what the model outputs: raw scores (logits) or "
            "probabilities from a softmax layer; auto decides from the last activation",
            choices=("auto", "logits", "probabilities"),
        ),
    )
    formula = r"L = -\frac{1}{B}\sum_b \sum_k y_{bk} \log \mathrm{softmax}(z_b)_k"
    teaching = (
        "The negative log-probability of the right class, averaged over the batch. After a "
        "softmax its gradient with respect to the scores is p - y."
    )

    def for_output(self, output_activation):
        choice = self.hp["input"]
        if choice == "auto":
            choice = "probabilities" if output_activation == "softmax" else "logits"
        if choice == "probabilities" and output_activation != "softmax":
            raise PluginError("cross_entropy.input = 'probabilities' needs a softmax output layer")
        return CrossEntropy(input=choice)

    def inline_name(self):
        if self.hp["input"] == "probabilities":
            return "cross_entropy_probs"
        return "cross_entropy_logits"

    def value(self, pred, target):
        if self.hp["input"] == "probabilities":
            return float(-np.sum(target * np.maximum(np.log(pred), -100.0)) / len(pred))
        top = pred.max(axis=1, keepdims=True)
        lse = top + np.log(np.exp(pred - top).sum(axis=1, keepdims=True))
        return float(np.sum(target * (lse - pred)) / len(pred))

    def grad(self, pred, target):
        if self.hp["input"] == "probabilities":
            return -target / pred / len(pred)
        e = np.exp(pred - pred.max(axis=1, keepdims=True))
        soft = e / e.sum(axis=1, keepdims=True)
        return (soft * target.sum(axis=1, keepdims=True) - target) / len(pred)


class Hinge(Loss):
    name = "hinge"
    inline = "hinge"
    target_encoding = "plus_minus_one"
    task = "classification"
    params = (Param("margin", "float", 1.0, "how far past the boundary a point must be", low=0.0),)
    formula = r"L = \frac{1}{N}\sum_i \max(0, m - y_i \hat y_i), \quad y_i \in \{-1, +1\}"
    teaching = "The support-vector loss: points beyond the margin on the right side cost nothing."

    def value(self, pred, target):
        return float(np.mean(np.maximum(0.0, self.hp["margin"] - target * pred)))

    def grad(self, pred, target):
        active = (self.hp["margin"] - target * pred) > 0
        return np.where(active, -target, 0.0) / pred.size


class MultiMargin(Loss):
    name = "multi_margin"
    inline = "multi_margin"
    target_encoding = "one_hot"
    task = "classification"
    params = (
        Param("margin", "float", 1.0, "required gap between the right score and others", low=0.0),
    )
    formula = r"L = \frac{1}{B}\sum_b \frac{1}{K}\sum_{k \ne y_b} \max(0, m - z_{b,y_b} + z_{bk})"
    teaching = "Multiclass hinge (PyTorch's MultiMarginLoss): every wrong class must trail by m."

    def _parts(self, pred, target):
        cls = target.argmax(axis=1)
        right = pred[np.arange(len(pred)), cls][:, None]
        gaps = np.maximum(0.0, self.hp["margin"] - right + pred)
        gaps[np.arange(len(pred)), cls] = 0.0
        return cls, gaps

    def value(self, pred, target):
        _, gaps = self._parts(pred, target)
        return float(gaps.sum() / pred.shape[1] / len(pred))

    def grad(self, pred, target):
        cls, gaps = self._parts(pred, target)
        g = (gaps > 0).astype(pred.dtype)
        g[np.arange(len(pred)), cls] = -g.sum(axis=1)
        return g / pred.shape[1] / len(pred)


PLUGINS = [MSE, MAE, Huber, BCE, BCEWithLogits, CrossEntropy, Hinge, MultiMargin]
