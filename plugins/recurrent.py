"""Built-in recurrent layers: an LSTM over sequences.

A sample is a sequence of shape (T, F): T time steps of F features; a batch is (B, T, F), batch
first as PyTorch's ``batch_first=True``. The gates come in PyTorch's order (input i, forget f,
cell candidate g, output o) along the last axis of every gate array, and the weights are stored
input-major so every product is ``x @ W``, as in the dense layer.

The time loop runs in compiled kernels (``lstm_steps``, ``lstm_steps_backward``); the same
steps in plain NumPy (``lstm_steps_numpy``, ``lstm_steps_backward_numpy``) are there to read
and to check the kernels against. Everything outside the loop (the input projection of all
time steps at once, and the weight gradients summed over time) is one matrix product each.
"""

import math

import numba as nb
import numpy as np

from gradient_lab.engine.plugin_api import Layer, Param, PluginError

# NumPy error semantics (no division checks) let LLVM vectorize the loops; the helpers are
# inlined into the time loop.
_kernel = nb.njit(cache=True, nogil=True, error_model="numpy")
_inline = nb.njit(cache=True, nogil=True, error_model="numpy", inline="always")


# ---------------------------------------------------------------------------- gate functions
# The C library's exp and tanh are scalar calls that stop LLVM from vectorizing a loop; these
# are plain arithmetic. e^x - 1 for x >= 0 is reduced to 2^k (e^r - 1) + (2^k - 1) with
# x = k ln 2 + r, |r| <= ln(2) / 2, and e^r - 1 from its Taylor series (error below 1e-17). Both
# gate functions are ratios of that one quantity, without cancellation anywhere:
#   tanh |x| = E / (E + 2) with E = e^(2|x|) - 1,
#   sigma(-|x|) = 1 / (2 + E) and sigma(|x|) = (1 + E) / (2 + E) with E = e^|x| - 1.

_LN2_HI = 6.93147180369123816490e-01  # ln 2 in two parts: k * _LN2_HI is exact for small k
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.0 / math.log(2.0)
_TAYLOR = tuple(1.0 / math.factorial(n) for n in range(13, 0, -1))  # 1/13!, ..., 1/1!
_TANH_CAP = 19.5  # tanh rounds to 1 from here on
_SIGMOID_CAP = 80.0  # sigma(-80) = 1.8e-35: beyond, sigma(-|x|) stays at that value


