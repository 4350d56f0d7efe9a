"""The step-through training session: one object owns data, model, optimizer, seed and history.

It advances by exactly one phase (select batch, forward through layer k, loss, backward through
layer k, update), one minibatch, one epoch, or N steps in one compiled call; after any phase every
intermediate value can be read. Checkpoints let it return to any recorded step, bit for bit.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradient_lab.engine.compute import kernels
from gradient_lab.engine.compute.fused import (
    FIRST_NEEDED,
    FusedNet,
    inline_rules,
    loss_hp,
    optimizer_hp_vector,
    warm_up,
)
from gradient_lab.engine.loading.discovery import default_registry
from gradient_lab.engine.loading.registry import Registry
from gradient_lab.engine.memory import available_bytes, size_text
from gradient_lab.engine.model import Model
from gradient_lab.engine.model.calls import find_call, layer_losses
from gradient_lab.engine.model.chain import chained_update
from gradient_lab.engine.model.owned_step import Group, OwnedTrainer, network_index
from gradient_lab.engine.model.stepping import CallStepper
from gradient_lab.engine.plugin_api import Call, OptimizerContext, PluginError
from gradient_lab.engine.training.checks import check_session
from gradient_lab.engine.training.data import DataSplit, split_data
from gradient_lab.engine.training.edits import (
    Edit,
    EditLog,
    apply_edit,
    edit_targets,
    hyper_state,
    restore_hypers,
)
from gradient_lab.engine.training.epoch_progress import EpochProgress
from gradient_lab.engine.training.events import Events
from gradient_lab.engine.training.experiment import Experiment
from gradient_lab.engine.training.history import History
from gradient_lab.engine.training.phases import Phase, supervised_phases
from gradient_lab.engine.training.snapshots import Snapshots, StateRecorder
from gradient_lab.engine.training.targets import (
    PerPosition,
    TargetCoding,
    choose_output_activation,
    rows,
    target_coding,
)


class SessionError(PluginError):
    """A request the session cannot honour in its current state (e.g. after divergence)."""


@dataclass
class Divergence:
    """Where a NaN or infinity first appeared."""

    step: int
    where: str  # "forward", "loss" or "parameters"
    layer: int | None
    parameter: str | None

    def describe(self) -> str:
        place = {"forward": f"the output of layer {self.layer}", "loss": "the loss"}.get(
            self.where, f"parameter {self.parameter}"
        )
        return f"training diverged at step {self.step}: non-finite value first in {place}"


@dataclass
class Checkpoint:
    step: int
    epoch: int
    batch_in_epoch: int
    perm: np.ndarray
    theta: np.ndarray
    state: dict[str, np.ndarray]
    opt_state: dict[str, np.ndarray]
    rng_state: Any
    noise_state: Any  # the generator layers draw from while training (dropout, sampling)
    progress: EpochProgress  # this epoch's step losses and outputs so far


# the state at an epoch's end: parameters, the last gradient, and the epoch's sample order
EpochEnd = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass
class StepRecord:
    """What the last phase did, for viewers and logs."""

    phase: str
    step: int
    layer: int | None = None
    loss: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _Context(OptimizerContext):
    """Full-batch residuals, Jacobian and loss for optimizers that ask (Levenberg-Marquardt)."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def _at(self, theta: np.ndarray) -> Any:
        saved = self.s.model.theta.copy()
        self.s.model.theta[...] = theta
        return saved

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        saved = self._at(theta)
        try:
            pred = self.s.model.forward(self.s.data.X_train, training=False)
            r = self.s.loss.residuals(pred, self.s.targets_train)
        finally:
            self.s.model.theta[...] = saved
        if r is None:
            raise SessionError(f"{self.s.loss.name} has no residual form; use a squared-error loss")
        return r

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        """d residuals / d theta, one backward pass per sample and output."""
        model, x = self.s.model, self.s.data.X_train
        saved = self._at(theta)
        try:
            pred = model.forward(x, training=False)
            r0 = self.s.loss.residuals(pred, self.s.targets_train)
            if r0 is None:
                raise SessionError(f"{self.s.loss.name} has no residual form")
            scale = self.s.loss.residual_scale(pred, self.s.targets_train)
            if scale is None:
                raise SessionError(f"{self.s.loss.name} has no residual derivative")
            return model.output_jacobian(x, scale.reshape(len(x), -1))
        finally:
            model.theta[...] = saved

    def loss(self, theta: np.ndarray) -> float:
        saved = self._at(theta)
        try:
            pred = self.s.model.forward(self.s.data.X_train, training=False)
            return float(self.s.loss.value(pred, self.s.targets_train))
        finally:
            self.s.model.theta[...] = saved


