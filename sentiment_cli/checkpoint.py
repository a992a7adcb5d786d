"""Per-epoch checkpoints of a training run, for --resume after Ctrl-C, SIGTERM or a crash.

The checkpoint folder sits beside the model folder (``models/x.checkpoint`` for ``models/x``)
and is replaced atomically after every completed epoch: the model and optimizer state, the best
weights so far, the RNG states, the history, and a fingerprint of the job (data, options,
vocabulary) so that --resume refuses to continue a different run. It is removed once the model
folder is written. Tensors are safetensors and the rest JSON, as in the model folder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .bundle import write_folder_atomically, write_json
from .errors import DataError
from .progress import EpochStats

if TYPE_CHECKING:  # torch is imported by the training step, not by importing this module
    import torch

    from .train import TrainState

STATE_FILE = "state.json"


def checkpoint_path(output: Path) -> Path:
    return output.with_name(output.name + ".checkpoint")


def vocabulary_digest(terms: list[str]) -> str:
    return hashlib.sha256("\n".join(terms).encode("utf-8")).hexdigest()


def save_checkpoint(folder: Path, state: TrainState, fingerprint: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    def fill(staging: Path) -> None:
        save_file(_contiguous(state.model_state), str(staging / "last.safetensors"))
        if state.best_state is not None:
            save_file(_contiguous(state.best_state), str(staging / "best.safetensors"))
        optimizer = state.optimizer_state
        tensors = {f"exp_avg.{i}": t for i, t in enumerate(optimizer["exp_avg"])}
        tensors |= {f"exp_avg_sq.{i}": t for i, t in enumerate(optimizer["exp_avg_sq"])}
        tensors |= {"torch_rng": state.torch_rng, "shuffle_rng": state.shuffle_rng}
        tensors |= {f"weight_sum.{k}": v for k, v in (state.weight_sum or {}).items()}
        save_file(_contiguous(tensors), str(staging / "optimizer.safetensors"))
        write_json(staging / STATE_FILE, {
            "fingerprint": fingerprint,
            "epoch": state.epoch,
            "steps": optimizer["steps"],
            "n_tensors": len(optimizer["exp_avg"]),
            "best_val_loss": state.best_val_loss,
            "best_epoch": state.best_epoch,
            "bad_epochs": state.bad_epochs,
            "history": [asdict(h) for h in state.history],
        })

    write_folder_atomically(folder, fill, force=True)


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


def load_checkpoint(folder: Path, fingerprint: dict[str, Any]) -> TrainState:
    """Read a checkpoint written by the same job; anything else is a clear error."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .train import TrainState

    if not (folder / STATE_FILE).is_file():
        raise DataError(f"--resume: no checkpoint at {folder}; train without --resume")
    try:
        meta = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        saved = meta["fingerprint"]
        if saved != fingerprint:
            changed = sorted(k for k in set(saved) | set(fingerprint)
                             if saved.get(k) != fingerprint.get(k))
            raise DataError(
                f"--resume: the checkpoint at {folder} belongs to a different run (changed: "
                f"{', '.join(changed)}); use the same data and options, or pass --force to start "
                f"over"
            )
        optimizer = load_file(str(folder / "optimizer.safetensors"))
        best_file = folder / "best.safetensors"
        n = int(meta["n_tensors"])
        return TrainState(
            epoch=int(meta["epoch"]),
            model_state=load_file(str(folder / "last.safetensors")),
            optimizer_state={
                "steps": int(meta["steps"]),
                "exp_avg": [optimizer[f"exp_avg.{i}"] for i in range(n)],
                "exp_avg_sq": [optimizer[f"exp_avg_sq.{i}"] for i in range(n)],
            },
            best_state=load_file(str(best_file)) if best_file.exists() else None,
            best_val_loss=float(meta["best_val_loss"]),
            best_epoch=int(meta["best_epoch"]),
            bad_epochs=int(meta["bad_epochs"]),
            history=[EpochStats(**h) for h in meta["history"]],
            torch_rng=optimizer["torch_rng"],
            shuffle_rng=optimizer["shuffle_rng"],
            weight_sum={k.removeprefix("weight_sum."): v for k, v in optimizer.items()
                        if k.startswith("weight_sum.")} or None,
        )
    except (OSError, KeyError, TypeError, ValueError, SafetensorError) as err:
        raise DataError(
            f"--resume: the checkpoint at {folder} is damaged ({err}); pass --force to start over"
        ) from None
