"""What every benchmark says about the machine it ran on (results are only comparable within one run)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe() -> str:
    """e.g. 'Intel(R) Xeon(R) Processor, 2 cores (shared), Python 3.11.7, Linux'."""
    return f"{cpu_model()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}, {platform.system()}"
