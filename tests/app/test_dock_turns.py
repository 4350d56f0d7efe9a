"""While training plays fast the docks draw in turn, as many a frame as the window has time
for."""

from gradient_lab.app.dock_turns import FEWEST, LATE_S, DockTurns

DOCKS = ["inspector", "weights", "gradients", "curves", "landscape"]
ON_TIME, LATE = 0.025, 2 * LATE_S


def frames(turns, gaps):
    return [turns.take(DOCKS, gap) for gap in gaps]


def test_frames_on_time_let_every_dock_draw_every_frame():
    drawn = frames(DockTurns(), [ON_TIME] * 200)
    assert all(sorted(docks) == sorted(DOCKS) for docks in drawn[-50:])


def test_late_frames_leave_each_dock_its_turn_now_and_then():
    turns = DockTurns()
    drawn = frames(turns, [LATE] * 500)
    assert turns.per_frame == FEWEST
    late = [d for docks in drawn[-100:] for d in docks]
    assert len(late) == round(100 * FEWEST)  # one dock every fifth frame
    assert all(late.count(name) == len(late) // len(DOCKS) for name in DOCKS)  # in turn


def test_one_late_frame_draws_fewer_docks_at_once():
    turns = DockTurns()
    frames(turns, [ON_TIME] * 200)
    assert turns.per_frame == len(DOCKS)
    turns.take(DOCKS, LATE)
    assert turns.per_frame < len(DOCKS)
    assert len(turns.take(DOCKS, ON_TIME)) < len(DOCKS)


def test_no_dock_shown_draws_none():
    turns = DockTurns()
    assert turns.take([], ON_TIME) == []