class Session:
    """A training run that can be observed and controlled at every granularity."""

    CHECKPOINT_CAPACITY = 256

    def __init__(
        self,
        experiment: Experiment,
        registry: Registry | None = None,
        init_params: dict[str, np.ndarray] | None = None,
        progress: Any = None,
    ) -> None:
        self.experiment = experiment
        self.registry = registry or default_registry()
        self.events = Events()
        if progress is not None:
            self.events.on("compiling", progress)
        reg = self.registry
        seeds = np.random.SeedSequence(experiment.seed).spawn(4)
        data_seed = experiment.data.seed
        data_rng = np.random.default_rng(seeds[0] if data_seed is None else data_seed)
        init_rng = np.random.default_rng(seeds[1])
        self.rng = np.random.default_rng(seeds[2])
        self.noise = np.random.default_rng(seeds[3])
        spec, training = experiment.data, experiment.training

        dataset = reg.create("dataset", spec.dataset, **spec.options)
        self.data: DataSplit = split_data(
            dataset, data_rng, spec.validation_fraction, spec.features, training.shuffle
        )
        self.dtype = np.dtype(experiment.model.dtype)
        loss = reg.create("loss", training.loss.name, **training.loss.options)
        init = reg.create(
            "initializer", experiment.model.init.name, **experiment.model.init.options
        )
        self.architecture = self._architecture()
        if self.architecture is not None and self.architecture.owns_step():
            networks = self.architecture.networks(tuple(self.data.input_shape))
            self.model = Model(
                {name: list(configs) for name, (_, configs) in networks.items()},
                {name: tuple(shape) for name, (shape, _) in networks.items()},
                reg.create,
                init,
                init_rng,
                self.dtype,
            )
            self.loss = loss
            self.coding: TargetCoding | None = None
            self.targets_train = np.asarray(self.data.y_train)
            self.targets_val = np.asarray(self.data.y_val)
        else:
            layers = self._layer_configs(loss)
            self.model = Model(
                layers, self.data.input_shape, reg.create, init, init_rng, self.dtype
            )
            self.loss = loss.for_output(self.model.output_activation())
            self.coding = target_coding(self.data, self.loss, self.model)
            if self.data.steps is not None:
                self.loss = PerPosition(self.loss)
            self.targets_train = self.coding.encode(self.data.y_train).astype(self.dtype)
            self.targets_val = self.coding.encode(self.data.y_val).astype(self.dtype)
        self.x_train = np.ascontiguousarray(self.data.X_train, dtype=self.dtype)
        if init_params is not None:
            self.model.set_params(init_params, "--init-params")
        self.initial_params = self.model.get_params()

        self.optimizer = reg.create(
            "optimizer", training.optimizer.name, **training.optimizer.options
        )
        self.base_lr = float(self.optimizer.hp.get("lr", 0.0))
        self.schedule = None
        self.schedule_per = "epoch"
        if training.schedule is not None:
            self.schedule = reg.create(
                "lr_schedule", training.schedule.name, **training.schedule.options
            )
            self.schedule_per = self.schedule.hp.get("per", "epoch")
        self.regularizers = [
            reg.create("regularizer", r.name, **r.options) for r in training.regularizers
        ]
        self.metrics = [reg.create("metric", name) for name in self._metric_names()]
        self.opt_state = self.optimizer.init(self.model.theta)
        self.opt_state.setdefault("step", np.zeros(1))
        self.context = _Context(self) if self.optimizer.needs_context else None
        self.batch_size = len(self.x_train) if self.context else training.batch_size
        self.batch_size = max(1, min(self.batch_size, len(self.x_train)))
        self.steps_per_epoch = math.ceil(len(self.x_train) / self.batch_size)
        self._check_batch_sizes()
        self._check_memory()
        self.last_update = np.zeros_like(self.model.theta)
        self.owned = self._owned_trainer() if self.coding is None else None
        if self.owned is not None:
            self.opt_state = self.owned.optimizer_state()
        else:
            check_session(self)  # before any kernel compiles: a mistake is named at once

        rules = None if self.owned else inline_rules(self.loss, self.optimizer, self.regularizers)
        self.fused = FusedNet(self.model) if rules and FusedNet.supports(self.model) else None
        self.rules = rules
        self.slots = self._pack_optimizer_slots() if rules else None
        if self.fused is not None:
            self.fused.reserve(self.batch_size)
            self._compile(slice(FIRST_NEEDED))  # the rest when stepping first needs it

        self.history = History()
        self.recorders: list[tuple[int, Any]] = []
        self.snapshots = Snapshots(self.model.n_params, self.dtype)
        # Evaluate on the data at every epoch end; off, fast runs span epochs in one call.
        self.evaluate_epochs = True
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.perm = np.arange(len(self.x_train), dtype=np.int64)
        self.phase_index = 0
        self.phases = self._phase_plan()
        self.phase_names = [phase.name for phase in self.phases]
        self._stepper: CallStepper | None = None
        self.edits = EditLog()
        self._initial_hypers = hyper_state(self)

        # A top-level layer's weights, its children's included, are one contiguous range of
        # theta: each element's layer (one more for none) and the norms' names, interleaved.
        ranges = [
            (k, slots[0].offset, slots[-1].offset + slots[-1].size)
            for k in range(len(self.model.layers))
            if (slots := self.model.layer_slots(k))
        ]
        self._norm_bins = np.full(self.model.n_params, len(ranges), dtype=np.int64)
        for i, (_, start, stop) in enumerate(ranges):
            self._norm_bins[start:stop] = i
        self._norm_keys = [f"layers.{k}.{w}_norm" for k, *_ in ranges for w in ("weight", "grad")]
        self.diverged: Divergence | None = None
        self.last_loss = math.nan
        self.progress = EpochProgress(len(self.x_train))
        self._batch = (0, 0)
        self._calls: list[Call] = []
        self.last_loss_terms: dict[str, float] = {}
        self._dy: np.ndarray | None = None
        self.checkpoints: list[Checkpoint] = []
        self._save_checkpoint()

    # ---------------------------------------------------------------- construction helpers
    def _compile(self, part: slice) -> None:
        assert self.fused is not None
        warm_up(
            lambda label, done, total: self.events.emit(
                "compiling", kernel=label, done=done, total=total
            ),
            self.dtype,
            self.fused.blas_above,
            part,
        )

    def compile_stepping(self) -> None:
        """Compile (or load) the kernels stepping phase by phase uses, which a fast run does
        not: a window calls it in the background once the session is built, else the first
        phase step compiles them."""
        if self.fused is not None:
            self._compile(slice(FIRST_NEEDED, None))

    def _architecture(self) -> Any:
        spec = self.experiment.model.architecture
        if spec is None:
            return None
        return self.registry.create("architecture", spec.name, **spec.options)

    def _owned_trainer(self) -> OwnedTrainer:
        """Parameter groups of an architecture that owns its step, each with its optimizer
        (the experiment's, or the one ``training.groups.<name>`` gives) and schedule."""
        arch, reg, training = self.architecture, self.registry, self.experiment.training
        unknown = sorted(set(training.groups) - set(arch.groups))
        if unknown:
            raise SessionError(
                f"training.groups.{unknown[0]}: {arch.name} has no such parameter group "
                f"(its groups: {', '.join(arch.groups)})"
            )
        groups = []
        for name, networks in arch.groups.items():
            spec = training.groups.get(name)
            choice = spec.optimizer if spec and spec.optimizer else training.optimizer
            optimizer = reg.create("optimizer", choice.name, **choice.options)
            if optimizer.needs_context:
                raise SessionError(
                    f"training.optimizer: {optimizer.name} needs the whole-batch residuals of a "
                    f"supervised model; {arch.name} trains its own step"
                )
            schedule_choice = spec.schedule if spec and spec.schedule else training.schedule
            schedule = None
            if schedule_choice is not None:
                schedule = reg.create(
                    "lr_schedule", schedule_choice.name, **schedule_choice.options
                )
            index = network_index(self.model, tuple(networks))
            state = optimizer.init(self.model.theta[index])
            state.setdefault("step", np.zeros(1))
            base_lr = float(optimizer.hp.get("lr", 0.0))
            groups.append(Group(name, tuple(networks), index, optimizer, schedule, base_lr, state))
        return OwnedTrainer(
            arch,
            self.model,
            groups,
            self.loss,
            self.noise,
            reg.create,
            self.regularizers,
            self.steps_per_epoch,
            self.last_update,
        )

    def _layer_configs(self, loss: Any) -> list[dict[str, Any]]:
        spec = self.experiment.model
        if spec.layers is not None:
            return [dict(c) for c in spec.layers]
        arch = self.architecture
        out_act = spec.output_activation
        if out_act == "auto":
            out_act = choose_output_activation(self.data, loss)
        n_out = TargetCoding.outputs_needed(self.data, loss)
        return list(arch.layers(tuple(self.data.input_shape), n_out, out_act))

    def _check_batch_sizes(self) -> None:
        """Layers with batch statistics need batches of at least ``min_batch`` samples."""
        n = len(self.x_train)
        smallest = min(self.batch_size, n - (self.steps_per_epoch - 1) * self.batch_size)
        for node in self.model.walk():
            need = node.layer.min_batch
            if smallest < need:
                raise SessionError(
                    f"training.batch_size = {self.batch_size}: {node.path} ({node.layer.name}) "
                    f"needs batches of at least {need} samples, and this gives a batch of "
                    f"{smallest} ({n} training samples); choose a batch size that leaves no "
                    f"batch smaller than {need}"
                )

    def _check_memory(self) -> None:
        """Levenberg-Marquardt builds J (samples x outputs, weights) and JᵀJ (weights, weights):
        refuse a model whose matrices do not fit, and keep fewer checkpoints of a big model."""
        free = available_bytes()
        theta_bytes = max(1, self.model.theta.nbytes)
        self.checkpoint_capacity = int(
            max(4, min(self.CHECKPOINT_CAPACITY, free // 4 // theta_bytes))
        )
        if self.context is None:
            return
        p = self.model.n_params
        rows = len(self.x_train) * int(np.prod(self.model.output_shape))
        need = (rows * p + p * p) * self.dtype.itemsize
        if need > free // 2:
            fits = math.isqrt(max(1, free // 2 // self.dtype.itemsize))
            raise SessionError(
                f"training.optimizer = {self.optimizer.name!r}: its Jacobian and JᵀJ for "
                f"{p:,} weights and {rows:,} residuals need {size_text(need)}, and "
                f"{size_text(free)} is free; it fits networks of up to about {fits:,} weights "
                "(use a smaller network, or a first-order optimizer such as adam)"
            )

    def _metric_names(self) -> list[str]:
        names = self.experiment.training.metrics
        if names is not None:
            return list(names)
        if self.data.task == "classification":
            return ["accuracy"]
        return ["mse", "r2"]

    def _pack_optimizer_slots(self) -> np.ndarray:
        """Stack the inline optimizer's state into one array; the state dict keeps row views."""
        names = self.optimizer.inline_state
        slots = np.zeros((max(3, len(names)), self.model.n_params), dtype=self.dtype)
        for i, name in enumerate(names):
            slots[i] = self.opt_state[name]
            self.opt_state[name] = slots[i]
        return slots

    def _phase_plan(self) -> list[Phase]:
        if self.owned is not None:
            return [Phase("select batch"), *(Phase(name) for name in self.architecture.phases)]
        return supervised_phases(self.model, self.x_train[:1])

    def add_recorder(self, every: int, record: Any) -> None:
        """Call ``record(session)`` after every ``every``-th step, fast runs included (they are
        split so the call sees exactly that step's parameters, gradient and update)."""
        if every < 1:
            raise SessionError(f"every = {every} is not allowed: expected a whole number >= 1")
        self.recorders.append((every, record))

    def add_state_recorder(self, every: int, record: StateRecorder) -> None:
        """Call ``record(step, theta, grad, update)`` for every ``every``-th step without
        splitting fast runs: the compiled loop copies the three vectors at those steps and the
        calls come after it, in step order. The arrays are views: copy what you keep."""
        if every < 1:
            raise SessionError(f"every = {every} is not allowed: expected a whole number >= 1")
        self.snapshots.add(every, record)

    # ---------------------------------------------------------------- public state
    @property
    def at_step_boundary(self) -> bool:
        return self.phase_index == 0

    @property
    def next_phase(self) -> str:
        return self.phase_names[self.phase_index]

    def lr_at(self, step: int) -> float:
        if self.schedule is None:
            return self.base_lr
        t = step if self.schedule_per == "step" else step // self.steps_per_epoch
        return float(self.schedule.lr(self.base_lr, t))

    def parameters(self) -> dict[str, np.ndarray]:
        return self.model.get_params()

    def gradients(self) -> dict[str, np.ndarray]:
        return {s.key: self.model.view(self.model.grad, s).copy() for s in self.model.slots}

    def optimizer_state(self) -> dict[str, np.ndarray]:
        """Copies of the optimizer's arrays (of every parameter group's, ``group.name``)."""
        state = self.owned.optimizer_state() if self.owned else self.opt_state
        return {k: v.copy() for k, v in state.items()}

    def layer_values(self, k: int | str) -> dict[str, np.ndarray]:
        """Input and observed values (pre-activation, activation, ...) of the layer at ``k`` (a
        top-level index or a path such as ``layers.1.inner``) in the current step's latest
        forward pass; empty before that layer ran."""
        bs = self._batch[1]
        if self.fused is not None:
            if bs == 0:
                return {}
            k = self.model.node(k).top if isinstance(k, str) else k
            return {
                "input": self.fused.layer_input(k, bs).copy(),
                "pre_activation": self.fused.z(k, bs).copy(),
                "activation": self.fused.y(k, bs).copy(),
            }
        in_progress = self._runner.active[:1] if self._stepper is not None else []
        call = find_call(self._calls + in_progress, self.model.node(k).path)
        if call is None:
            return {}
        out = {name: np.array(v) for name, v in call.observed.items()}
        if call.inputs and isinstance(call.inputs[0], np.ndarray):
            out["input"] = np.array(call.inputs[0])
        return out

    # ---------------------------------------------------------------- stepping
    def _require_running(self) -> None:
        if self.diverged is not None:
            raise SessionError(self.diverged.describe() + "; rewind to an earlier step")

    def step_phase(self) -> StepRecord:
        """Run exactly the next phase of the current step."""
        self._require_running()
        phase = self.phases[self.phase_index]
        record = StepRecord(phase.name, self.step, phase.layer)
        if phase.path is not None:
            record.extra["path"] = phase.path
        if self.owned is not None:
            self._owned_phase(record)
        elif phase.kind == "select batch":
            self._apply_edits_at(self.step)
            self._select_batch()
        elif phase.kind == "forward":
            self._forward(phase)
        elif phase.kind == "loss":
            record.loss = self._loss()
        elif phase.kind == "backward":
            self._backward(phase)
        else:
            self._update()
        self.phase_index = (self.phase_index + 1) % len(self.phase_names)
        self.events.emit("phase_done", record=record)
        if self.diverged is None and self.phase_index == 0:
            self._finish_step(self.last_loss)
            self._save_checkpoint()
        return record

    def _owned_phase(self, record: StepRecord) -> None:
        """One phase of the architecture's own step; the last one ends the step."""
        assert self.owned is not None
        if self.phase_index == 0:
            self._apply_edits_at(self.step)
            self._select_batch()
            self.owned.begin(self._xb, self._tb, self.step)
        else:
            self.owned.next_phase(record.phase)
        assert self.owned.context is not None
        self._calls = self.owned.context.calls
        if self.phase_index < len(self.phase_names) - 1:
            return
        value = self.owned.finish()
        record.loss = self.last_loss = value
        components = self.owned.context.components
        self.last_loss_terms = dict(components)
        self.history.add_components(self.step, components)
        if not math.isfinite(value):
            self._diverge("loss")
            return
        bad = ~np.isfinite(self.model.theta)
        if bad.any():
            slot = next(s for s in self.model.slots if bad[s.offset : s.offset + s.size].any())
            self._diverge("parameters", parameter=slot.key, layer=slot.layer)

    def step_batch(self) -> float:
        """Finish the current step (or run a whole one) phase by phase; returns its loss."""
        self._require_running()
        first = True
        while first or self.phase_index != 0:
            first = False
            self.step_phase()
            if self.diverged is not None:
                break
        return self.last_loss

    def step_epoch(self) -> None:
        """Run to the end of the current epoch."""
        self._require_running()
        if not self.at_step_boundary:
            self.step_batch()
        remaining = self.steps_per_epoch - self.batch_in_epoch
        if remaining and self.diverged is None:
            self.run_steps(remaining)

    def run_steps(self, n: int) -> int:
        """Run n whole steps as fast as possible (no per-phase records); returns steps done."""
        self._require_running()
        done = 0
        if not self.at_step_boundary:
            self.step_batch()
            done += 1
        while done < n and self.diverged is None:
            self._apply_edits_at(self.step)
            chunk = n - done
            next_edit = self.edits.next_after(self.step)
            if next_edit is not None:
                chunk = min(chunk, next_edit - self.step)
            if self.fused is None:
                chunk = min(chunk, self.steps_per_epoch - self.batch_in_epoch)
            for every, _ in self.recorders:
                chunk = min(chunk, every - self.step % every)
            done += self._run_chunk(chunk)
        self._save_checkpoint()  # one per call: rewinds replay the steps in between
        return done

    def run_epochs(self, n: int) -> None:
        for _ in range(n):
            self.step_epoch()
            if self.diverged is not None:
                return

    # ---------------------------------------------------------------- phases
    def _select_batch(self) -> None:
        self._stop_stepping()
        if self.batch_in_epoch == 0:
            self._new_permutation()
        start = self.batch_in_epoch * self.batch_size
        size = min(self.batch_size, len(self.x_train) - start)
        self._batch = (start, size)
        if self.fused is not None:
            self.fused.load_batch(self.x_train, self.targets_train, self.perm, start, size)
        else:
            idx = self.perm[start : start + size]
            self._xb, self._tb = self.x_train[idx], self.targets_train[idx]
            self._acts: list[np.ndarray] = [self._xb]
            self._calls = []
            self._runner = self.model.runner(training=True, rng=self.noise)

    def batch_in_progress(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The inputs and targets of the step in progress (None between steps): what a phase
        by phase view explains."""
        if self.at_step_boundary:
            return None
        start, size = self._batch
        rows = self.perm[start : start + size]
        return self.x_train[rows], self.targets_train[rows]

    def _new_permutation(self) -> None:
        n = len(self.x_train)
        if self.experiment.training.shuffle:
            self.perm = self.rng.permutation(n).astype(np.int64, copy=False)
        else:
            self.perm = np.arange(n, dtype=np.int64)

    def _forward(self, phase: Phase) -> None:
        k, bs = phase.layer, self._batch[1]
        assert k is not None
        if self.fused is not None:
            self.fused.forward(k, bs)
            out = self.fused.y(k, bs)
        elif self.model.nodes[k].children:
            done = self._step_into(
                phase, lambda: self.model.forward_layer(k, self._acts[k], self._runner)
            )
            if done is None:
                return
            out, call = done
            self._acts.append(out)
            self._calls.append(call)
        else:
            out, call = self.model.forward_layer(k, self._acts[k], self._runner)
            self._acts.append(out)
            self._calls.append(call)
        if not np.all(np.isfinite(out)):
            self._diverge("forward", layer=k)

    def _step_into(self, phase: Phase, work: Any) -> Any:
        """One phase of a composite layer: run its call up to the end of ``phase.path`` (a
        child) and return None, or to the layer's own end and return what the call returned."""
        if self._stepper is None:

            def run(pause: Any) -> Any:
                self._runner.after_child = lambda direction, path: pause(f"{direction} {path}")
                try:
                    return work()
                finally:
                    self._runner.after_child = None

            self._stepper = CallStepper(run)
        reached = self._stepper.advance()
        expected = None if phase.path is None else f"{phase.kind} {phase.path}"
        if reached != expected:
            self._stop_stepping()
            raise SessionError(
                f"layer {phase.layer} ({self.model.layers[phase.layer or 0].name}) called its "
                f"children in another order than on the first sample: reached {reached!r} "
                f"where {expected!r} was planned"
            )
        if reached is not None:
            return None
        result = self._stepper.result
        self._stepper = None
        return result

    def _stop_stepping(self) -> None:
        if self._stepper is not None:
            self._stepper.cancel()
            self._stepper = None

    def _loss(self) -> float:
        bs = self._batch[1]
        if self.fused is not None:
            assert self.rules is not None
            value = self.fused.loss(self.rules[0], loss_hp(self.loss), bs)
            pred = self.fused.y(len(self.model.layers) - 1, bs)
        else:
            pred = self._acts[-1]
            self.last_loss_terms = layer_losses(self._calls)
            value = float(self.loss.value(pred, self._tb)) + sum(self.last_loss_terms.values())
            self._dy = self.loss.grad(pred, self._tb)
            self.model.grad[...] = 0.0
        self.last_loss = value
        if self.evaluate_epochs:
            self.progress.add_outputs(self._batch[0], pred)
        if not math.isfinite(value):
            self._diverge("loss")
        return value

    def _backward(self, phase: Phase) -> None:
        k = phase.layer
        assert k is not None
        if self.fused is not None:
            assert self.rules is not None
            fuse = self.rules[0] == kernels.LOSS_CE_PROBS
            self.fused.backward(k, self._batch[1], fuse)
            return
        dy = self._dy
        assert dy is not None
        if self.model.nodes[k].children:
            done = self._step_into(phase, lambda: self._runner.backward(self._calls[k], dy))
            if done is not None:
                self._dy = done
        else:
            self._dy = self._runner.backward(self._calls[k], dy)

    def _update(self) -> None:
        theta, grad = self.model.theta, self.model.grad
        mask = self.model.decay_mask
        lr = self.lr_at(self.step)
        if "lr" in self.optimizer.hp:
            self.optimizer.hp["lr"] = lr
        if self.rules is not None and self.slots is not None:
            _, opt_code, reg_code, reg_val = self.rules
            kernels.add_penalties(reg_code, reg_val, theta, mask, grad)
            kernels.transform_gradient(reg_code, reg_val, grad)
            hp = optimizer_hp_vector(self.optimizer, self.dtype)
            hp[0] = lr
            kernels.optimizer_step(
                opt_code,
                hp,
                self.opt_state["step"],
                self.slots,
                theta,
                grad,
                self.last_update,
                mask,
                reg_code,
                reg_val,
            )
        else:
            self._update_with_plugins(lr)
        bad = ~np.isfinite(theta)
        if bad.any():
            slot = next(s for s in self.model.slots if bad[s.offset : s.offset + s.size].any())
            self._diverge("parameters", parameter=slot.key, layer=slot.layer)

    def _update_with_plugins(self, lr: float) -> None:
        theta, grad, mask = self.model.theta, self.model.grad, self.model.decay_mask
        update, self.opt_state, seen = chained_update(
            self.regularizers, self.optimizer, grad, self.opt_state, theta, mask, lr, self.context
        )
        grad[...] = seen  # views show the gradient the optimizer used
        self.last_update[...] = update
        theta += update

    def _diverge(self, where: str, layer: int | None = None, parameter: str | None = None) -> None:
        self._stop_stepping()
        self.diverged = Divergence(self.step, where, layer, parameter)
        self.phase_index = 0
        self.events.emit("diverged", divergence=self.diverged)

    # ---------------------------------------------------------------- fast path
    def _run_chunk(self, n: int) -> int:
        """n steps: one compiled call when fusable, else phase by phase."""
        if self.fused is None or self.rules is None or self.slots is None:
            for i in range(n):
                self.step_batch()
                if self.diverged is not None:
                    return i
            return n
        records = self.evaluate_epochs
        epoch_ends = self._epoch_ends(n) if records else np.zeros(0, dtype=np.int64)
        # shorter if the buffer would overflow; epoch ends get the state their record needs
        n, snap_at = self.snapshots.plan(self.step, n, also=epoch_ends)
        order, starts, sizes, perms = self._plan_batches(n)
        lrs = self._learning_rates(n)
        losses = np.full(n, np.nan)
        outputs = self._chunk_outputs(len(order) if records else 0)
        loss_code, opt_code, reg_code, reg_val = self.rules
        done = self.fused.run(
            update=self.last_update,
            x=self.x_train,
            t=self.targets_train,
            order=order,
            batch_start=starts,
            batch_size=sizes,
            lrs=lrs,
            loss_code=loss_code,
            loss_hp=loss_hp(self.loss),
            fuse_softmax_ce=loss_code == kernels.LOSS_CE_PROBS,
            opt_code=opt_code,
            opt_hp=optimizer_hp_vector(self.optimizer, self.dtype),
            step=self.opt_state["step"],
            slots=self.slots,
            reg_code=reg_code,
            reg_val=reg_val,
            losses=losses,
            outputs=outputs.reshape(-1),
            snap_at=snap_at,
            snaps=self.snapshots.buffer,
        )
        last = min(done, n - 1)
        n_train = len(self.x_train)
        self.perm = perms[int(starts[last]) // n_train]

        def epoch_end(index: int) -> EpochEnd:
            """The state after run step ``index``, an epoch's last, and the epoch's order;
            its outputs go to the epoch's progress."""
            theta, grad, _ = self.snapshots.taken_after(index)
            epoch = int(starts[index]) // n_train
            self.progress.add_outputs(0, outputs[epoch * n_train : (epoch + 1) * n_train])
            return theta, grad, perms[epoch]

        self._finish_steps(losses[:done], True, epoch_end if records else None)
        if records and self.batch_in_epoch:  # the epoch in progress keeps its outputs so far
            first = int(starts[last]) // n_train * n_train
            self.progress.add_outputs(0, outputs[first : int(starts[last] + sizes[last])])
        if done < n:
            self._locate_divergence(order, int(starts[done]), int(sizes[done]))
        else:
            self._batch = (int(starts[-1]) % len(self.x_train), int(sizes[-1]))
        return done

    def _epoch_ends(self, n: int) -> np.ndarray:
        """Indices among the next n steps of the steps that end an epoch."""
        first = self.steps_per_epoch - 1 - self.batch_in_epoch
        return np.arange(first, n, self.steps_per_epoch, dtype=np.int64)

    def _chunk_outputs(self, positions: int) -> np.ndarray:
        """The buffer a compiled run writes its outputs into, one row per position of its
        sample order; it starts with the outputs the epoch in progress has recorded."""
        assert self.fused is not None
        outputs = np.empty((positions, int(self.fused.n_out[-1])), dtype=self.dtype)
        if positions and self.progress.filled and self.progress.outputs is not None:
            outputs[: self.progress.filled] = self.progress.outputs[: self.progress.filled]
        return outputs

    def _plan_batches(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
        """The sample order for the next n steps (drawing each new epoch's permutation in turn,
        as stepping would) and each step's start and size in it. Worked out for all n steps at
        once: at full speed a chunk spans dozens of small epochs."""
        n_train, spe = len(self.x_train), self.steps_per_epoch
        position = self.batch_in_epoch + np.arange(n, dtype=np.int64)  # from this epoch's start
        epoch, local = np.divmod(position, spe)
        local *= self.batch_size
        perms = [self.perm] if self.batch_in_epoch > 0 else []
        epochs = int(epoch[-1]) + 1 if n else len(perms)
        for _ in range(epochs - len(perms)):  # in order: the stream stays the same
            self._new_permutation()
            perms.append(self.perm)
        order = np.concatenate(perms) if len(perms) > 1 else perms[0]
        starts = local + epoch * n_train
        sizes = np.minimum(self.batch_size, n_train - local)
        return order, starts, sizes, perms

    def _learning_rates(self, n: int) -> np.ndarray:
        if self.schedule is None:
            return np.full(n, self.base_lr)
        return np.array([self.lr_at(self.step + i) for i in range(n)])

    def _locate_divergence(self, order: np.ndarray, start: int, size: int) -> None:
        """Replay the failing batch's forward pass to name the first non-finite layer."""
        assert self.fused is not None
        self._batch = (start % len(self.x_train), size)
        self.fused.load_batch(self.x_train, self.targets_train, order, start, size)
        for k in range(len(self.model.layers)):
            self.fused.forward(k, size)
            if not np.all(np.isfinite(self.fused.y(k, size))):
                self._diverge("forward", layer=k)
                return
        self._diverge("loss")

    # ---------------------------------------------------------------- bookkeeping
    def _finish_step(self, loss: float) -> None:
        self._finish_steps(np.array([loss]))

    def _finish_steps(
        self,
        losses: np.ndarray,
        snapshots_taken: bool = False,
        epoch_end: Callable[[int], EpochEnd] | None = None,
    ) -> None:
        """Record steps done in bulk: history, counters, every epoch end among them, and the
        recorders' calls (from the compiled loop's snapshots when it took them). ``epoch_end``
        gives the state at the i-th step's end when it ends an epoch (default: the session's
        own state, which is that one after a single step)."""
        n = len(losses)
        if not n:
            return
        first_step = self.step
        position = self.batch_in_epoch + np.arange(n)
        epochs = self.epoch + position // self.steps_per_epoch
        self.history.steps.extend(self.step + np.arange(n), epochs, losses)
        start = 0
        ends = np.nonzero((position + 1) % self.steps_per_epoch == 0)[0]
        for i, end in enumerate(ends):
            self.progress.add_losses(losses[start : end + 1])
            self.step += int(end + 1 - start)
            self.batch_in_epoch, start = 0, int(end + 1)
            self.epoch += 1
            # an epoch the thinned history will drop before anyone reads it is not evaluated
            # (at full speed most are): the last of the call stays as the latest record
            kept = i == len(ends) - 1 or self.history.keeps(self.step)
            if epoch_end is None or not kept:
                self._end_epoch(self.model.theta, self.model.grad, self.perm, kept)
            else:
                self._end_epoch(*epoch_end(int(end)), kept)
        self.progress.add_losses(losses[start:])
        self.step += n - start
        self.batch_in_epoch += n - start
        self.last_loss = float(losses[-1])
        self.events.emit("step_done", step=self.step, loss=self.last_loss)
        if snapshots_taken:
            self.snapshots.deliver(first_step, n)
        else:
            self.snapshots.deliver_current(
                self.step, self.model.theta, self.model.grad, self.last_update
            )
        for every, record in self.recorders:
            if self.step % every == 0:
                record(self)

    def _end_epoch(
        self, theta: np.ndarray, grad: np.ndarray, perm: np.ndarray, kept: bool = True
    ) -> None:
        """The epoch's record, from its progress and the state at its end; without ``kept``
        (the history drops the record at the next epoch end) the metrics and norms are left
        out."""
        record: dict[str, Any] = {
            "epoch": self.epoch,
            "step": self.step,
            "train_loss": self.progress.train_loss(),
            "lr": self.lr_at(self.step - 1),
        }
        if self.owned is not None:
            record.update(self.history.component_means(self.step - self.steps_per_epoch))
        elif self.evaluate_epochs and kept:
            record.update(self._epoch_evaluation(theta, self.progress.rows(perm)))
            self.history.add_norms(self.layer_norms(theta, grad))
        elif self.evaluate_epochs:  # thinned as if complete, so both lists keep the same steps
            self.history.add_norms({"step": self.step})
        self.progress.reset()
        self.history.add_epoch(record)
        self.events.emit("epoch_done", epoch=self.epoch, record=record)

    def _epoch_evaluation(self, theta: np.ndarray, train: np.ndarray | None) -> dict[str, Any]:
        """Every metric on both splits and the validation loss: on the training split from
        ``train``, the outputs the epoch's steps computed (a pass over the data at ``theta``
        when the epoch did not record them all), on the validation split from a pass over it
        at ``theta``, the weights at the epoch's end."""
        result: dict[str, Any] = {}
        splits = ("train", "val") if len(self.data.X_val) else ("train",)
        for split in splits:
            if split == "train":
                out = self._epoch_outputs(self.x_train, theta) if train is None else train
            else:
                out = self._epoch_outputs(self.data.X_val, theta)
            if split == "val":
                result["val_loss"] = self.evaluate("val", outputs=out)["loss"]
            for name, value in self.evaluate(split, False, outputs=out).items():
                result[f"{split}_{name}"] = value
        return result

    def _epoch_outputs(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Outputs at ``theta`` for an epoch's record: in one compiled pass on the fused path
        (the training batch's buffers untouched), else through the layers, whose ``theta``
        is the model's own (that path ends one epoch at a time)."""
        if self.fused is not None:
            return self.fused.outputs(np.ascontiguousarray(x, dtype=self.dtype), theta)
        return self.predict(x)

    def layer_norms(
        self, theta: np.ndarray | None = None, grad: np.ndarray | None = None
    ) -> dict[str, Any]:
        """Weight and gradient L2 norms per top-level layer (default: the model's weights and
        the last gradient), summed in theta's order."""
        theta = self.model.theta if theta is None else theta
        grad = self.model.grad if grad is None else grad
        n = len(self._norm_keys) // 2
        squares = np.empty(2 * n)
        squares[0::2] = np.bincount(self._norm_bins, theta * theta, n + 1)[:n]
        squares[1::2] = np.bincount(self._norm_bins, grad * grad, n + 1)[:n]
        norms = dict(zip(self._norm_keys, np.sqrt(squares).tolist(), strict=True))
        return {"step": self.step, **norms}

    # ---------------------------------------------------------------- evaluation
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Model outputs in evaluation mode (dropout off, batch norm on running statistics)."""
        return self.model.forward(np.ascontiguousarray(x, dtype=self.dtype), training=False)

    def evaluate(
        self, split: str = "train", with_loss: bool = True, outputs: np.ndarray | None = None
    ) -> dict[str, Any]:
        """The loss (or, without ``with_loss``, the metrics) on a split, from ``outputs`` when
        the caller has them already."""
        x, y, t = (
            (self.data.X_train, self.data.y_train, self.targets_train)
            if split == "train"
            else (self.data.X_val, self.data.y_val, self.targets_val)
        )
        out = self.predict(x) if outputs is None else outputs
        result: dict[str, Any] = {}
        if with_loss:
            result["loss"] = float(self.loss.value(out, t))
            return result
        assert self.coding is not None
        truth = self.coding.labels(y)  # one row per position for sequences
        if self.data.task == "classification":
            labels, scores = self.coding.decode(out)
            for m in self.metrics:
                result[m.name] = m.compute(truth, labels, scores)
        else:
            for m in self.metrics:
                result[m.name] = m.compute(np.asarray(truth, dtype=float), rows(out), None)
        return {k: (float(v) if np.ndim(v) == 0 else v) for k, v in result.items()}

    # ---------------------------------------------------------------- edits
    def set_weight(self, key: str, index: tuple[int, ...] | int, value: float) -> Edit:
        """Set one element of a weight (``layers.0.W``, (row, column)) from now on."""
        index = self._check_weight_edit(key, index, value)
        return self._record_edit(Edit(self.step, self.step, "weight", key, "", index, float(value)))

    def _check_weight_edit(
        self, key: str, index: tuple[int, ...] | int, value: Any
    ) -> tuple[int, ...]:
        slots = {s.key: s for s in self.model.slots}
        if key not in slots:
            raise SessionError(f"no weight {key!r}: choose one of {', '.join(slots)}")
        shape = slots[key].shape
        index = (index,) if isinstance(index, int) else tuple(int(i) for i in index)
        if len(index) != len(shape) or not all(
            0 <= i < n for i, n in zip(index, shape, strict=True)
        ):
            raise SessionError(f"{key}{list(index)}: expected an index inside the shape {shape}")
        if isinstance(value, bool) or not math.isfinite(float(value)):
            raise SessionError(f"{key}{list(index)} = {value!r}: expected a finite number")
        return index

    def set_hyperparameter(self, target: str, name: str, value: Any) -> Edit:
        """Set a hyperparameter of ``target`` ("optimizer", a parameter group, "regularizers[i]")
        from the next step on, as if it had been in the experiment (learning rate, momentum,
        a regularizer's strength)."""
        targets = edit_targets(self)
        if target not in targets:
            raise SessionError(f"no {target!r} to edit: choose one of {', '.join(targets)}")
        plugin = targets[target]
        declared = {param.name for param in plugin.params}
        if name not in declared:
            raise SessionError(
                f"{target}.{name}: {plugin.name} has no such parameter "
                f"(its parameters: {', '.join(sorted(declared)) or 'none'})"
            )
        checked = type(plugin)(**{**plugin.hp, name: value}).hp[name]  # the plugin's own checks
        edit = Edit(self.step, self.step, "hyperparameter", target, name, (), checked)
        return self._record_edit(edit)

    def set_batch_size(self, size: int) -> Edit:
        """Change the batch size from the start of the next epoch (now, at an epoch's start)."""
        if self.context is not None:
            raise SessionError(
                f"training.batch_size: {self.optimizer.name} trains on the whole data set"
            )
        size = max(1, min(int(size), len(self.x_train)))
        starts = self.step + (self.steps_per_epoch - self.batch_in_epoch) % self.steps_per_epoch
        return self._record_edit(Edit(starts, self.step, "batch_size", value=size))

    def replay(self, edits: list[Edit], step: int) -> None:
        """Train a new session to ``step`` with a recorded run's ``edits`` (an autosave's): the
        same run, bit for bit, as the one that made them."""
        if self.step or self.phase_index or self.edits.edits:
            raise SessionError("a recorded run replays only into a new session, at step 0")
        for edit in sorted(edits, key=lambda e: e.made_at):
            if edit.kind == "weight":
                self._check_weight_edit(edit.target, edit.index, edit.value)
            self.edits.add(edit)
        self._apply_edits_at(0)
        self.run_steps(step)

    def _record_edit(self, edit: Edit) -> Edit:
        if not self.at_step_boundary:
            raise SessionError(
                f"edits apply between steps: finish the step in progress ({self.next_phase} "
                "is next) or rewind first"
            )
        self.edits.add(edit)
        if edit.step == self.step:
            apply_edit(self, edit)
        self.events.emit("state_changed", edit=edit)
        return edit

    def _apply_edits_at(self, step: int) -> None:
        for edit in self.edits.at(step):
            apply_edit(self, edit)

    def set_batch_size_now(self, size: int) -> None:
        """Applied by an edit at an epoch's start, and by a rewind."""
        self.batch_size = size
        self.steps_per_epoch = math.ceil(len(self.x_train) / size)
        self._check_batch_sizes()
        if self.owned is not None:
            self.owned.steps_per_epoch = self.steps_per_epoch
        if self.fused is not None:
            self.fused.reserve(size)

    def refresh_rules(self) -> None:
        """The compiled rules read hyperparameters (a regularizer's strength) when made."""
        if self.rules is not None:
            self.rules = inline_rules(self.loss, self.optimizer, self.regularizers)

    def fork(self, step: int | None = None) -> Session:
        """A new session at ``step`` of this one (default: now), with this run's checkpoints,
        history and edits up to there: the two then train apart (A/B comparisons)."""
        step = self.step if step is None else step
        if not 0 <= step <= self.step:
            raise SessionError(f"step {step} is not recorded: choose 0 to {self.step}")
        other = Session(self.experiment, self.registry, init_params=self.initial_params)
        other.evaluate_epochs = self.evaluate_epochs
        other.checkpoints = [copy.deepcopy(c) for c in self.checkpoints if c.step <= step]
        other.history = copy.deepcopy(self.history)
        other.edits = self.edits.copy_until(step)
        other._restore(step)
        return other

    # ---------------------------------------------------------------- checkpoints
    def _save_checkpoint(self) -> None:
        if self.checkpoints and self.checkpoints[-1].step == self.step:
            self.checkpoints.pop()
        self.checkpoints.append(
            Checkpoint(
                self.step,
                self.epoch,
                self.batch_in_epoch,
                self.perm.copy(),
                self.model.theta.copy(),
                {k: v.copy() for k, v in self.model.state_arrays().items()},
                self.optimizer_state(),
                self.rng.bit_generator.state,
                self.noise.bit_generator.state,
                self.progress.saved(),
            )
        )
        if len(self.checkpoints) > self.checkpoint_capacity:
            self.checkpoints = [self.checkpoints[0], *self.checkpoints[2::2], self.checkpoints[-1]]
            self.checkpoints = sorted(
                {c.step: c for c in self.checkpoints}.values(), key=lambda c: c.step
            )

    def recorded_steps(self) -> list[int]:
        """Steps the session can return to directly (others are replayed from the one before)."""
        return [c.step for c in self.checkpoints]

    def rewind(self, step: int) -> None:
        """Return to the state right after ``step`` steps: restore and replay, bit for bit."""
        if not 0 <= step <= self.step and self.diverged is None:
            raise SessionError(f"step {step} is not recorded: choose 0 to {self.step}")
        self._restore(step)
        self.events.emit("rewound", step=step)

    def _restore(self, step: int) -> None:
        """The state after ``step`` steps from the checkpoint before it and a replay."""
        self._stop_stepping()
        base = max((c for c in self.checkpoints if c.step <= step), key=lambda c: c.step)
        self.model.theta[...] = base.theta
        for key, arr in self.model.state_arrays().items():
            arr[...] = base.state[key]
        live = self.owned.optimizer_state() if self.owned else self.opt_state
        for key, arr in base.opt_state.items():
            live[key][...] = arr
        self.rng.bit_generator.state = base.rng_state
        self.noise.bit_generator.state = base.noise_state
        self.step, self.epoch, self.batch_in_epoch = base.step, base.epoch, base.batch_in_epoch
        self.perm = base.perm.copy()
        self.phase_index = 0
        self.diverged = None
        self.history.rewind_to(base.step)
        kept = len(self.history.steps)  # the loss the state after base.step ended with
        self.last_loss = float(self.history.steps.tail(kept - 1)[0, 2]) if kept else math.nan
        self.checkpoints = [c for c in self.checkpoints if c.step <= base.step]
        self.progress.restore(base.progress)
        restore_hypers(self, self._initial_hypers)
        for edit in self.edits.before(base.step):
            if edit.kind != "weight":  # the checkpoint holds the weights they set
                apply_edit(self, edit)
        self._apply_edits_at(base.step)
        if step > base.step:
            self.run_steps(step - base.step)