@_inline
def _expm1_positive(x):
    """e^x - 1 for 0 <= x <= 85 (NaN stays NaN)."""
    k = int(x * _INV_LN2 + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    q = 0.0
    for coefficient in _TAYLOR:
        q = (q + coefficient) * r
    half = k >> 1  # 2^k as two factors, each an exact power of two below 2^63
    scale = float(np.int64(1) << half) * float(np.int64(1) << (k - half))
    return scale * q + (scale - 1.0)


@_inline
def _tanh(x):
    a = abs(x)
    e = _expm1_positive(2.0 * (_TANH_CAP if a > _TANH_CAP else a))
    return math.copysign(e / (e + 2.0), x)


@_inline
def _sigmoid(x):
    a = abs(x)
    e = _expm1_positive(_SIGMOID_CAP if a > _SIGMOID_CAP else a)
    return (1.0 + e) / (2.0 + e) if x >= 0.0 else 1.0 / (2.0 + e)


@_kernel
def gate_functions(x, which):
    """sigma(x) (which = 0) or tanh(x) (which = 1) element by element, as the kernels compute
    them: for tests against NumPy's."""
    flat = x.ravel()
    out = np.empty_like(flat)
    for q in range(flat.size):
        out[q] = _sigmoid(flat[q]) if which == 0 else _tanh(flat[q])
    return out.reshape(x.shape)


# ---------------------------------------------------------------------------------- the loop
# Every array is batch-first: xw and gates (B, T, 4H), cells, hidden states and tanh of the
# cells (B, T, H). The samples of a batch do not interact, so the kernels run one sample's whole
# sequence at a time, with its h, c and their gradients in small contiguous buffers.


@_kernel
def lstm_steps(xw, w_hh, gates, cells, hidden, tanh_cells):
    """The forward time loop: xw[b, t] = x_t @ W_ih + b is given for every step; fills the
    gates (after their functions), the cells, the hidden states and tanh of the cells."""
    batch, steps, four = xw.shape
    units = four // 4
    a = np.empty(four, dtype=xw.dtype)
    for s in range(batch):
        for t in range(steps):
            for j in range(four):
                a[j] = xw[s, t, j]
            if t > 0:
                for k in range(units):
                    h_k = hidden[s, t - 1, k]
                    for j in range(four):
                        a[j] += h_k * w_hh[k, j]
            # one short loop per array written, so that LLVM can vectorize each
            for j in range(2 * units):
                gates[s, t, j] = _sigmoid(a[j])
            for j in range(2 * units, 3 * units):
                gates[s, t, j] = _tanh(a[j])
            for j in range(3 * units, four):
                gates[s, t, j] = _sigmoid(a[j])
            for j in range(units):
                c_prev = cells[s, t - 1, j] if t > 0 else 0.0
                i_g = gates[s, t, j] * gates[s, t, 2 * units + j]
                cells[s, t, j] = gates[s, t, units + j] * c_prev + i_g
            for j in range(units):
                tanh_cells[s, t, j] = _tanh(cells[s, t, j])
            for j in range(units):
                hidden[s, t, j] = gates[s, t, 3 * units + j] * tanh_cells[s, t, j]


@_kernel
def lstm_steps_backward(dhidden, gates, cells, tanh_cells, w_hh_t, dgates):
    """Backpropagation through time: from dL/dh_t given by the layers above (every step) to
    dL/d(pre-activation of the gates) at every step, into ``dgates`` (B, T, 4H). ``w_hh_t`` is
    W_hh transposed, (4H, H) and contiguous, so the product runs along its rows."""
    batch, steps, units = dhidden.shape
    four = 4 * units
    dh = np.zeros(units, dtype=dhidden.dtype)  # dL/dh_t from step t + 1
    dc = np.zeros(units, dtype=dhidden.dtype)  # dL/dc_t from step t + 1
    for s in range(batch):
        for j in range(units):
            dh[j] = 0.0
            dc[j] = 0.0
        for t in range(steps - 1, -1, -1):
            # dh and dc become dL/dh_t and dL/dc_t, then dL/d(pre-activations) block by block
            for j in range(units):
                dh[j] += dhidden[s, t, j]
            for j in range(units):
                o, tc = gates[s, t, 3 * units + j], tanh_cells[s, t, j]
                dc[j] += dh[j] * o * (1.0 - tc * tc)
            for j in range(units):
                i, g = gates[s, t, j], gates[s, t, 2 * units + j]
                dgates[s, t, j] = dc[j] * g * i * (1.0 - i)
            for j in range(units):
                f = gates[s, t, units + j]
                c_prev = cells[s, t - 1, j] if t > 0 else 0.0
                dgates[s, t, units + j] = dc[j] * c_prev * f * (1.0 - f)
            for j in range(units):
                i, g = gates[s, t, j], gates[s, t, 2 * units + j]
                dgates[s, t, 2 * units + j] = dc[j] * i * (1.0 - g * g)
            for j in range(units):
                o, tc = gates[s, t, 3 * units + j], tanh_cells[s, t, j]
                dgates[s, t, 3 * units + j] = dh[j] * tc * o * (1.0 - o)
            for j in range(units):
                dc[j] *= gates[s, t, units + j]  # dL/dc_(t-1) through c_t = f c_(t-1) + ...
            for j in range(units):
                dh[j] = 0.0
            for k in range(four):
                da_k = dgates[s, t, k]
                for j in range(units):
                    dh[j] += da_k * w_hh_t[k, j]


def _sigmoid_numpy(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


def lstm_steps_numpy(xw, w_hh):
    """``lstm_steps`` in plain NumPy, all samples at once, one time step at a time:
    returns (gates, cells, hidden, tanh_cells)."""
    batch, steps, four = xw.shape
    units = four // 4
    gates = np.empty_like(xw)
    cells = np.empty((batch, steps, units), dtype=xw.dtype)
    hidden, tanh_cells = np.empty_like(cells), np.empty_like(cells)
    h = np.zeros((batch, units), dtype=xw.dtype)
    c = np.zeros_like(h)
    for t in range(steps):
        a = xw[:, t] + h @ w_hh
        i = _sigmoid_numpy(a[:, :units])
        f = _sigmoid_numpy(a[:, units : 2 * units])
        g = np.tanh(a[:, 2 * units : 3 * units])
        o = _sigmoid_numpy(a[:, 3 * units :])
        c = f * c + i * g
        tc = np.tanh(c)
        h = o * tc
        gates[:, t] = np.concatenate([i, f, g, o], axis=1)
        cells[:, t], tanh_cells[:, t], hidden[:, t] = c, tc, h
    return gates, cells, hidden, tanh_cells


def lstm_steps_backward_numpy(dhidden, gates, cells, tanh_cells, w_hh):
    """``lstm_steps_backward`` in plain NumPy: returns dL/d(gate pre-activations) (B, T, 4H)."""
    batch, steps, units = dhidden.shape
    dgates = np.empty_like(gates)
    dh = np.zeros((batch, units), dtype=dhidden.dtype)
    dc = np.zeros_like(dh)
    for t in range(steps - 1, -1, -1):
        g_t = gates[:, t]
        i, f = g_t[:, :units], g_t[:, units : 2 * units]
        g, o = g_t[:, 2 * units : 3 * units], g_t[:, 3 * units :]
        tc = tanh_cells[:, t]
        c_prev = cells[:, t - 1] if t > 0 else np.zeros_like(tc)
        dh = dhidden[:, t] + dh
        dc = dh * o * (1.0 - tc * tc) + dc
        da = np.concatenate(
            [
                dc * g * i * (1.0 - i),
                dc * c_prev * f * (1.0 - f),
                dc * i * (1.0 - g * g),
                dh * tc * o * (1.0 - o),
            ],
            axis=1,
        )
        dgates[:, t] = da
        dc = dc * f
        dh = da @ w_hh.T
    return dgates


# -------------------------------------------------------------------------------- the layer


class LSTM(Layer):
    """Long short-term memory over sequences (T, F) -> (T, H), or the last hidden state (H,).

    Weights: ``W_ih`` (F, 4H) and ``W_hh`` (H, 4H), the four gates side by side in the order
    i, f, g, o, and one bias ``b`` (4H,) (PyTorch keeps two, b_ih and b_hh; only their sum
    matters). Each gate's block is drawn from the initializer on its own, as the weight of a
    dense layer: in W_ih an (F, H) block with fan_in = F and fan_out = H, in W_hh an (H, H)
    block with fan_in = fan_out = H (so an orthogonal initializer makes every gate's recurrent
    matrix orthogonal). The bias starts at zero except the forget gate's, at ``forget_bias``.
    h_0 = c_0 = 0.

    Shown to the viewer at every step of every sample: ``hidden`` and ``cell`` (B, T, H),
    ``gates`` (B, T, 4H, after their functions, in the order i, f, g, o) and ``activation``
    (the output).
    """

    name = "lstm"
    decay_names = ("W_ih", "W_hh")
    check_input_shape = (4, 3)
    params = (
        Param("units", "int", 8, "size H of the hidden and cell states", low=1, high=10_000),
        Param(
            "return_sequences",
            "bool",
            True,
            "output the hidden state of every time step (T, H); false: only the last one (H,)",
        ),
        Param(
            "forget_bias",
            "float",
            1.0,
            "initial bias of the forget gate (1 keeps the cell's memory from the start)",
        ),
    )
    formula = (
        r"i_t = \sigma(x_t W_{ii} + h_{t-1} W_{hi} + b_i),\quad "
        r"f_t = \sigma(x_t W_{if} + h_{t-1} W_{hf} + b_f),\quad "
        r"g_t = \tanh(x_t W_{ig} + h_{t-1} W_{hg} + b_g),\quad "
        r"o_t = \sigma(x_t W_{io} + h_{t-1} W_{ho} + b_o),\quad "
        r"c_t = f_t \odot c_{t-1} + i_t \odot g_t,\quad h_t = o_t \odot \tanh(c_t)"
    )
    teaching = (
        "A recurrent layer reads a sequence one step at a time and carries two states along: the "
        "cell c, a memory that is only scaled and added to, and the hidden state h, its "
        "filtered view that is also the output. Three gates between 0 and 1 decide, per unit "
        "and per step, how much of the old memory to keep (forget gate f), how much of the new "
        "candidate g to write (input gate i) and how much of the memory to show (output gate "
        "o). Because c is updated by addition rather than by repeated multiplication with a "
        "weight matrix, gradients can travel back over many steps without vanishing, as long "
        "as the forget gate stays open. Training unrolls the loop and backpropagates through "
        "time."
    )

    def build(self, input_shape, ctx):
        features = _sequence_shape(input_shape)[1]
        units = self.hp["units"]
        for name, rows in (("W_ih", features), ("W_hh", units)):
            blocks = [ctx.weight((rows, units), rows, units) for _ in range(4)]  # i, f, g, o
            ctx.add_weight(name, np.concatenate(blocks, axis=1))
        bias = ctx.zeros((4 * units,))
        bias[units : 2 * units] = self.hp["forget_bias"]
        ctx.add_weight("b", bias)

    def output_shape(self, input_shape):
        steps = _sequence_shape(input_shape)[0]
        units = self.hp["units"]
        return (steps, units) if self.hp["return_sequences"] else (units,)

    def forward(self, ctx, p, x):
        w_ih, w_hh = p["W_ih"], p["W_hh"]
        x = np.ascontiguousarray(x)
        if x.ndim != 3 or x.shape[2] != w_ih.shape[0]:
            raise PluginError(
                f"lstm expects a batch of sequences (B, T, {w_ih.shape[0]}), got shape {x.shape}"
            )
        batch, steps, features = x.shape
        units = w_hh.shape[0]
        xw = x.reshape(-1, features) @ w_ih
        xw += p["b"]  # in place: one large temporary less
        xw = xw.reshape(batch, steps, 4 * units)
        gates = np.empty_like(xw)
        cells = np.empty((batch, steps, units), dtype=xw.dtype)
        hidden, tanh_cells = np.empty_like(cells), np.empty_like(cells)
        lstm_steps(xw, np.ascontiguousarray(w_hh), gates, cells, hidden, tanh_cells)
        ctx.save(x=x, gates=gates, cells=cells, hidden=hidden, tanh_cells=tanh_cells)
        y = hidden if self.hp["return_sequences"] else np.ascontiguousarray(hidden[:, -1])
        ctx.observe(hidden=hidden, cell=cells, gates=gates, activation=y)
        return y

    def backward(self, ctx, p, dy):
        saved = ctx.saved
        x, hidden = saved["x"], saved["hidden"]
        batch, steps, features = x.shape
        units = hidden.shape[2]
        if self.hp["return_sequences"]:
            dhidden = np.ascontiguousarray(dy, dtype=hidden.dtype)
        else:
            dhidden = np.zeros_like(hidden)
            dhidden[:, -1] = dy
        dgates = np.empty_like(saved["gates"])
        w_hh_t = np.ascontiguousarray(p["W_hh"].T)
        lstm_steps_backward(
            dhidden, saved["gates"], saved["cells"], saved["tanh_cells"], w_hh_t, dgates
        )
        da = dgates.reshape(-1, 4 * units)
        grads = {
            "W_ih": x.reshape(-1, features).T @ da,
            "W_hh": hidden[:, :-1].reshape(-1, units).T @ dgates[:, 1:].reshape(-1, 4 * units),
            "b": da.sum(axis=0),
        }
        dx = (da @ p["W_ih"].T).reshape(batch, steps, features)
        return dx, grads


def _sequence_shape(input_shape):
    """(T, F) of one sample, or a PluginError that says what the layer takes."""
    shape = tuple(input_shape)
    if len(shape) != 2 or min(shape) < 1:
        raise PluginError(
            f"lstm expects sequences of shape (T, F) per sample (T time steps of F features), "
            f"got {shape}"
        )
    return shape


PLUGINS = [LSTM]
