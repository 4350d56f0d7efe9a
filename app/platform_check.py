"""Can a window open here? The display and the system libraries Qt's xcb platform loads,
checked before Qt starts: a missing piece becomes one line naming the fix, never Qt's abort.

Run as ``python -m gradient_lab.app.platform_check [--install]`` (the README's run command does):
it prints what is missing and, with ``--install`` as root on Debian or Ubuntu, installs it.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys

# the shared library Qt's xcb platform plugin loads, and the Debian/Ubuntu package that has it
XCB_LIBRARIES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
}


def _loadable(library: str) -> bool:
    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


def missing_packages(loadable=_loadable) -> list[str]:
    """The packages whose libraries Qt's xcb platform needs and this system cannot load."""
    if not sys.platform.startswith("linux"):
        return []
    return [package for library, package in XCB_LIBRARIES.items() if not loadable(library)]


def install_command(packages: list[str]) -> str:
    prefix = "" if hasattr(os, "geteuid") and os.geteuid() == 0 else "sudo "
    return f"{prefix}apt-get install -y {' '.join(packages)}"


def platform_name(environ=os.environ) -> str:
    """The Qt platform the app will use: QT_QPA_PLATFORM's, else xcb or wayland on Linux."""
    chosen = environ.get("QT_QPA_PLATFORM", "").split(":")[0]
    if chosen or not sys.platform.startswith("linux"):
        return chosen or "native"
    if environ.get("WAYLAND_DISPLAY") and not environ.get("DISPLAY"):
        return "wayland"
    return "xcb"


def problem(environ=os.environ, loadable=_loadable) -> str | None:
    """Why no window can open here, in one line with the fix; None when one can."""
    platform = platform_name(environ)
    if platform != "xcb":
        return None
    if not environ.get("DISPLAY"):
        return (
            "no display to open the window on (DISPLAY is not set): run it on a desktop, "
            "under a virtual one ('xvfb-run gradient-lab'), or train headless with "
            "'gradient-lab run EXPERIMENT.toml'"
        )
    missing = missing_packages(loadable)
    if missing:
        return (
            f"Qt's xcb platform needs system libraries that are missing: "
            f"{', '.join(missing)}; install them with: {install_command(missing)}"
        )
    return None


def virtual_display_packages() -> list[str]:
    missing = [] if shutil.which("xvfb-run") else ["xvfb"]
    dri = "/usr/lib/x86_64-linux-gnu/dri"
    if (
        sys.platform.startswith("linux")
        and not os.path.isdir(dri)
        and not os.path.isdir("/usr/lib/aarch64-linux-gnu/dri")
    ):
        missing.append("libgl1-mesa-dri")
    return missing


def install(packages: list[str]) -> int:
    """apt-get install ``packages`` (as root), updating the package lists if that fails."""
    command = install_command(packages)
    if not (command.startswith("apt-get") and shutil.which("apt-get")):
        print(f"missing: {' '.join(packages)}; install them with: {command}")
        return 2
    print(f"installing {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.call(command.split(), env=env) == 0:
        return 0
    subprocess.call(["apt-get", "update", "-q"], env=env)  # a fresh image has no lists yet
    return subprocess.call(command.split(), env=env)


def main(argv: list[str] | None = None) -> int:
    """Report the missing libraries; with --install, install them when this is root with apt
    (with --virtual-display, also Xvfb and software OpenGL, which the 3D view's test uses)."""
    args = sys.argv[1:] if argv is None else argv
    missing = missing_packages()
    if "--virtual-display" in args:
        missing += virtual_display_packages()
    if not missing:
        return 0
    if "--install" in args:
        return install(missing)
    print(
        f"Qt's xcb platform needs: {' '.join(missing)}; install them with: "
        f"{install_command(missing)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
