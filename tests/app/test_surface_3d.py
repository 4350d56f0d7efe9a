"""The landscape's 3D surface needs OpenGL on a real display: it is tested on a virtual one
(Xvfb with Mesa's software OpenGL), in a process of its own since a QApplication's platform is
chosen once per process. `make test` installs Xvfb where it can (root with apt)."""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import os, sys, time
    from gradient_lab.app.main import application, open_window
    from gradient_lab.engine.cli.main import default_experiment_path

    app = application()
    assert app.platformName() == "xcb", app.platformName()
    win = open_window(default_experiment_path())

    def wait(condition, seconds=120):
        end = time.time() + seconds
        while not condition():
            assert time.time() < end, "timed out"
            app.processEvents()
            time.sleep(0.01)

    wait(lambda: win.latest is not None)
    view = win.landscape
    view.grid_size.setCurrentIndex(0)
    view.compute.click()
    wait(lambda: view.result is not None and view.result.complete)
    view.open_surface()
    assert view.surface is not None and view.surface.isVisible(), view.status.text()
    wait(lambda: view.surface.surface is not None)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    image = view.surface.view.grabFramebuffer()
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7)
               for y in range(0, image.height(), 7)}
    print("colours", len(colours), image.width(), image.height())
    win.close()
""")


@pytest.mark.skipif(
    shutil.which("xvfb-run") is None,
    reason="no xvfb-run: the 3D view needs a display (make test installs Xvfb as root)",
)
def test_the_3d_surface_draws_under_a_virtual_display(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env["QT_QPA_PLATFORM"] = "xcb"
    env["GRADIENT_LAB_CONFIG"] = str(tmp_path)
    result = subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("colours"))
    _, count, width, height = line.split()
    assert int(width) > 100 and int(height) > 100
    assert int(count) > 20  # a coloured surface, not an empty or failed GL view
