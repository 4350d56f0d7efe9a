"""The session service: one session on its own worker thread, driven by commands from any thread.

The app never touches a session directly. It sends commands (step a phase, a step, an epoch;
play at N steps a second or at full speed; pause; rewind; fork; edit) and reads the latest
immutable ``Snapshot``; listeners hear of every snapshot and event. The session is built on the
worker too, so kernels compile there while the window stays responsive. At full speed the
worker trains in chunks of about ``CHUNK_SECONDS`` (the compiled kernels release the GIL), so a
pause takes effect within one chunk.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import numpy as np

from gradient_lab.engine.service.snapshot import SessionFacts, Snapshot, frozen
from gradient_lab.engine.training.session import Session

CHUNK_SECONDS = 0.022
"""Target duration of one compiled chunk of steps at full speed: the pause latency, and the
gap between snapshots (about 45 a second). Each chunk's end takes the interpreter lock back
from the window, so shorter chunks cost training speed with a window open."""

Listener = Callable[[str, dict[str, Any]], None]


class SessionService:
    """A session owned by a worker thread. Build with an experiment (or an existing session),
    then ``start()``; every command returns a ``concurrent.futures.Future``."""

    def __init__(
        self,
        experiment: Any = None,
        registry: Any = None,
        init_params: dict[str, np.ndarray] | None = None,
        *,
        session: Session | None = None,
        snapshot_rate: float = 30.0,
    ) -> None:
        if experiment is None and session is None:
            raise ValueError("give an experiment to build, or a session to serve")
        self._build_args = (experiment, registry, init_params, session)
        self.snapshot_interval = 1.0 / snapshot_rate
        self._commands: queue.Queue[tuple[Callable[[], Any], Future[Any]] | None] = queue.Queue()
        self._listeners: list[Listener] = []
        self._snapshot: Snapshot | None = None
        self._session: Session | None = None
        self._facts: SessionFacts | None = None
        self._playing = False
        self._rate: float | None = None
        self._until: int | None = None
        self._until_epoch: int | None = None
        self._pause_requested = threading.Event()
        self._built = threading.Event()
        self._build_error: BaseException | None = None
        self._version = 0
        # history rows, stride, epochs, epoch stride already published, and the latest epoch's
        # step (the history may replace that record)
        self._seen: tuple[int, int, int, int, int | None] = (0, 1, 0, 1, None)
        self._reset_history = True
        self._chunk = 1
        self._last_publish = 0.0
        self._next_tick = 0.0
        self._thread = threading.Thread(target=self._run, name="gradient-lab session", daemon=True)
        self._compiler: threading.Thread | None = None

    # ------------------------------------------------------------------ life
    def start(self) -> SessionService:
        self._thread.start()
        return self

    def wait_built(self, timeout: float | None = None) -> Snapshot:
        """The first snapshot, once the session is built; the build's error if it failed."""
        if not self._built.wait(timeout):
            raise TimeoutError("the session is still being built")
        if self._build_error is not None:
            raise self._build_error
        assert self._snapshot is not None
        return self._snapshot

    def wait_compiled(self, timeout: float | None = None) -> None:
        """Return once the stepping kernels the service compiles after the build are ready."""
        self.wait_built(timeout)
        if self._compiler is not None:
            self._compiler.join(timeout)
            if self._compiler.is_alive():
                raise TimeoutError("the stepping kernels are still compiling")

    def close(self, timeout: float = 5.0) -> None:
        """Stop playing and end the worker thread."""
        self._pause_requested.set()
        self._commands.put(None)
        for thread in (self._thread, self._compiler):
            if thread is not None and thread.is_alive():
                thread.join(timeout)

    @property
    def snapshot(self) -> Snapshot | None:
        """The latest published state (None until the session is built)."""
        return self._snapshot

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """``listener(event, payload)`` is called on the worker thread for "snapshot",
        "compiling", "state_changed", "diverged", "rewound", "error" and "built" ("compiling"
        also on the thread that compiles the stepping kernels after the build); a Qt view
        passes it on to its own thread (a queued signal). Returns an unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # ------------------------------------------------------------------ commands
    def step_phase(self) -> Future[Any]:
        return self._submit(lambda s: s.step_phase())

    def step(self) -> Future[Any]:
        """One minibatch (the rest of the step in progress, or a whole one)."""
        return self._submit(lambda s: s.step_batch())

    def epoch(self) -> Future[Any]:
        return self._submit(lambda s: s.step_epoch())

    def run(self, steps: int) -> Future[Any]:
        return self._submit(lambda s: s.run_steps(steps))

    def play(
        self,
        steps_per_second: float | None = None,
        until_step: int | None = None,
        until_epoch: int | None = None,
    ) -> Future[Any]:
        """Train until paused (or until ``until_step`` steps, or the end of epoch
        ``until_epoch``): ``steps_per_second`` steps a second, or as fast as possible when None.
        The future resolves when playing has started."""
        if steps_per_second is not None and steps_per_second <= 0:
            raise ValueError(f"steps_per_second = {steps_per_second}: expected a number > 0")

        def start(session: Session) -> None:
            self._playing, self._rate, self._until = True, steps_per_second, until_step
            self._until_epoch = until_epoch
            self._pause_requested.clear()
            self._next_tick = time.perf_counter()

        return self._submit(start)

    def pause(self) -> Future[Any]:
        """Stop playing; resolves with the snapshot after the last step done."""
        self._pause_requested.set()

        def stop(session: Session) -> Snapshot:
            self._playing = False
            return self._publish(force=True)

        return self._submit(stop)

    def rewind(self, step: int) -> Future[Any]:
        def rewind(session: Session) -> None:
            session.rewind(step)
            self._reset_history = True

        return self._submit(rewind)

    def go_to(self, step: int) -> Future[Any]:
        """Rewind to ``step``, or train on to it: the timeline's one command (decided on the
        worker, from the step the session is really at)."""

        def go(session: Session) -> None:
            if step < session.step or (step == session.step and not session.at_step_boundary):
                session.rewind(step)
                self._reset_history = True
            elif step > session.step:
                session.run_steps(step - session.step)

        return self._submit(go)

    def fork(self, step: int | None = None) -> Future[Any]:
        """A new, started service from ``step`` of this run (resolves with it)."""
        return self._submit(
            lambda s: SessionService(
                session=s.fork(step), snapshot_rate=1 / self.snapshot_interval
            ).start()
        )

    def set_weight(self, key: str, index: Any, value: float) -> Future[Any]:
        return self._submit(lambda s: s.set_weight(key, index, value))

    def set_hyperparameter(self, target: str, name: str, value: Any) -> Future[Any]:
        return self._submit(lambda s: s.set_hyperparameter(target, name, value))

    def set_batch_size(self, size: int) -> Future[Any]:
        return self._submit(lambda s: s.set_batch_size(size))

    def call(self, work: Callable[[Session], Any]) -> Future[Any]:
        """``work(session)`` on the worker, between steps (instruments, exports)."""
        return self._submit(work)

    def _submit(self, work: Callable[[Session], Any]) -> Future[Any]:
        future: Future[Any] = Future()

        def job() -> Any:
            assert self._session is not None
            return work(self._session)

        self._commands.put((job, future))
        return future

    # ------------------------------------------------------------------ the worker
    def _run(self) -> None:
        if not self._build():
            return
        while True:
            timeout = self._wait_time()
            try:
                if timeout == 0:
                    item = self._commands.get_nowait()
                else:
                    item = self._commands.get(timeout=timeout)
            except queue.Empty:
                if self._playing:
                    self._play_once()
                continue
            if item is None:
                return
            self._execute(*item)

    def _build(self) -> bool:
        experiment, registry, init_params, session = self._build_args
        try:
            if session is None:
                session = Session(experiment, registry, init_params, progress=self._compiling)
            self._session = session
            self._facts = _facts_of(session)
            for event in ("state_changed", "diverged", "rewound"):
                session.events.on(
                    event, lambda _event=event, **payload: self._emit(_event, payload)
                )
            self._publish(force=True)
        except BaseException as exc:  # reported to whoever waits, never lost in the thread
            self._build_error = exc
            self._built.set()
            self._emit("error", {"error": exc})
            return False
        # what a fast run does not need compiles beside it: playing can start at once (started
        # before the build is announced, so whoever waits for it finds a thread to join)
        compiler = threading.Thread(
            target=session.compile_stepping, name="gradient-lab compile", daemon=True
        )
        compiler.start()
        self._compiler = compiler
        self._built.set()
        self._emit("built", {})
        return True

    def _compiling(self, kernel: str, done: int, total: int) -> None:
        self._emit("compiling", {"kernel": kernel, "done": done, "total": total})

    def _wait_time(self) -> float | None:
        """How long the worker may wait for a command: forever when idle, not at all at full
        speed, until the next tick at a set rate."""
        if not self._playing:
            return None
        if self._rate is None:
            return 0
        return max(0.0, self._next_tick - time.perf_counter())

    def _execute(self, job: Callable[[], Any], future: Future[Any]) -> None:
        if not future.set_running_or_notify_cancel():
            return
        # the snapshot after the command is published before the future resolves: whoever
        # waits on it then finds (and has been sent) the state the command left
        try:
            result = job()
        except BaseException as exc:
            self._publish(force=True)
            self._emit("error", {"error": exc})
            future.set_exception(exc)
        else:
            self._publish(force=True)
            future.set_result(result)

    def _play_once(self) -> None:
        session = self._session
        assert session is not None
        if self._pause_requested.is_set():
            self._playing = False
            return
        left = self._steps_left(session)
        if session.diverged is not None or (left is not None and left <= 0):
            self._playing = False
            self._publish(force=True)
            return
        if self._rate is not None:
            self._run_steps(session, 1)
            self._next_tick += 1.0 / self._rate
            if self._next_tick < time.perf_counter():  # fell behind: do not try to catch up
                self._next_tick = time.perf_counter()
        else:
            steps = self._chunk if left is None else min(self._chunk, left)
            started = time.perf_counter()
            self._run_steps(session, steps)
            self._chunk = next_chunk(self._chunk, steps, time.perf_counter() - started)
            time.sleep(0)  # hand the interpreter to a waiting thread (a window) between chunks
        self._publish()

    def _steps_left(self, session: Session) -> int | None:
        """Steps until the step or the epoch end that playing stops at (None: no end set)."""
        left = []
        if self._until is not None:
            left.append(self._until - session.step)
        if self._until_epoch is not None:
            epochs = self._until_epoch - session.epoch
            left.append(epochs * session.steps_per_epoch - session.batch_in_epoch)
        return min(left) if left else None

    def _run_steps(self, session: Session, steps: int) -> None:
        try:
            session.run_steps(steps)
        except BaseException as exc:
            self._playing = False
            self._emit("error", {"error": exc})

    # ------------------------------------------------------------------ snapshots
    def _publish(self, force: bool = False) -> Snapshot:
        now = time.perf_counter()
        if not force and now - self._last_publish < self.snapshot_interval:
            assert self._snapshot is not None
            return self._snapshot
        self._last_publish = now
        self._version += 1
        self._snapshot = self._take_snapshot()
        self._emit("snapshot", {"snapshot": self._snapshot})
        return self._snapshot

    def _take_snapshot(self) -> Snapshot:
        session, facts = self._session, self._facts
        assert session is not None and facts is not None
        history = session.history
        rows, stride = len(history.steps), history.steps.stride
        epochs, epoch_stride = len(history.epochs), history.epoch_stride
        seen_rows, seen_stride, seen_epochs, seen_epoch_stride, seen_latest = self._seen
        reset = (
            self._reset_history
            or stride != seen_stride
            or rows < seen_rows
            or epoch_stride != seen_epoch_stride
            or epochs < seen_epochs
        )
        first_row, first_epoch = (0, 0) if reset else (seen_rows, seen_epochs)
        replaced = None
        if not reset and seen_epochs and history.epochs[seen_epochs - 1]["step"] != seen_latest:
            first_epoch, replaced = seen_epochs - 1, seen_latest  # sent again, as it is now
        batch = session.batch_in_progress()
        latest = history.epochs[-1]["step"] if epochs else None
        self._seen = (rows, stride, epochs, epoch_stride, latest)
        self._reset_history = False
        return Snapshot(
            version=self._version,
            facts=facts,
            step=session.step,
            epoch=session.epoch,
            phase_index=session.phase_index,
            next_phase=session.next_phase,
            theta=frozen(session.model.theta),
            grad=frozen(session.model.grad),
            last_update=frozen(session.last_update),
            state={k: frozen(v) for k, v in session.model.state_arrays().items()},
            last_loss=float(session.last_loss),
            loss_terms=dict(session.last_loss_terms),
            history_reset=reset,
            new_steps=frozen(history.steps.tail(first_row)),
            new_epochs=tuple(dict(r) for r in history.epochs[first_epoch:]),
            playing=self._playing,
            diverged=None if session.diverged is None else session.diverged.describe(),
            lr=float(session.lr_at(max(session.step - 1, 0))),
            optimizer_hp=dict(session.optimizer.hp),
            batch_inputs=None if batch is None else frozen(batch[0]),
            batch_targets=None if batch is None else frozen(batch[1]),
            replaced_epoch_step=replaced,
        )

    def _emit(self, event: str, payload: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            try:
                listener(event, payload)
            except Exception:  # a broken view must not stop training
                continue


def next_chunk(chunk: int, done: int, seconds: float) -> int:
    """Steps for the next full-speed chunk so it lasts about CHUNK_SECONDS: grows at most
    twofold a chunk, shrinks at once."""
    if done < chunk or seconds <= 0.0:
        return max(1, chunk)
    wanted = int(done * CHUNK_SECONDS / seconds)
    return max(1, min(wanted, 2 * chunk))


def _facts_of(session: Session) -> SessionFacts:
    data = session.data
    bounds = None
    if data.planar and data.points_train is not None:
        points = data.points_train
        low, high = points.min(axis=0), points.max(axis=0)
        pad = 0.1 * np.maximum(high - low, 1e-9)
        bounds = (
            (float(low[0] - pad[0]), float(high[0] + pad[0])),
            (float(low[1] - pad[1]), float(high[1] + pad[1])),
        )
    return SessionFacts(
        model=session.model,
        coding=session.coding,
        task=data.task,
        planar=data.planar,
        feature_names=tuple(data.feature_names),
        bounds=bounds,
        phase_names=tuple(session.phase_names),
        parameter_keys=tuple(s.key for s in session.model.slots),
        loss=session.loss,
        optimizer_name=session.optimizer.name,
        dataset_name=data.dataset_name,
        n_classes=data.n_classes,
        class_names=tuple(data.class_names),
        probe_inputs=frozen((data.X_val if len(data.X_val) else data.X_train)[:1000]),
        points_train=_frozen_or_none(data.points_train),
        points_val=_frozen_or_none(data.points_val),
        targets_train=frozen(data.y_train) if data.planar else None,
        targets_val=frozen(data.y_val) if data.planar else None,
        curve_train=_curve(data.X_train, data.y_train, data),
        curve_val=_curve(data.X_val, data.y_val, data),
    )


def _curve(x: np.ndarray, y: np.ndarray, data: Any) -> np.ndarray | None:
    """(x, y) rows of a regression on one input with one target (None otherwise)."""
    if data.task != "regression" or data.planar or tuple(data.input_shape) != (1,):
        return None
    if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
        return None
    return frozen(np.column_stack([x[:, 0], y.reshape(len(y))]))


def _frozen_or_none(a: np.ndarray | None) -> np.ndarray | None:
    return None if a is None else frozen(a)
