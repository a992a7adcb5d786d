"""Memory estimates checked before allocating, so that an option or a model folder that cannot
fit is one clear line instead of an allocation failure or the kernel's OOM killer."""

from __future__ import annotations

import math
import os

from sentiment_cli.config import TrainingConfig
from sentiment_cli.device import resolve_device
from sentiment_cli.errors import DataError, SentimentError
from sentiment_cli.model.architecture import parameter_count

# Peak memory of training, in copies of the weights: the weights, Adam's two moments, the best
# epoch's copy, the running sum for averaging (float64: two), the checkpoint's snapshot and
# what torch and safetensors hold while saving. Measured: 9.5 copies beyond the process's own
# 300 MB at --hidden 5000 and 10000 on data/reviews.csv (40M and 81M parameters); 12 leaves a
# margin.
TRAINING_COPIES = 12
# vocabulary.json as Python strings, the term -> column dictionary and scikit-learn's copy of it
# take about this many times the file's size (measured 24x on 5 million short terms).
JSON_EXPANSION = 30


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


def check_training_memory(options: TrainingConfig, vocab_size: int, n_outputs: int,
                          processes: int = 1) -> None:
    """Refuse a model whose weights and optimizer state cannot fit, before allocating them
    (in each of ``processes`` training processes on this machine: torchrun's local ranks)."""
    params = parameter_count(vocab_size, options.hidden, n_outputs)
    hidden = ",".join(map(str, options.hidden)) or "none"
    what = (f"--hidden {hidden} with a vocabulary of {vocab_size:,} terms" if vocab_size > 1
            else f"--hidden {hidden} (even with a vocabulary of one term)")
    fix = "use a smaller --hidden, or shrink the vocabulary with --max-features or --min-df 2"
    if processes > 1:
        what += f" in each of {processes} processes"
    check_fits(4 * TRAINING_COPIES * params * processes, what, fix)
    if options.device.strip().lower().startswith("cuda") and vocab_size > 1:
        import torch


        free, _ = torch.cuda.mem_get_info(resolve_device(options.device))
        if 4 * 3 * params > free:  # the weights and Adam's two moments live on the GPU
            raise DataError(f"{what} needs about {human(12 * params)} of GPU memory and "
                            f"{human(free)} is free; {fix}")
