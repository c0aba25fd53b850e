"""The machine a script's numbers were measured on, as the results files name it."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe() -> str:
    """One line: CPU, logical CPU count, operating system."""
    return f"{cpu_name()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"
