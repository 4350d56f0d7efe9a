"""The session service: a session on a worker thread, commands from any thread, immutable
snapshots and the queries views ask of them."""

import threading
import time

import numpy as np
import pytest

from gradient_lab.engine.service.worker import CHUNK_SECONDS, SessionService, next_chunk
from gradient_lab.engine.training.data import make_features
from gradient_lab.engine.training.experiment import parse_experiment
from gradient_lab.engine.training.session import Session, SessionError
from tests.experiments import dense, experiment_text

WAIT = 120  # seconds any future may take (a cold compile on a busy machine)
LAYERS = [dense(6, "tanh"), dense(1, "tanh")]
PLUGIN_PATH = [dense(6, "tanh"), '{ type = "batch_norm" }', dense(1, "tanh")]


def experiment(layers=LAYERS, **options):
    options.setdefault("optimizer", '{ name = "adam", lr = 0.01 }')
    options.setdefault("data", "n = 120")
    return parse_experiment(
        experiment_text(layers, dataset="circle", features=["x1", "x2", "x1*x2"], **options)
    )


@pytest.fixture
def service():
    started = []

    def make(layers=LAYERS, **options):
        svc = SessionService(experiment(layers, **options)).start()
        started.append(svc)
        svc.wait_built(WAIT)
        return svc

    yield make
    for svc in started:
        svc.close()
        assert not svc._thread.is_alive()


def wait_until(condition, timeout=WAIT):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_the_session_is_built_and_trained_on_the_worker_thread(service):
    """Built and trained on the worker; the kernels a fast run does not need (stepping phase by
    phase) compile on a thread of their own after the build, so playing can start at once."""
    heard = []

    def listen(event, payload):
        heard.append((event, payload.get("kernel"), threading.current_thread().name))

    svc = SessionService(experiment())
    svc.subscribe(listen)
    svc.start()
    try:
        first = svc.wait_built(WAIT)
        assert first.step == 0 and first.next_phase == "select batch"
        svc.step().result(WAIT)
        svc.wait_compiled(WAIT)
    finally:
        svc.close()
    worker = {(e, k) for e, k, name in heard if name == "gradient-lab session"}
    compiler = [k for e, k, name in heard if name == "gradient-lab compile"]
    assert {e for e, _, _ in heard} - {"compiling"} == {e for e, _ in worker} - {"compiling"}
    assert ("built", None) in worker and ("compiling", "training step") in worker
    assert compiler[0] == "layer phases" and compiler[-1] == "done"
    assert ("compiling", "layer phases") not in worker


def test_commands_step_phases_steps_and_epochs(service):
    svc = service()
    record = svc.step_phase().result(WAIT)
    assert record.phase == "select batch"
    assert svc.snapshot.next_phase == "forward 0" and svc.snapshot.phase_index == 1
    loss = svc.step().result(WAIT)
    snap = svc.snapshot
    assert snap.step == 1 and snap.last_loss == loss and snap.next_phase == "select batch"
    svc.epoch().result(WAIT)
    assert svc.snapshot.epoch == 1


def test_snapshots_are_read_only_copies_that_later_training_leaves_alone(service):
    svc = service()
    svc.run(3).result(WAIT)
    old = svc.snapshot
    kept = old.theta.copy()
    with pytest.raises(ValueError):
        old.theta[0] = 1.0
    assert not old.parameters()["layers.0.W"].flags.writeable
    svc.run(5).result(WAIT)
    assert np.array_equal(old.theta, kept)
    assert svc.snapshot.version > old.version and svc.snapshot.step == 8


@pytest.mark.parametrize("layers", [LAYERS, PLUGIN_PATH], ids=["fused", "plugin"])
def test_playing_and_pausing_trains_the_same_steps_as_a_bare_session(service, layers):
    svc = service(layers)
    svc.play().result(WAIT)
    wait_until(lambda: svc.snapshot.step >= 40)
    paused = svc.pause().result(WAIT)
    assert not paused.playing and paused.step >= 40
    time.sleep(0.05)
    assert svc.snapshot.step == paused.step  # paused means paused
    bare = Session(experiment(layers))
    bare.run_steps(paused.step)
    assert paused.theta.tobytes() == bare.model.theta.tobytes()


def test_play_until_a_step_and_at_a_set_rate(service):
    svc = service()
    svc.play(until_step=37).result(WAIT)
    wait_until(lambda: not svc.snapshot.playing)
    assert svc.snapshot.step == 37
    svc.play(steps_per_second=100).result(WAIT)
    started = time.monotonic()
    time.sleep(0.3)
    snap = svc.pause().result(WAIT)
    elapsed = time.monotonic() - started
    assert 37 < snap.step <= 37 + 100 * elapsed + 5


