"""Loss landscapes: orientation against a known quadratic, exact origin and end points, untouched
sessions, filter norms, PCA of planar and random paths, coarse-to-fine, cancel, compiled path."""

import numpy as np
import pytest

from gradient_lab.engine.files import load_npz
from gradient_lab.engine.instruments import landscape as ls
from gradient_lab.engine.training.evaluation import Evaluator
from tests.experiments import dense, small_session

SPIRAL = dict(
    dataset="spiral",
    data="n = 80\nnoise = 0.1",
    features=["x1", "x2"],
    layers=[dense(6, "tanh"), dense(5, "tanh"), dense(1, "tanh")],
    loss="mse",
)
BLOBS = dict(
    dataset="blobs",
    data="n = 90\nclasses = 3",
    layers=[dense(7, "relu"), '{ type = "activation", activation = "relu" }', dense(3, "linear")],
    loss='{ name = "cross_entropy", input = "logits" }',
)
RELU_MLP = dict(
    dataset="blobs",
    data="n = 90\nclasses = 3",
    layers=[dense(7, "relu"), dense(5, "relu"), dense(3, "linear")],
    loss='{ name = "cross_entropy", input = "logits" }',
)
LEAKY = dict(
    dataset="spiral",
    data="n = 80\nnoise = 0.1",
    features=["x1", "x2"],
    layers=[
        dense(6, "leaky_relu", activation_params="{ negative_slope = 0.2 }"),
        dense(1, "tanh"),
    ],
    loss="mse",
)
GENERIC = dict(
    dataset="circle",
    data="n = 60",
    layers=[
        dense(6, "tanh"),
        '{ type = "batch_norm" }',
        '{ type = "dropout", rate = 0.3 }',
        dense(1, "sigmoid"),
    ],
    loss="bce",
)
LINEAR = dict(
    dataset="plane",
    data="n = 40\nnoise = 0.3",
    layers=[dense(1, "linear")],
    loss="mse",
)


def make(spec, steps=30, seed=3, lr=0.05):
    session = small_session(seed=seed, lr=lr, **spec)
    session.run_steps(steps)
    return session


def fingerprint(session):
    """Everything a scan could disturb, as bytes."""
    model = session.model
    state = b"".join(v.tobytes() for v in model.state_arrays().values())
    return model.theta.tobytes(), model.grad.tobytes(), state, session.step


@pytest.fixture(scope="module")
def spiral():
    return make(SPIRAL)


# ------------------------------------------------------------------------------ coordinates


def test_axes_contain_an_exact_zero_and_symmetric_ranges_mirror():
    x = ls.axis(41, -1.0, 1.0)
    assert len(x) == 41 and x[20] == 0.0 and x[0] == -1.0 and x[-1] == 1.0
    assert np.array_equal(x, -x[::-1])
    lopsided = ls.axis(9, -0.5, 1.5)
    assert np.count_nonzero(lopsided == 0.0) == 1
    assert lopsided[0] == pytest.approx(-0.5) and lopsided[-1] == pytest.approx(1.5)
    with pytest.raises(ls.LandscapeError, match="contain 0"):
        ls.axis(5, 0.5, 1.0)


def test_default_alphas_hit_both_end_points_exactly():
    a = ls.alphas(*ls.INTERPOLATION)
    assert len(a) == 201 and a[0] == -0.5 and a[-1] == 1.5
    assert np.count_nonzero(a == 0.0) == 1 and np.count_nonzero(a == 1.0) == 1


# ------------------------------------------------------------------------------ orientation


