"""``gradient-lab bench --app``: the window's speed while training at full speed on W1, every
dock open (the landscape computed, so its live path grows): frames drawn per second by each
view, the share of the headless service's steps a second that training keeps with the window
open, and how late a 10 ms timer on the GUI thread fires (how long input waits). The network
and its output draw every frame, the docks in turn, as many a frame as there is time for.
Rounds alternate with the service alone, as this machine's speed drifts within seconds."""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

ROUND_SECONDS = 4.0
ROUNDS = 3
FPS_TARGET = 30.0  # the network and its output
MAIN_VIEWS = ("network", "output")
IDLE = "curvature: idle (its measurement is off until asked for: it stops fast runs)"
SHARE_TARGET = 0.7
LATENCY_TARGET_MS = 50.0


def command_bench_app(args: Any) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen" if not os.environ.get("DISPLAY") else "")
    if not os.environ["QT_QPA_PLATFORM"]:
        del os.environ["QT_QPA_PLATFORM"]
    from gradient_lab.engine.cli.bench import W1

    seconds = 1.5 if args.quick else ROUND_SECONDS
    rounds = 1 if args.quick else ROUNDS
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "w1.toml"
        path.write_text(W1.toml, encoding="utf-8")
        os.environ.setdefault("GRADIENT_LAB_CONFIG", str(Path(folder) / "config"))
        record = measure(path, seconds, rounds, every_dock=not args.default_layout)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(report(record))
    return 0


