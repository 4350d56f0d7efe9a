"""How much memory this machine has free, so a too large model is refused before it is built."""

from __future__ import annotations

import os
from pathlib import Path

UNKNOWN = 1 << 62  # when the platform does not say, nothing is refused


def available_bytes() -> int:
    """Memory available to a new allocation now (Linux's MemAvailable; free pages elsewhere)."""
    meminfo = Path("/proc/meminfo")
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return UNKNOWN


def size_text(n_bytes: float) -> str:
    """1.5 GiB, 730 MiB, 12 KiB."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{int(n_bytes)} B"