@pytest.mark.parametrize("fast", [False, True])
def test_orientation_against_a_known_quadratic(fast):
    """Linear regression: the loss over two weights is a quadratic we can write down, and x and y
    have different ranges and counts, so a transposed or shifted grid cannot pass."""
    session = make(LINEAR, steps=5)
    x_data, t = session.x_train, session.targets_train
    w = session.model.get_params()["layers.0.W"]
    b = session.model.get_params()["layers.0.b"]
    r = (x_data @ w + b - t)[:, 0]
    x0, x1 = x_data[:, 0], x_data[:, 1]

    def f(u, v):  # mean((r + u x0 + v x1)^2), expanded
        return (
            np.mean(r * r)
            + 2 * u * np.mean(r * x0)
            + 2 * v * np.mean(r * x1)
            + u * u * np.mean(x0 * x0)
            + 2 * u * v * np.mean(x0 * x1)
            + v * v * np.mean(x1 * x1)
        )

    job = ls.LandscapeJob(
        session,
        "weights",
        weights=(("layers.0.W", (0, 0)), ("layers.0.W", (1, 0))),
        size=(7, 5),
        x_range=(-1.0, 1.0),
        y_range=(-3.0, 3.0),
        fast=fast,
    )
    result = job.run()
    assert result.loss.shape == (5, 7)
    expected = f(result.x[None, :], result.y[:, None])
    np.testing.assert_allclose(result.loss, expected, rtol=1e-12)
    assert result.directions.labels == ("layers.0.W[0, 0]", "layers.0.W[1, 0]")
    j, i = 1, 5  # a point off both axes, checked by hand
    assert result.loss[j, i] == pytest.approx(f(result.x[i], result.y[j]), rel=1e-12)


# ------------------------------------------------------------------------- exact and untouched


@pytest.mark.parametrize("spec", [SPIRAL, RELU_MLP, GENERIC], ids=["points", "rows", "generic"])
def test_origin_is_the_current_loss_and_the_session_is_untouched(spec):
    session = make(spec)
    before = fingerprint(session)
    result = ls.LandscapeJob(session, "random", size=9, seed=1).run()
    assert result.complete and result.done.all()
    j, i = result.origin
    assert result.x[i] == 0.0 and result.y[j] == 0.0
    assert result.loss[j, i] == Evaluator(session).loss(session.model.theta)
    assert result.origin_loss == result.loss[j, i]
    assert fingerprint(session) == before


def test_lines_reproduce_both_states_and_restore_the_session(spiral):
    evaluator = Evaluator(spiral)  # probes the session's own model, then restores it
    before = fingerprint(spiral)
    init = ls.parameters_at(spiral, "init")
    current = ls.parameters_at(spiral, "current")
    line = ls.line_between(evaluator, init, current)
    assert len(line.alpha) == 201 and line.alpha[0] == -0.5 and line.alpha[-1] == 1.5
    assert line.loss[line.alpha == 0.0][0] == evaluator.loss(init)
    assert line.loss[line.alpha == 1.0][0] == evaluator.loss(spiral.model.theta)
    assert np.isfinite(line.loss).all()
    assert fingerprint(spiral) == before
    middle = ls.line_between(evaluator, init, current, fast=False)
    np.testing.assert_allclose(middle.loss, line.loss, rtol=1e-12)


def test_line_between_checkpoints_and_unknown_steps():
    session = make(SPIRAL, steps=0)
    for _ in range(3):
        session.step_batch()  # hand-stepped: a checkpoint after each step
    evaluator = Evaluator(session)
    line = ls.line_between(evaluator, ls.parameters_at(session, 1), ls.parameters_at(session, 3))
    assert line.loss[line.alpha == 1.0][0] == evaluator.loss(session.model.theta)
    assert line.loss[line.alpha == 0.0][0] == evaluator.loss(session.checkpoints[1].theta)
    with pytest.raises(ls.LandscapeError, match=r"recorded steps are 0, 1, 2, 3$"):
        ls.parameters_at(session, 5)