def test_play_until_the_end_of_an_epoch_from_the_middle_of_a_step(service):
    """From mid-step, full speed stops exactly at the end of the epoch asked for; the weights
    are those of a session run there in one go."""
    svc = service()
    svc.step_phase().result(WAIT)
    svc.step_phase().result(WAIT)
    per_epoch = Session(experiment()).steps_per_epoch
    svc.play(until_epoch=3).result(WAIT)
    wait_until(lambda: not svc.snapshot.playing)
    snap = svc.snapshot
    assert (snap.epoch, snap.step, snap.phase_index) == (3, 3 * per_epoch, 0)
    bare = Session(experiment())
    bare.run_steps(3 * per_epoch)
    assert snap.theta.tobytes() == bare.model.theta.tobytes()
    svc.play(until_epoch=2).result(WAIT)  # already past: nothing runs
    wait_until(lambda: not svc.snapshot.playing)
    assert svc.snapshot.step == 3 * per_epoch


def test_history_arrives_in_pieces_and_whole_after_a_rewind(service):
    svc = service()
    seen = []
    svc.subscribe(lambda event, p: event == "snapshot" and seen.append(p["snapshot"]))
    for _ in range(3):
        svc.run(4).result(WAIT)
    rows = np.concatenate([s.new_steps for s in seen])
    np.testing.assert_array_equal(rows[:, 0], np.arange(12))
    svc.rewind(5).result(WAIT)
    snap = svc.snapshot
    assert snap.history_reset and snap.step == 5
    np.testing.assert_array_equal(snap.new_steps[:, 0], np.arange(5))


def test_edits_and_forks_through_the_service(service):
    svc = service()
    changes = []
    svc.subscribe(lambda event, p: event == "state_changed" and changes.append(p["edit"]))
    svc.run(10).result(WAIT)
    svc.set_hyperparameter("optimizer", "lr", 0.05).result(WAIT)
    svc.set_weight("layers.1.b", 0, 0.25).result(WAIT)
    assert [e.kind for e in changes] == ["hyperparameter", "weight"]
    assert svc.snapshot.parameters()["layers.1.b"][0] == 0.25
    svc.run(10).result(WAIT)
    fork = svc.fork(15).result(WAIT)
    try:
        assert fork.wait_built(WAIT).step == 15
        fork.run(5).result(WAIT)
        assert fork.snapshot.theta.tobytes() == svc.snapshot.theta.tobytes()
    finally:
        fork.close()


def test_a_failing_command_fails_its_future_and_the_service_goes_on(service):
    svc = service()
    with pytest.raises(SessionError, match="step 99 is not recorded"):
        svc.rewind(99).result(WAIT)
    assert svc.step().result(WAIT) > 0


def test_a_build_error_reaches_whoever_waits():
    svc = SessionService(experiment(PLUGIN_PATH, batch_size=1)).start()
    try:
        with pytest.raises(SessionError, match=r"training\.batch_size = 1"):
            svc.wait_built(WAIT)
    finally:
        svc.close()


# ------------------------------------------------------------------- queries


def test_the_output_grid_is_the_network_over_data_coordinates(service):
    svc = service()
    svc.run(20).result(WAIT)
    snap = svc.snapshot
    grid = snap.output_grid(resolution=7, bounds=((-1.0, 1.0), (-2.0, 2.0)))
    assert grid.labels.shape == (7, 7) and grid.scores.shape == (7, 7, 1)
    j, i = 2, 5  # element [j, i] is the point (xs[i], ys[j])
    point = np.array([[grid.xs[i], grid.ys[j]]])
    bare = Session(experiment())
    bare.run_steps(20)
    score = bare.predict(make_features(point, ["x1", "x2", "x1*x2"]))[0, 0]
    assert grid.scores[j, i, 0] == score
    assert grid.labels[j, i] == int(score > 0.0)  # tanh output: classes at -1 and +1
    assert grid.margin[j, i] == score  # already between the two levels


def test_the_margin_of_a_logit_is_its_sigmoid_stretched_to_minus_one_one(service):
    svc = service(loss="bce_with_logits", layers=[dense(6, "tanh"), dense(1, "linear")])
    svc.run(5).result(WAIT)
    grid = svc.snapshot.output_grid(resolution=6)
    z = grid.scores[..., 0]
    np.testing.assert_allclose(grid.margin, 2.0 / (1.0 + np.exp(-z)) - 1.0, rtol=1e-12, atol=1e-15)
    assert np.array_equal(grid.labels, (z > 0).astype(int))


