"""Memory estimates checked before allocating, so that an option or a model folder that cannot
fit is one clear line instead of an allocation failure or the kernel's OOM killer."""

from __future__ import annotations

import math
import os

from .errors import DataError, SentimentError

# Training keeps, per parameter: the weights, Adam's two moments, the best epoch's copy, the
# running sum of epochs for averaging (float64: two), and the checkpoint's copy being written.
TRAINING_COPIES = 7
# A JSON list of short strings takes about this many times its size as Python objects.
JSON_EXPANSION = 12


def available_bytes() -> int | None:
    """Memory the kernel can give this process now (MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def human(n_bytes: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n_bytes < 1024 or unit == "PiB":
            return f"{n_bytes:.0f} {unit}" if unit == "bytes" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    raise AssertionError("unreachable")


def check_fits(needed: float, what: str, fix: str,
               error: type[SentimentError] = DataError) -> None:
    """Refuse ``what`` when it needs more memory than is available now."""
    available = available_bytes()
    if available is not None and (not math.isfinite(needed) or needed > available):
        raise error(f"{what} needs about {human(needed)} of memory and {human(available)} is "
                    f"available; {fix}")