def test_negative_gradient_goes_downhill(spiral):
    evaluator = Evaluator(spiral)
    theta = spiral.model.theta.copy()
    d = ls.gradient_direction(evaluator, theta, normalize="unit")
    assert np.linalg.norm(d) == pytest.approx(1.0)
    line = ls.line_along(evaluator, theta, d, np.array([-1e-3, 0.0, 1e-3]))
    assert line.loss[1] == evaluator.loss(theta)
    assert line.loss[2] < line.loss[1] < line.loss[0]
    scaled = ls.gradient_direction(evaluator, theta)
    assert np.linalg.norm(scaled) == pytest.approx(np.linalg.norm(theta))
    np.testing.assert_allclose(scaled / np.linalg.norm(scaled), d, rtol=1e-12)  # downhill too


# -------------------------------------------------------------------------------- directions


def test_filter_normalized_directions_match_each_units_norm():
    session = make(GENERIC, steps=10)
    model, theta = session.model, session.model.theta
    dirs = ls.random_directions(model.slots, theta, seed=5)
    for d in (dirs.d1, dirs.d2):
        for s in model.slots:
            seg, w = model.view(d, s), model.view(theta, s)
            if len(s.shape) == 1:  # biases, batch-norm gamma and beta
                assert not seg.any(), s.key
            else:  # a dense W is (inputs, units): one column per unit
                np.testing.assert_allclose(
                    np.linalg.norm(seg, axis=0), np.linalg.norm(w, axis=0), rtol=1e-12
                )
    assert not np.allclose(dirs.d1, dirs.d2)
    again = ls.random_directions(model.slots, theta, seed=5)
    assert again.d1.tobytes() == dirs.d1.tobytes()
    with_biases = ls.random_directions(model.slots, theta, seed=5, include_biases=True)
    for s in model.slots:
        if len(s.shape) == 1:
            assert np.array_equal(model.view(with_biases.d1, s), model.view(theta, s))
        else:
            assert np.array_equal(model.view(with_biases.d1, s), model.view(dirs.d1, s))


def test_pca_of_a_planar_path_explains_everything_and_projection_recovers_it():
    rng = np.random.default_rng(0)
    p, k = 300, 40
    theta0 = rng.normal(size=p)
    u = rng.normal(size=p)
    v = rng.normal(size=p) + 0.5 * u  # not orthogonal
    s, t = np.cumsum(rng.normal(size=k)), np.cumsum(rng.normal(size=k))
    states = theta0 + s[:, None] * u + t[:, None] * v
    dirs = ls.pca_directions(states)
    assert dirs.explained_variance.sum() == pytest.approx(1.0, abs=1e-10)
    assert dirs.explained_variance[0] >= dirs.explained_variance[1] > 0
    assert np.linalg.norm(dirs.d1) == pytest.approx(1.0) and abs(dirs.d1 @ dirs.d2) < 1e-12
    coords = ls.project(states, theta0, u, v)
    np.testing.assert_allclose(coords, np.column_stack([s, t]), atol=1e-9)
    # the path lies in the PCA plane: projecting and rebuilding loses nothing
    pc = ls.project(states, states[-1], dirs.d1, dirs.d2)
    rebuilt = states[-1] + pc[:, :1] * dirs.d1 + pc[:, 1:] * dirs.d2
    np.testing.assert_allclose(rebuilt, states, atol=1e-9)
    assert pc[0, 0] < 0 and pc[0, 1] < 0  # the path arrives from the lower left


def test_pca_of_a_random_walk_is_far_from_all_explained():
    walk = np.cumsum(np.random.default_rng(1).normal(size=(200, 2000)), axis=0)
    ratios = ls.pca_directions(walk).explained_variance
    assert 0.3 < ratios[0] < 0.85 and ratios.sum() < 0.95


def test_pca_needs_a_path_that_spans_two_directions():
    with pytest.raises(ls.LandscapeError, match="at least 3"):
        ls.pca_directions(np.zeros((2, 5)))
    line = np.outer(np.arange(5.0), np.ones(4))
    with pytest.raises(ls.LandscapeError, match="on a line"):
        ls.pca_directions(line)


