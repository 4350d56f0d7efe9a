"""Built-in image layers: a 2D convolution and 2D max pooling on channels-first images.

A sample is an image (C, H, W) and a batch (B, C, H, W), as in PyTorch. Both layers cut the
(padded) input into windows with a strided view, so the forward pass of the convolution is one
matrix product (the "im2col" form) and its backward two more plus a scatter-add back onto the
image. Each backward sits next to its forward.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from gradient_lab.engine.plugin_api import Layer, Param, PluginError

MAX_SIZE = 64  # largest kernel, stride and padding the forms offer


def _size_param(name, default, help, low=1, high=MAX_SIZE):
    return Param(name, "int", default, help, low=low, high=high)


KERNEL_WIDTH_HELP = "width of the kernel when it is not square; 0: the same as kernel_size"


def _kernel(hp):
    """(height, width) of the kernel: kernel_size, and kernel_width when it is set."""
    return hp["kernel_size"], hp["kernel_width"] or hp["kernel_size"]


def _output_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def _check_image(layer, input_shape):
    """The sample shape as (C, H, W), or a PluginError saying what the layer takes."""
    shape = tuple(int(n) for n in input_shape)
    if len(shape) != 3:
        raise PluginError(
            f"{layer.name} takes images: the input sample shape must be (channels, height, "
            f'width), got {shape}; for the digits data set set shape = "image", and put '
            "flatten only after the image layers"
        )
    return shape


def _check_fits(layer, shape, kernel, padding):
    """The kernel must fit inside the padded image, along both axes."""
    _, height, width = shape
    fields = ("kernel_size", "kernel_width" if layer.hp["kernel_width"] else "kernel_size")
    for axis, size, k, field in zip(
        ("height", "width"), (height, width), kernel, fields, strict=True
    ):
        padded = size + 2 * padding
        if k > padded:
            raise PluginError(
                f"{layer.name}.{field} = {k} is not allowed for an input of shape {shape}: the "
                f"kernel is larger than the padded {axis} {size} + 2 * {padding} = {padded}; "
                f"allowed: {field} <= {padded}, or more padding"
            )


def _pad(x, padding, fill):
    """The batch with ``padding`` rows and columns of ``fill`` on every side of each image."""
    if not padding:
        return x
    return np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=fill)


def _windows(x, kernel, stride):
    """Every window of the (padded) batch: a strided view (B, C, H_out, W_out, kh, kw)."""
    (sh, sw), view = stride, sliding_window_view(x, tuple(kernel), axis=(2, 3))
    return view[:, :, ::sh, ::sw]


def _crop(dx, padding):
    """The gradient on the padded image without its border: the gradient on the input."""
    height, width = dx.shape[2:]
    return dx[:, :, padding : height - padding, padding : width - padding]


class Conv2d(Layer):
    name = "conv2d"
    params = (
        Param("out_channels", "int", 4, "number of filters (output channels)", low=1, high=4096),
        _size_param("kernel_size", 3, "height of the kernel, and its width unless kernel_width"),
        _size_param("kernel_width", 0, KERNEL_WIDTH_HELP, low=0),
        _size_param("stride", 1, "step between neighbouring windows, down and across"),
        _size_param("padding", 0, "rows and columns of zeros added on every side", low=0),
        Param("activation", "str", "linear", "activation applied to the output"),
        Param("activation_params", "dict", {}, "the activation's own parameters"),
        Param("use_bias", "bool", True, "add a learned bias b, one per filter"),
    )
    formula = (
        r"z_{o,i,j} = b_o + \sum_{c} \sum_{u=0}^{k_h-1} \sum_{v=0}^{k_w-1} "
        r"W_{o,c,u,v}\, x_{c,\, s i + u - p,\, s j + v - p}, \quad y = f(z)"
    )
    teaching = (
        "Each filter slides over the image and, at every position, takes a weighted sum of the "
        "small window under it (all input channels) plus a bias: the same few weights are "
        "reused everywhere, so a filter finds its pattern wherever it appears. Stride s skips "
        "positions, padding p adds zeros around the border. The output has one channel per "
        "filter and (H + 2p - k) // s + 1 rows. W is (out, in, k_h, k_w), as in PyTorch."
    )
    check_input_shape = (2, 5, 5)

    def build(self, input_shape, ctx):
        channels, _, _ = shape = _check_image(self, input_shape)
        kernel, padding = _kernel(self.hp), self.hp["padding"]
        _check_fits(self, shape, kernel, padding)
        self.act = ctx.make("activation", self.hp["activation"], **self.hp["activation_params"])
        if not self.act.elementwise:
            raise PluginError(
                f"conv2d.activation = {self.hp['activation']!r} is not allowed: it works on "
                "rows, which would mix the pixels of an image row; choose an element-wise "
                "activation (relu, tanh, ...) or apply it after flatten"
            )
        out, (kh, kw) = self.hp["out_channels"], kernel
        fan_in, fan_out = channels * kh * kw, out * kh * kw
        ctx.add_weight("W", ctx.weight((out, channels, kh, kw), fan_in, fan_out))
        if self.hp["use_bias"]:
            ctx.add_weight("b", ctx.zeros((out,)))

    def output_shape(self, input_shape):
        _, height, width = _check_image(self, input_shape)
        (kh, kw), stride, padding = _kernel(self.hp), self.hp["stride"], self.hp["padding"]
        return (
            self.hp["out_channels"],
            _output_size(height, kh, stride, padding),
            _output_size(width, kw, stride, padding),
        )

    def forward(self, ctx, p, x):
        w, stride = p["W"], self.hp["stride"]
        out = w.shape[0]
        padded = _pad(x, self.hp["padding"], 0.0)
        win = _windows(padded, w.shape[2:], (stride, stride))
        batch, _, h_out, w_out = win.shape[:4]
        # one row per output pixel, one column per weight of a filter: (B·H_out·W_out, C·kh·kw)
        cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(batch * h_out * w_out, -1)
        z = cols @ w.reshape(out, -1).T
        if self.hp["use_bias"]:
            z += p["b"]
        z = np.ascontiguousarray(z.reshape(batch, h_out, w_out, out).transpose(0, 3, 1, 2))
        y = self.act.apply(z)
        ctx.save(cols=cols, padded_shape=padded.shape, z=z, y=y)
        ctx.observe(pre_activation=z, activation=y)
        return y

    def backward(self, ctx, p, dy):
        cols, z, y = ctx.saved["cols"], ctx.saved["z"], ctx.saved["y"]
        w = p["W"]
        out = w.shape[0]
        dz = self.act.gradient(z, y, dy)
        dz_rows = dz.transpose(0, 2, 3, 1).reshape(-1, out)  # rows as the columns of cols
        grads = {"W": (dz_rows.T @ cols).reshape(w.shape)}
        if self.hp["use_bias"]:
            grads["b"] = dz.sum(axis=(0, 2, 3))
        dcols = dz_rows @ w.reshape(out, -1)
        dx = _fold(dcols, ctx.saved["padded_shape"], w.shape[2:], self.hp["stride"])
        return _crop(dx, self.hp["padding"]), grads

    def output_activation(self):
        return self.hp["activation"]


def _fold(dcols, padded_shape, kernel, stride):
    """The adjoint of cutting windows: each window's gradient added back onto the padded image
    where it was cut from (where windows overlap, their gradients add up)."""
    batch, channels = padded_shape[:2]
    kh, kw = kernel
    h_out = (padded_shape[2] - kh) // stride + 1
    w_out = (padded_shape[3] - kw) // stride + 1
    pieces = dcols.reshape(batch, h_out, w_out, channels, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    dx = np.zeros(padded_shape, dtype=dcols.dtype)
    rows, cols = stride * (h_out - 1) + 1, stride * (w_out - 1) + 1
    for u in range(kh):
        for v in range(kw):
            dx[:, :, u : u + rows : stride, v : v + cols : stride] += pieces[:, :, u, v]
    return dx


class MaxPool2d(Layer):
    name = "max_pool2d"
    decay_names = ()
    params = (
        _size_param("kernel_size", 2, "height of the window, and its width unless kernel_width"),
        _size_param("kernel_width", 0, KERNEL_WIDTH_HELP, low=0),
        _size_param("stride", 0, "step between windows; 0: the kernel size (side by side)", low=0),
        Param(
            "padding",
            "int",
            0,
            "rows and columns of -inf added on every side, at most half the kernel",
            low=0,
        ),
    )
    formula = (
        r"y_{c,i,j} = \max_{0 \le u < k_h,\ 0 \le v < k_w} x_{c,\, s_h i + u - p,\, s_w j + v - p}"
    )
    teaching = (
        "Keeps the largest value of every window, channel by channel, so the image shrinks and "
        "small shifts of a feature barely change the output. It has no weights. The gradient "
        "goes only to the input that won its window; when several inputs tie, to the first of "
        "them in reading order (left to right, then top to bottom), as PyTorch does on the CPU. "
        "Padding adds -inf, which never wins."
    )
    check_input_shape = (2, 5, 5)

    def __init__(self, **hp):
        super().__init__(**hp)
        for k in _kernel(self.hp):
            if self.hp["padding"] > k // 2:
                raise PluginError(
                    f"max_pool2d.padding = {self.hp['padding']} is not allowed with a kernel of "
                    f"{k}: expected at most half the kernel, padding <= {k // 2}"
                )

    def _stride(self):
        kh, kw = _kernel(self.hp)
        stride = self.hp["stride"]
        return (stride, stride) if stride else (kh, kw)

    def build(self, input_shape, ctx):
        _check_fits(self, _check_image(self, input_shape), _kernel(self.hp), self.hp["padding"])

    def output_shape(self, input_shape):
        channels, height, width = _check_image(self, input_shape)
        (kh, kw), (sh, sw), padding = _kernel(self.hp), self._stride(), self.hp["padding"]
        return (
            channels,
            _output_size(height, kh, sh, padding),
            _output_size(width, kw, sw, padding),
        )

    def forward(self, ctx, p, x):
        kh, kw = kernel = _kernel(self.hp)
        padded = _pad(x, self.hp["padding"], -np.inf)
        win = _windows(padded, kernel, self._stride())
        flat = win.reshape(*win.shape[:4], kh * kw)
        winner = flat.argmax(axis=-1)  # the first maximum in reading order
        y = np.take_along_axis(flat, winner[..., None], axis=-1)[..., 0]
        ctx.save(winner=winner, padded_shape=padded.shape)
        ctx.observe(activation=y)
        return y

    def backward(self, ctx, p, dy):
        winner, padded_shape = ctx.saved["winner"], ctx.saved["padded_shape"]
        (_, kw), (sh, sw), padding = _kernel(self.hp), self._stride(), self.hp["padding"]
        batch, channels, height, width = padded_shape
        h_out, w_out = winner.shape[2:]
        du, dv = np.divmod(winner, kw)
        rows = sh * np.arange(h_out).reshape(-1, 1) + du
        cols = sw * np.arange(w_out) + dv
        planes = (height * width) * np.arange(batch * channels).reshape(batch, channels, 1, 1)
        index = (planes + rows * width + cols).ravel()
        size = batch * channels * height * width
        dx = np.bincount(index, weights=dy.ravel(), minlength=size).astype(dy.dtype, copy=False)
        return _crop(dx.reshape(padded_shape), padding), {}


PLUGINS = [Conv2d, MaxPool2d]
"""The built-in image layers, registered through the entry-point group as a third party's are."""