def test_layer_values_for_any_inputs_do_not_disturb_the_step_in_progress(service):
    svc = service(PLUGIN_PATH)
    bare = Session(experiment(PLUGIN_PATH))
    while svc.snapshot.next_phase != "backward 1":
        svc.step_phase().result(WAIT)
    x = np.random.default_rng(0).normal(size=(9, 3))
    values = svc.snapshot.layer_values(x)
    assert set(values) == {"layers.0", "layers.1", "layers.2"}
    assert values["layers.0"]["activation"].shape == (9, 6)
    np.testing.assert_array_equal(values["layers.1"]["input"], values["layers.0"]["activation"])
    svc.step().result(WAIT)
    bare.step_batch()
    assert svc.snapshot.theta.tobytes() == bare.model.theta.tobytes()
    stats = svc.snapshot.layer_stats()
    assert set(stats) == {"layers.0", "layers.1", "layers.2"}
    w = svc.snapshot.parameters()
    expected = np.linalg.norm(np.concatenate([w["layers.0.W"].ravel(), w["layers.0.b"]]))
    assert stats["layers.0"]["weight_norm"] == pytest.approx(expected)


def test_full_speed_chunks_aim_at_the_chunk_duration():
    assert next_chunk(10, 10, CHUNK_SECONDS / 2) == 20  # twice as fast as needed: at most x2
    assert next_chunk(10, 10, CHUNK_SECONDS * 5) == 2  # too slow: shrink at once
    assert next_chunk(64, 10, 1.0) == 64  # a chunk cut short (an epoch's end) says nothing
    assert next_chunk(1, 1, 10.0) == 1


def test_the_snapshot_loss_is_the_last_step_s_whichever_way_it_ran(service):
    """Stepped phase by phase, run fast or rewound: last_loss is the loss of the last step
    done (a fast run once left the phase-stepped value in place)."""
    svc = service()
    while svc.snapshot.next_phase != "update":
        svc.step_phase().result(WAIT)
    stepped = svc.snapshot.last_loss
    svc.step_phase().result(WAIT)
    svc.run(30).result(WAIT)
    rows = svc.snapshot.new_steps
    assert svc.snapshot.last_loss == rows[-1, 2] != stepped
    svc.rewind(12).result(WAIT)
    bare = Session(experiment())
    bare.run_steps(12)
    assert svc.snapshot.last_loss == bare.last_loss == bare.history.steps.column("train_loss")[-1]
    svc.rewind(0).result(WAIT)
    assert np.isnan(svc.snapshot.last_loss)


def test_go_to_rewinds_or_replays_to_the_same_run(service):
    """Back to a step and forward again: the state at each step is the run's, bit for bit."""
    svc = service()
    svc.run(40).result(WAIT)
    svc.step_phase().result(WAIT)
    for step in (40, 25, 33, 0, 40):
        svc.go_to(step).result(WAIT)
        snap = svc.snapshot
        assert (snap.step, snap.phase_index) == (step, 0)
        bare = Session(experiment())
        bare.run_steps(step)
        assert snap.theta.tobytes() == bare.model.theta.tobytes()


def test_a_view_merging_the_snapshots_epochs_has_the_engine_s_thinned_history():
    """Past its capacity the history keeps a record off its stride only while it is the
    latest: a snapshot names the record its first new one replaces, so a view's copy, merged
    snapshot by snapshot, is the engine's, not a list with stale latest records in it."""
    from gradient_lab.engine.training.history import History
    from tests.experiments import small_session

    session = small_session([dense(3, "tanh"), dense(1, "tanh")], dataset="circle", data="n = 40")
    session.history = History(epoch_capacity=8)
    service = SessionService(session=session, snapshot_rate=1000.0)
    heard = []
    service.subscribe(lambda e, p: heard.append(p["snapshot"]) if e == "snapshot" else None)
    service.start()
    try:
        service.wait_built(60)
        for steps in (3, 5 * session.steps_per_epoch + 1, 7, 40 * session.steps_per_epoch):
            for _ in range(6):
                service.run(steps).result(60)
        service.rewind(session.steps_per_epoch * 30 + 2).result(60)
        service.run(9 * session.steps_per_epoch).result(60)
        kept = service.call(lambda s: [dict(r) for r in s.history.epochs]).result(60)
    finally:
        service.close()
    view: list = []
    for snap in heard:
        snap.merge_epochs(view)
    assert any(s.replaced_epoch_step is not None for s in heard)  # it happened
    assert view == kept