def measure(path: Path, seconds: float, rounds: int, every_dock: bool = True) -> dict[str, Any]:
    from PySide6 import QtCore

    from gradient_lab.app.main import application
    from gradient_lab.app.main_window import MainWindow

    app = application()
    window = MainWindow()
    window.resize(1920, 1080)
    window.show()
    window.open_experiment(path)
    _wait(app, lambda: window.latest is not None, 300)
    window.service().wait_compiled(300)
    if every_dock:
        open_every_dock(window)
        compute_landscape(app, window)
    counter = DrawCounter(window)
    window.controls.speed.setCurrentText("as fast as possible")
    window_rates: list[float] = []
    alone_rates: list[float] = []
    fps: dict[str, list[float]] = {name: [] for name in counter.counts}
    gaps: list[float] = []
    for _ in range(rounds):
        alone_rates.append(service_alone(path, seconds, window.registry))
        steps, frames, round_gaps = play_round(app, window, counter, seconds)
        window_rates.append(steps)
        gaps += round_gaps
        for name, count in frames.items():
            fps[name].append(count)
    window.close()
    gaps.sort()
    share = [w / a for w, a in zip(window_rates, alone_rates, strict=True)]
    return {
        "workload": "W1, "
        + ("every dock open" if every_dock else "the layout it opens with")
        + ", full speed",
        "platform": QtCore.QCoreApplication.instance().platformName(),  # type: ignore[union-attr]
        "rounds": rounds,
        "seconds_per_round": seconds,
        "fps": {name: statistics.median(values) for name, values in fps.items()},
        "docks_in_turn": len(counter.counts) - len(MAIN_VIEWS),
        "steps_per_second_window": statistics.median(window_rates),
        "steps_per_second_alone": statistics.median(alone_rates),
        "share": statistics.median(share),
        "timer_gap_ms_median": 1000 * gaps[len(gaps) // 2],
        "timer_gap_ms_p99": 1000 * gaps[min(len(gaps) - 1, int(0.99 * len(gaps)))],
        "timer_gap_ms_max": 1000 * gaps[-1],
    }


def open_every_dock(window: Any) -> None:
    """Every dock shown at once (none behind another's tab)."""
    from PySide6 import QtCore

    areas = [
        QtCore.Qt.DockWidgetArea.BottomDockWidgetArea,
        QtCore.Qt.DockWidgetArea.RightDockWidgetArea,
    ]
    docks = [
        window.curves_dock,
        window.inspector_dock,
        window.weights_dock,
        window.gradients_dock,
        window.landscape_dock,
        window.curvature_dock,
    ]
    for i, dock in enumerate(docks):
        window.addDockWidget(areas[i % 2], dock)
        dock.show()


def compute_landscape(app: Any, window: Any) -> None:
    """A 21×21 landscape around the start, so the dock draws the live path while playing."""
    view = window.landscape
    view.grid_size.setCurrentIndex(view.grid_size.findData(21))
    view.compute.click()
    _wait(app, lambda: view.result is not None and view.compute.isEnabled(), 300)


class DrawCounter:
    """Counts the snapshots each view draws (its frames; what it paints then depends on what
    changed: a heat map of weights that moved less than a colour step is not repainted)."""

    DRAWS: ClassVar[dict[str, str]] = {  # view: the method that draws a new snapshot on it
        "network": "show_snapshot",
        "output": "show_snapshot",
        "curves": "history_clock.draw_pending",
        "weights": "show_snapshot",
        "gradients": "show_snapshot",
        "landscape": "draw_pending",  # its show_snapshot records a point at every frame
        "inspector": "show_snapshot",
    }

    def __init__(self, window: Any) -> None:
        self.counts = dict.fromkeys(self.DRAWS, 0)
        for name, method in self.DRAWS.items():
            owner = getattr(window, name)
            *path, attribute = method.split(".")
            for part in path:
                owner = getattr(owner, part)
            setattr(owner, attribute, self._counted(name, getattr(owner, attribute)))

    def _counted(self, name: str, draw: Any) -> Any:
        def counted(*args: Any) -> Any:
            self.counts[name] += 1
            return draw(*args)

        return counted


def play_round(app: Any, window: Any, counter: Any, seconds: float) -> tuple[float, dict, list]:
    from PySide6 import QtCore

    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QtCore.QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    window.controls.play.trigger()
    _wait(app, lambda: window.latest.playing, 30)
    _run(app, 0.5)  # past the first chunks
    counter.counts = dict.fromkeys(counter.counts, 0)
    start_step, started = window.service().snapshot.step, time.perf_counter()
    last[0] = started
    timer.start()
    _run(app, seconds)
    timer.stop()
    took = time.perf_counter() - started
    steps = (window.service().snapshot.step - start_step) / took
    frames = {name: count / took for name, count in counter.counts.items()}
    window.controls.play.trigger()
    # paused, and shown as paused (else the next round's Play would be a second Pause)
    _wait(app, lambda: not window.latest.playing and not window.controls.play.isChecked(), 30)
    return steps, frames, gaps[1:]


def service_alone(path: Path, seconds: float, registry: Any) -> float:
    """Steps a second of the same experiment played by the service with no window."""
    from gradient_lab.app.main_window import SNAPSHOT_RATE
    from gradient_lab.engine.service.worker import SessionService
    from gradient_lab.engine.training.experiment import load_experiment

    # publishing as often as the window's service does
    service = SessionService(
        load_experiment(path, registry), registry, snapshot_rate=SNAPSHOT_RATE
    ).start()
    try:
        service.wait_compiled(300)
        service.play(None).result(60)
        time.sleep(0.5)
        start, started = service.wait_built().step, time.perf_counter()
        time.sleep(seconds)
        return (service.wait_built().step - start) / (time.perf_counter() - started)
    finally:
        service.close()


def _run(app: Any, seconds: float) -> None:
    """The window's own event loop for ``seconds``: it sleeps when there is nothing to do, as
    the app's does (a loop of ``processEvents`` calls would spin and hold the interpreter)."""
    from PySide6 import QtCore

    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(round(1000 * seconds), loop.quit)
    loop.exec()


def _wait(app: Any, condition: Any, timeout: float) -> None:
    end = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > end:
            raise TimeoutError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.002)


def report(record: dict[str, Any]) -> str:
    lines = [
        f"{record['workload']} ({record['platform']} platform, {record['rounds']} rounds of "
        f"{record['seconds_per_round']:g} s, medians)",
        "",
        "view               frames/s (new snapshots drawn)",
    ]
    for name, fps in record["fps"].items():
        if name in MAIN_VIEWS:
            mark = f"   (target {FPS_TARGET:g})"
        elif fps == 0:
            mark = "   (behind a tab: not drawn)"
        else:
            mark = "   (a dock: the docks shown draw in turn, as many a frame as there is time for)"
        lines.append(f"{name:<18} {fps:8.1f}{mark}")
    lines += [
        IDLE,
        "",
        f"training with the window open  {record['steps_per_second_window']:>10,.0f} steps/s",
        f"the service alone              {record['steps_per_second_alone']:>10,.0f} steps/s",
        f"share kept                     {record['share']:>10.2f}   (target {SHARE_TARGET})",
        f"10 ms timer, gap median / p99 / max  {record['timer_gap_ms_median']:.1f} / "
        f"{record['timer_gap_ms_p99']:.1f} / {record['timer_gap_ms_max']:.1f} ms "
        f"(input waits at most the gap; target {LATENCY_TARGET_MS:g} ms)",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--default-layout", action="store_true")
    sys.exit(command_bench_app(parser.parse_args()))