def test_bad_direction_choices_fail_where_the_job_is_made():
    session = make(SPIRAL, steps=0)  # one checkpoint: no path to take a PCA of
    with pytest.raises(ls.LandscapeError, match="at least 3"):
        ls.LandscapeJob(session, "pca")
    with pytest.raises(ls.LandscapeError, match="no weight"):
        ls.LandscapeJob(session, "weights", weights=(("layers.9.W", 0), ("layers.0.W", (0, 0))))
    with pytest.raises(ls.LandscapeError, match="not allowed"):
        ls.LandscapeJob(session, "sideways")


def test_a_failing_worker_reports_through_on_error(monkeypatch):
    def unavailable():
        raise ls.LandscapeError("no curvature here")

    monkeypatch.setattr(ls.directions, "_top_eigenvectors", unavailable)
    errors, results = [], []
    ls.LandscapeJob(make(SPIRAL, steps=0), "hessian").start(results.append, errors.append).join()
    assert results == [] and [str(e) for e in errors] == ["no curvature here"]


def test_weight_choices_are_checked():
    session = make(LINEAR, steps=0)
    slots, n = session.model.slots, session.model.n_params
    with pytest.raises(ls.LandscapeError, match=r"no weight 'layers\.3\.W'"):
        ls.weight_directions(slots, n, ("layers.3.W", (0, 0)), ("layers.0.W", (1, 0)))
    with pytest.raises(ls.LandscapeError, match="outside"):
        ls.weight_directions(slots, n, ("layers.0.W", (2, 0)), ("layers.0.W", (1, 0)))
    dirs = ls.weight_directions(slots, n, ("layers.0.b", 0), ("layers.0.W", (1, 0)))
    assert dirs.d1[2] == 1.0 and dirs.d2[1] == 1.0 and dirs.d1.sum() == dirs.d2.sum() == 1.0


# ------------------------------------------------------------------------ trajectory on plane


