"""Built-in image layers: a 2D convolution and 2D max pooling on channels-first images.

A sample is an image (C, H, W) and a batch (B, C, H, W), as in PyTorch. The convolution copies
every window of the zero-padded input into one row of a matrix (the "im2col" form), so its
forward pass is one matrix product and its backward two more plus the adjoint copy, which adds
each window's gradient back where the window was cut from. The copies and the pooling loops are
small compiled kernels (cached on disk); the products are NumPy's. Each backward sits next to
its forward.
"""

import numba
import numpy as np

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


def _check_gradient(layer, dy, out_shape):
    """The compiled loops index by the saved shapes: an upstream gradient of another shape is
    refused before they run."""
    if dy.shape != tuple(out_shape):
        raise PluginError(
            f"{layer.name}: backward got dL/dy shaped {dy.shape}, but the forward output "
            f"was {tuple(out_shape)}"
        )


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


@numba.njit(cache=True)
def _im2col(x, kh, kw, stride, padding, h_out, w_out, cols):
    """cols[(n H_out + i) W_out + j, (c kh + u) kw + v] = x[n, c, s i + u - p, s j + v - p],
    and 0 where that falls in the padding."""
    batch, channels, height, width = x.shape
    for n in range(batch):
        for i in range(h_out):
            for j in range(w_out):
                row = (n * h_out + i) * w_out + j
                for c in range(channels):
                    for u in range(kh):
                        r = stride * i + u - padding
                        for v in range(kw):
                            q = stride * j + v - padding
                            inside = r >= 0 and r < height and q >= 0 and q < width
                            cols[row, (c * kh + u) * kw + v] = x[n, c, r, q] if inside else 0.0


@numba.njit(cache=True)
def _col2im(dcols, kh, kw, stride, padding, h_out, w_out, dx):
    """The adjoint of _im2col: every entry of dcols added onto dx (zeros on entry) where its
    input came from; the padding's entries are dropped, overlapping windows add up."""
    batch, channels, height, width = dx.shape
    for n in range(batch):
        for i in range(h_out):
            for j in range(w_out):
                row = (n * h_out + i) * w_out + j
                for c in range(channels):
                    for u in range(kh):
                        r = stride * i + u - padding
                        if r < 0 or r >= height:
                            continue
                        for v in range(kw):
                            q = stride * j + v - padding
                            if q >= 0 and q < width:
                                dx[n, c, r, q] += dcols[row, (c * kh + u) * kw + v]


@numba.njit(cache=True)
def _max_pool(x, kh, kw, sh, sw, padding, y, winner):
    """y = the largest input of each window, winner = where it is (r W + q in its channel).

    Padding is skipped, never compared: as PyTorch's CPU loop, the first real input of the
    window starts as the best and a later one replaces it only if strictly larger (or NaN), so
    of tied inputs the first in reading order wins."""
    batch, channels, height, width = x.shape
    h_out, w_out = y.shape[2], y.shape[3]
    for n in range(batch):
        for c in range(channels):
            for i in range(h_out):
                for j in range(w_out):
                    best, where = -np.inf, -1
                    for u in range(kh):
                        r = sh * i + u - padding
                        if r < 0 or r >= height:
                            continue
                        for v in range(kw):
                            q = sw * j + v - padding
                            if q < 0 or q >= width:
                                continue
                            value = x[n, c, r, q]
                            if where < 0 or value > best or np.isnan(value):
                                best, where = value, r * width + q
                    y[n, c, i, j] = best
                    winner[n, c, i, j] = where


@numba.njit(cache=True)
def _max_pool_backward(dy, winner, dx):
    """Each window's gradient added onto its winner (dx holds zeros on entry)."""
    batch, channels, h_out, w_out = dy.shape
    width = dx.shape[3]
    for n in range(batch):
        for c in range(channels):
            for i in range(h_out):
                for j in range(w_out):
                    where = winner[n, c, i, j]
                    dx[n, c, where // width, where % width] += dy[n, c, i, j]


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
        x = np.ascontiguousarray(x)
        w, stride, padding = p["W"], self.hp["stride"], self.hp["padding"]
        (out, _, kh, kw), (batch, channels, height, width) = w.shape, x.shape
        h_out = _output_size(height, kh, stride, padding)
        w_out = _output_size(width, kw, stride, padding)
        # one row per output pixel, one column per weight of a filter: (B·H_out·W_out, C·kh·kw)
        cols = np.empty((batch * h_out * w_out, channels * kh * kw), dtype=x.dtype)
        _im2col(x, kh, kw, stride, padding, h_out, w_out, cols)
        z = cols @ w.reshape(out, -1).T
        if self.hp["use_bias"]:
            z += p["b"]
        z = np.ascontiguousarray(z.reshape(batch, h_out, w_out, out).transpose(0, 3, 1, 2))
        y = self.act.apply(z)
        ctx.save(cols=cols, x_shape=x.shape, z=z, y=y)
        ctx.observe(pre_activation=z, activation=y)
        return y

    def backward(self, ctx, p, dy):
        cols, z, y = ctx.saved["cols"], ctx.saved["z"], ctx.saved["y"]
        w, stride, padding = p["W"], self.hp["stride"], self.hp["padding"]
        out, _, kh, kw = w.shape
        _check_gradient(self, dy, y.shape)
        dz = self.act.gradient(z, y, dy)
        dz_rows = dz.transpose(0, 2, 3, 1).reshape(-1, out)  # rows as the rows of cols
        grads = {"W": (dz_rows.T @ cols).reshape(w.shape)}
        if self.hp["use_bias"]:
            grads["b"] = dz.sum(axis=(0, 2, 3))
        dcols = np.ascontiguousarray(dz_rows @ w.reshape(out, -1))
        dx = np.zeros(ctx.saved["x_shape"], dtype=dcols.dtype)
        _col2im(dcols, kh, kw, stride, padding, dz.shape[2], dz.shape[3], dx)
        return dx, grads

    def output_activation(self):
        return self.hp["activation"]


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
        x = np.ascontiguousarray(x)
        (kh, kw), (sh, sw), padding = _kernel(self.hp), self._stride(), self.hp["padding"]
        batch, channels, height, width = x.shape
        h_out = _output_size(height, kh, sh, padding)
        w_out = _output_size(width, kw, sw, padding)
        y = np.empty((batch, channels, h_out, w_out), dtype=x.dtype)
        winner = np.empty(y.shape, dtype=np.int64)
        _max_pool(x, kh, kw, sh, sw, padding, y, winner)
        ctx.save(winner=winner, x_shape=x.shape)
        ctx.observe(activation=y)
        return y

    def backward(self, ctx, p, dy):
        dy = np.ascontiguousarray(dy)
        _check_gradient(self, dy, ctx.saved["winner"].shape)
        dx = np.zeros(ctx.saved["x_shape"], dtype=dy.dtype)
        _max_pool_backward(dy, ctx.saved["winner"], dx)
        return dx, {}


PLUGINS = [Conv2d, MaxPool2d]
"""The built-in image layers, registered through the entry-point group as a third party's are."""
