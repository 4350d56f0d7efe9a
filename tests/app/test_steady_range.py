"""Live plots' ranges hold still: they grow at once when the data leaves them, with headroom,
and shrink only when the data has stayed well inside for a while."""

import numpy as np

from gradient_lab.app.views.steady_range import FILL, HEADROOM, PATIENCE, SteadyRange, steady_plot


def steady_at(low, high):
    """A SteadyRange that is showing (low, high), as it gave it."""
    steady = SteadyRange()
    assert steady.follow((0.0, 1.0), (low, high)) == (low, high)  # the first: the data's own
    return steady


def test_a_range_holds_while_the_data_stays_inside_and_fills_it():
    steady = steady_at(0.0, 10.0)
    for data in [(0.0, 8.0), (1.0, 9.5), (0.5, 6.0)]:
        assert steady.follow((0.0, 10.0), data) == (0.0, 10.0)


def test_data_that_leaves_the_range_grows_it_at_once_with_headroom_on_that_side():
    assert steady_at(0.0, 10.0).follow((0.0, 10.0), (0.0, 12.0)) == (0.0, 12.0 + HEADROOM * 12)
    assert steady_at(0.0, 10.0).follow((0.0, 10.0), (-2.0, 10.0)) == (-2.0 - HEADROOM * 12, 10.0)


def test_a_range_shrinks_only_after_the_data_stayed_small_for_a_while():
    steady = steady_at(0.0, 10.0)
    small = (0.0, 0.9 * FILL * 10.0)
    shown = [steady.follow((0.0, 10.0), small) for _ in range(PATIENCE)]
    assert shown[:-1] == [(0.0, 10.0)] * (PATIENCE - 1) and shown[-1] == small
    flicker = steady_at(0.0, 10.0)  # a large value now and then restarts the count
    for i in range(3 * PATIENCE):
        data = (0.0, 9.0) if i % (PATIENCE - 1) == 0 else small
        assert flicker.follow((0.0, 10.0), data) == (0.0, 10.0)


def test_a_range_set_otherwise_is_not_kept():
    steady = steady_at(0.0, 10.0)
    # a log switch, a new session or the user moved it: the data's own range at once
    assert steady.follow((-1.0, 1.0), (-0.8, 0.5)) == (-0.8, 0.5)


def test_a_steady_plot_moves_its_axis_a_few_times_for_a_growing_curve(qtbot):
    plot = steady_plot()
    qtbot.addWidget(plot)
    curve = plot.plot()
    view = plot.getPlotItem().getViewBox()
    ranges = []
    for n in range(2, 400):
        curve.setData(np.arange(n, dtype=float), np.sin(np.arange(n) / 10.0))
        view.updateAutoRange()
        ranges.append(tuple(view.viewRange()[0]))
        assert ranges[-1][0] <= 0 and ranges[-1][1] >= n - 1  # every point in view
    assert len(set(ranges)) < 25  # not once a point