def test_recorder_follows_training_and_rewinds():
    session = make(SPIRAL, steps=0)
    recorder = ls.TrajectoryRecorder(every=5).attach(session)
    session.run_steps(30)
    assert list(recorder.steps()) == [0, 5, 10, 15, 20, 25, 30]
    assert recorder.states()[-1].tobytes() == session.model.theta.tobytes()
    session.rewind(12)
    assert list(recorder.steps()) == [0, 5, 10]  # dropped at the rewind
    session.run_steps(3)
    assert list(recorder.steps()) == [0, 5, 10, 15]
    result = ls.LandscapeJob(session, "pca", trajectory=recorder, size=5).run()
    assert result.explained_variance is not None and result.explained_variance.sum() <= 1.0
    assert result.trajectory.shape == (4, 2) and list(result.trajectory_steps) == [0, 5, 10, 15]
    np.testing.assert_allclose(result.trajectory[-1], [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(result.project(recorder.states()), result.trajectory)


def test_recorder_memory_is_bounded():
    session = make(SPIRAL, steps=0)
    recorder = ls.TrajectoryRecorder(every=1, capacity=8).attach(session)
    session.run_steps(40)
    steps = recorder.steps()
    assert len(steps) <= 9 and steps[0] == 0 and steps[-1] == 40
    assert np.all(np.diff(steps) > 0)


def test_checkpoint_trajectory_is_projected_by_default():
    session = make(SPIRAL, steps=0)
    for _ in range(4):
        session.run_steps(10)
    result = ls.LandscapeJob(session, "random", size=5).run()
    assert list(result.trajectory_steps) == session.recorded_steps()
    assert len(result.trajectory) == len(session.checkpoints)
    np.testing.assert_allclose(result.trajectory[-1], [0.0, 0.0], atol=1e-12)


# --------------------------------------------------------------------------- interactive use


@pytest.mark.parametrize("spec", [SPIRAL, RELU_MLP], ids=["points", "row-sweep"])
def test_coarse_picture_first_and_refined_in_place(spec):
    seen = []
    session = make(spec)
    job = ls.LandscapeJob(session, "random", progress=lambda done, total: seen.append(done))
    results = list(job.results())
    coarse, final = results[0], results[-1]
    rows, cols = np.nonzero(coarse.done)
    assert set(rows) == set(range(0, 41, 4)) and not coarse.complete
    if spec is SPIRAL:  # point by point: every 4th point of every 4th row
        assert coarse.done.sum() == 121 and set(cols) == set(range(0, 41, 4))
    else:  # the row sweep: those rows in full, for about the same time
        assert coarse.done.sum() == 11 * 41 and coarse.done[rows].all()
    assert np.array_equal(coarse.loss[coarse.done], final.loss[coarse.done])
    assert final.complete and final.done.all() and final.loss.shape == (41, 41)
    assert seen == sorted(seen) and seen[-1] == 41 * 41


@pytest.mark.parametrize("spec", [SPIRAL, RELU_MLP, GENERIC], ids=["points", "rows", "generic"])
def test_cancel_stops_early_and_leaves_the_session_untouched(spec):
    session = make(spec)
    before = fingerprint(session)
    job = ls.LandscapeJob(session, "random", size=21)
    job.progress = lambda done, total: job.cancel() if done > 30 else None
    result = job.run()
    assert result.cancelled and not result.complete
    assert 30 < result.done.sum() < 21 * 21
    assert np.isnan(result.loss[~result.done]).all()
    assert fingerprint(session) == before


@pytest.mark.parametrize("spec", [SPIRAL, RELU_MLP, GENERIC], ids=["points", "rows", "generic"])
def test_a_job_in_a_worker_thread_ignores_training_meanwhile(spec):
    session, twin = make(spec), make(spec)
    job = ls.LandscapeJob(session, "random", size=15, seed=2)
    results = []
    thread = job.start(results.append)
    session.run_steps(200)  # the session moves on while the job scans its snapshot
    thread.join()
    reference = ls.LandscapeJob(twin, "random", size=15, seed=2).run()
    assert results[-1].complete
    assert results[-1].loss.tobytes() == reference.loss.tobytes()
    twin.run_steps(200)  # and training was not disturbed by the scan
    assert session.model.theta.tobytes() == twin.model.theta.tobytes()


# --------------------------------------------------------------------------- compiled vs generic


COMPILED = [SPIRAL, BLOBS, LINEAR, RELU_MLP, LEAKY]
COMPILED_IDS = ["tanh-mse", "relu-layer-ce", "linear", "relu-mlp-sweep", "leaky-sweep"]


@pytest.mark.parametrize("spec", COMPILED, ids=COMPILED_IDS)
def test_compiled_path_equals_the_generic_path(spec):
    session = make(spec)
    evaluator = Evaluator(session)
    assert ls.fast_path_supported(evaluator)
    kwargs = dict(size=(9, 7), x_range=(-1.0, 1.0), y_range=(-0.5, 2.0), seed=4)
    kwargs["include_biases"] = True  # the biases move too
    fast = ls.LandscapeJob(session, "random", fast=True, **kwargs).run()
    slow = ls.LandscapeJob(session, "random", fast=False, **kwargs).run()
    np.testing.assert_allclose(fast.loss, slow.loss, rtol=1e-12)
    assert fast.loss[fast.origin] == slow.loss[slow.origin] == evaluator.loss(session.model.theta)


@pytest.mark.parametrize("spec", [RELU_MLP, LEAKY], ids=["relu", "leaky"])
def test_row_sweep_handles_any_point_set(spec):
    """Piecewise-linear first activations take the row sweep; scattered points, repeated
    points and single-point rows still give the generic path's values."""
    session = make(spec)
    evaluator = Evaluator(session)
    theta = session.model.theta
    dirs = ls.random_directions(session.model.slots, theta, seed=7, include_biases=True)
    assert np.linalg.norm(dirs.d1) > 0 and np.linalg.norm(dirs.d2) > 0
    fast = ls.PlaneLoss(evaluator, theta, dirs.d1, dirs.d2)
    assert fast.compiled is not None and fast.compiled.slope is not None
    slow = ls.PlaneLoss(evaluator, theta, dirs.d1, dirs.d2, fast=False)
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.uniform(-2, 2, 30), [0.5, 0.5, -1.5]])
    b = np.concatenate([rng.choice([-1.0, 0.0, 0.25, 1.0], 30), [0.3, 0.3, 0.9]])
    np.testing.assert_allclose(fast(a, b), slow(a, b), rtol=1e-12)


