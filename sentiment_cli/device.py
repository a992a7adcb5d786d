"""Which torch device a run uses: --device resolved, with one clear line when it cannot work.

Its own module, importing torch only when called: the memory checks and bce-predict on CPU must
not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sentiment_cli.errors import DataError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str) -> torch.device:
    """auto -> CUDA when present, else CPU; an explicit CUDA request without CUDA is an error."""
    import torch

    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DataError(
                f"--device {name}: CUDA is not available here (no GPU, or a CPU-only torch "
                f"{torch.__version__}); use --device cpu or --device auto"
            )
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise DataError(
                f"--device {name}: there are {torch.cuda.device_count()} CUDA device(s); "
                f"use cuda:0 to cuda:{torch.cuda.device_count() - 1}"
            )
        return torch.device(name)
    raise DataError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}")