def test_generic_models_have_no_compiled_path():
    evaluator = Evaluator(make(GENERIC, steps=0))
    assert not ls.fast_path_supported(evaluator)
    with pytest.raises(ls.LandscapeError, match="compiled path"):
        theta = evaluator.model.theta
        ls.PlaneLoss(evaluator, theta, theta, theta, fast=True)


# ----------------------------------------------------------------------------- data and files


def test_subsample_is_stated_and_used(spiral):
    full = ls.LandscapeJob(spiral, "random", size=5).run()
    part = ls.LandscapeJob(spiral, "random", size=5, subsample=25, data_seed=1).run()
    n = len(spiral.x_train)
    assert full.description == f"full training set ({n} samples)"
    assert f"25 of {n} samples" in part.description and "seed 1" in part.description
    assert part.origin_loss != full.origin_loss


def test_save_npz_round_trip(tmp_path, spiral):
    result = ls.LandscapeJob(spiral, "random", size=(7, 5)).run()
    path = tmp_path / "landscape.npz"
    ls.save_npz(result, path)
    data = load_npz(path)
    assert str(data["kind"]) == "plane" and str(data["directions"]) == "random"
    assert data["loss"].shape == (5, 7) and np.array_equal(data["loss"], result.loss)
    assert np.array_equal(data["x"], result.x) and np.array_equal(data["y"], result.y)
    assert float(data["origin_loss"]) == result.origin_loss
    assert np.array_equal(data["trajectory"], result.trajectory)
    assert "full training set" in str(data["description"])
    line = ls.line_between(Evaluator(spiral), ls.parameters_at(spiral, "init"), spiral.model.theta)
    ls.save_npz(line, tmp_path / "line.npz")
    saved = load_npz(tmp_path / "line.npz")
    assert np.array_equal(saved["loss"], line.loss) and str(saved["kind"]) == "line"


def test_pca_job_saves_explained_variance(tmp_path):
    session = make(SPIRAL, steps=0)
    for _ in range(5):
        session.run_steps(7)
    result = ls.LandscapeJob(session, "pca", size=5).run()
    ls.save_npz(result, tmp_path / "pca.npz")
    saved = load_npz(tmp_path / "pca.npz")
    np.testing.assert_array_equal(saved["explained_variance"], result.explained_variance)


# ----------------------------------------------------------------------------------- Hessian


def test_hessian_directions_on_a_quadratic():
    session = make(LINEAR, steps=5)
    evaluator = Evaluator(session)
    x = np.column_stack([session.x_train, np.ones(len(session.x_train))])
    hessian = 2.0 * x.T @ x / len(x)  # exact for MSE of a linear model, order (W0, W1, b)
    values, vectors = np.linalg.eigh(hessian)
    dirs = ls.hessian_directions(evaluator, session.model.theta)
    np.testing.assert_allclose(dirs.eigenvalues, values[::-1][:2], rtol=1e-8)
    assert abs(dirs.d1 @ vectors[:, -1]) == pytest.approx(1.0, abs=1e-8)
    top = ls.hessian_direction(evaluator, session.model.theta)
    assert abs(top @ vectors[:, -1]) == pytest.approx(1.0, abs=1e-8)
    result = ls.LandscapeJob(session, "hessian", size=5).run()
    assert result.directions.kind == "hessian" and result.done.all()
