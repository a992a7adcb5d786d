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

from sentiment_cli.artifacts.atomic import FolderChanged, FolderReader, publish
from sentiment_cli.artifacts.bundle import save_tensors, write_json
from sentiment_cli.artifacts.folders import file_digest, owned_files, tool_folder_kind
from sentiment_cli.artifacts.schema import ConfigProblem, integer, number
from sentiment_cli.config import TrainConfig, TrainingConfig, flag
from sentiment_cli.errors import DataError, Interrupted, TrainingError
from sentiment_cli.model.architecture import ModelConfig, parameter_shapes
from sentiment_cli.training.progress import EpochStats
from sentiment_cli.training.state import TrainState

if TYPE_CHECKING:  # torch is imported by the training step, not by importing this module
    import torch

STATE_FILE = "state.json"
CHECKPOINT_FORMAT = "sentiment-cli-checkpoint"
_TENSOR_FILES = ("last.safetensors", "best.safetensors", "optimizer.safetensors")


def checkpoint_path(output: Path) -> Path:
    return output.with_name(output.name + ".checkpoint")


def vocabulary_digest(terms: list[str]) -> str:
    return hashlib.sha256("\n".join(terms).encode("utf-8")).hexdigest()


def check_checkpoint_folder(checkpoints: Path, resume: bool, force: bool) -> None:
    """Under the lock: an earlier run's checkpoint is resumed, or discarded with --force, and
    a folder in its place that bce-train did not write is never touched."""
    if checkpoints.is_symlink():
        raise DataError(f"{checkpoints} is a symbolic link; bce-train keeps a model's checkpoint "
                        f"in a folder of its own beside the model: move the link away")
    if not checkpoints.exists() or (checkpoints.is_dir() and not any(checkpoints.iterdir())):
        if resume:
            raise DataError(f"--resume: no checkpoint at {checkpoints}; train without --resume")
        return
    if not checkpoints.is_dir() or owned_files(checkpoints, "checkpoint") is None:
        kind = tool_folder_kind(checkpoints) if checkpoints.is_dir() else None
        what = (f"a {kind} folder" if kind not in (None, "checkpoint")
                else "something bce-train did not write")
        raise DataError(
            f"{checkpoints} is where bce-train keeps this model's checkpoint, but it holds "
            f"{what}; move it away or choose another --output")
    if not (resume or force):
        raise DataError(
            f"{checkpoints} holds the checkpoint of an interrupted run: pass --resume to continue "
            f"it, or --force to start over"
        )


def input_digests(inputs: dict[str, Path | None]) -> dict[str, str | None]:
    """SHA-256 of every input file (``NAME_sha256``), so --resume refuses a file whose content
    changed."""
    digests: dict[str, str | None] = {}
    for name, path in inputs.items():
        try:
            digests[f"{name}_sha256"] = None if path is None else file_digest(path)[1]
        except OSError:  # reading the data says what is wrong with it
            digests[f"{name}_sha256"] = None
    return digests


def save_checkpoint(folder: Path, state: TrainState, fingerprint: dict[str, Any],
                    job: str | None = None) -> None:
    def fill(staging: Path) -> None:
        save_tensors(_contiguous(state.model_state), staging / "last.safetensors")
        if state.best_state is not None:
            save_tensors(_contiguous(state.best_state), staging / "best.safetensors")
        optimizer = state.optimizer_state
        tensors = {f"exp_avg.{i}": t for i, t in enumerate(optimizer["exp_avg"])}
        tensors |= {f"exp_avg_sq.{i}": t for i, t in enumerate(optimizer["exp_avg_sq"])}
        tensors |= {"torch_rng": state.torch_rng, "shuffle_rng": state.shuffle_rng}
        tensors |= {f"weight_sum.{k}": v for k, v in (state.weight_sum or {}).items()}
        save_tensors(_contiguous(tensors), staging / "optimizer.safetensors")
        write_json(staging / STATE_FILE, {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": fingerprint,
            "epoch": state.epoch,
            "steps": optimizer["steps"],
            "adam_eps": optimizer["eps"],
            "n_tensors": len(optimizer["exp_avg"]),
            "best_val_loss": state.best_val_loss,
            "best_epoch": state.best_epoch,
            "bad_epochs": state.bad_epochs,
            "history": [asdict(h) for h in state.history],
            "job": job,  # the torchrun job that wrote it (distributed.job_identity), or None
        })

    publish(folder, fill, "checkpoint", replace=True)


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


def _changed_keys(saved: Any, fingerprint: dict[str, Any]) -> list[str]:
    """What differs, as the command line names it, with the values where they are short:
    ``--lr 0.01 -> 0.5``; a file's digest as its content."""
    saved = saved if isinstance(saved, dict) else {}
    changed = []
    for key in sorted(k for k in fingerprint if saved.get(k) != fingerprint[k]):
        before, now = saved.get(key, "(none)"), fingerprint[key]
        shown = [json.dumps(v) if not isinstance(v, str) else v for v in (before, now)]
        if key.endswith("_sha256"):
            changed.append(f"the content of {flag(key.removesuffix('_sha256'))}")
        else:
            short = all(len(v) <= 40 for v in shown)
            changed.append(f"{flag(key)} {shown[0]} -> {shown[1]}" if short else flag(key))
    return changed


def _different_run(folder: Path, changed: list[str]) -> DataError:
    return DataError(
        f"--resume: the checkpoint at {folder} belongs to a different run (changed: "
        f"{', '.join(changed)}); use the same data and options, or pass --force to start over"
    )


def _read_state(reader: FolderReader, folder: Path) -> dict[str, Any]:
    if not reader.exists(STATE_FILE):
        raise DataError(f"--resume: no checkpoint at {folder}; train without --resume")
    meta = reader.read_json(STATE_FILE)
    if not isinstance(meta, dict):
        raise FolderChanged(f"{STATE_FILE} is not an object")
    return meta


def _state_field(folder: Path, key: str) -> Any:
    """A field of the checkpoint in ``folder`` (None: no checkpoint, or an unreadable one)."""
    try:
        with FolderReader(folder) as reader:
            return _read_state(reader, folder).get(key) if reader.exists(STATE_FILE) else None
    except (OSError, FolderChanged, DataError):
        return None


def checkpoint_job(folder: Path) -> str | None:
    """The torchrun job that wrote the checkpoint in ``folder`` (None: none, or unreadable)."""
    job = _state_field(folder, "job")
    return job if isinstance(job, str) else None


def checkpoint_streamed(folder: Path) -> bool:
    """Whether the checkpoint in ``folder`` was made by a run with --stream."""
    saved = _state_field(folder, "fingerprint")
    return isinstance(saved, dict) and saved.get("stream") is True


def checkpoint_epoch(folder: Path) -> int | None:
    """The epoch the checkpoint in ``folder`` saved last (None: none, or unreadable)."""
    epoch = _state_field(folder, "epoch")
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch > 0 else None


def check_resumable(folder: Path, partial: dict[str, Any]) -> None:
    """Before any data is read: the checkpoint's run had these options and input digests."""
    try:
        with FolderReader(folder) as reader:
            saved = _read_state(reader, folder).get("fingerprint")
    except (OSError, FolderChanged) as err:
        raise DataError(f"--resume: the checkpoint at {folder} is damaged ({err}); pass "
                        f"--force to start over") from None
    changed = _changed_keys(saved, partial)
    if changed:
        raise _different_run(folder, changed)


def _epoch_stats(row: Any, epoch: int) -> EpochStats:
    if not isinstance(row, dict) or set(row) != set(EpochStats.__dataclass_fields__):
        raise ConfigProblem(f"history entry {epoch} is not an epoch's figures")
    if integer(row["epoch"], "history epoch", epoch, epoch) != epoch:
        raise ConfigProblem("history's epochs are not 1, 2, ...")
    figures = {k: None if row[k] is None and k.startswith("val_")
               else number(row[k], f"history {k}", 0.0, 1e300)
               for k in ("train_loss", "val_loss", "train_acc", "val_acc", "seconds")}
    return EpochStats(epoch=epoch, **figures)  # type: ignore[arg-type]


def _checked_state(meta: dict[str, Any], tensors: dict[str, dict[str, torch.Tensor]],
                   shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """state.json's numbers and the tensors, checked against each other and against the model
    the options describe (``shapes``); ConfigProblem, KeyError or ValueError otherwise."""
    import torch

    epoch = integer(meta["epoch"], "epoch", 1, 10**7)
    checked = {
        "epoch": epoch,
        "steps": integer(meta["steps"], "steps", 1, 2**62),
        # Checkpoints written before it was recorded were all made with Adam's default.
        "adam_eps": number(meta.get("adam_eps", 1e-8), "adam_eps", 1e-12, 1.0),
        "best_val_loss": number(meta["best_val_loss"], "best_val_loss", 0.0, 1e300),
        "best_epoch": integer(meta["best_epoch"], "best_epoch", 0, epoch),
        "bad_epochs": integer(meta["bad_epochs"], "bad_epochs", 0, epoch),
    }
    history = meta["history"]
    if not isinstance(history, list) or len(history) != epoch:
        raise ConfigProblem(f"history must list the {epoch} epochs run")
    checked["history"] = [_epoch_stats(h, i) for i, h in enumerate(history, start=1)]
    n = integer(meta["n_tensors"], "n_tensors", len(shapes), len(shapes))
    optimizer = tensors["optimizer.safetensors"]
    expected = sorted(shapes.values())  # the optimizer's order is the module's, not by name
    for name in ("last.safetensors", "best.safetensors"):
        state = tensors.get(name)
        if state is not None and {k: tuple(v.shape) for k, v in state.items()} != shapes:
            raise ConfigProblem(f"{name} does not hold this model's tensors")
    for moment in ("exp_avg", "exp_avg_sq"):
        if sorted(tuple(optimizer[f"{moment}.{i}"].shape) for i in range(n)) != expected:
            raise ConfigProblem(f"the optimizer's {moment} does not fit this model")
    size = torch.get_rng_state().numel()
    for rng in ("torch_rng", "shuffle_rng"):
        if optimizer[rng].dtype != torch.uint8 or optimizer[rng].numel() != size:
            raise ConfigProblem(f"{rng} is not a random generator's state")
    return checked


def load_checkpoint(folder: Path, fingerprint: dict[str, Any],
                    shapes: dict[str, tuple[int, ...]]) -> TrainState:
    """Read a checkpoint written by the same job for a model of these tensor ``shapes``;
    anything else is a clear error."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        with FolderReader(folder) as reader:
            meta = _read_state(reader, folder)
            changed = _changed_keys(meta.get("fingerprint"), fingerprint)
            if changed:
                raise _different_run(folder, changed)
            tensors = {name: load(reader.read(name, reader.size(name)))
                       for name in _TENSOR_FILES if reader.exists(name)}
        checked = _checked_state(meta, tensors, shapes)
        optimizer = tensors["optimizer.safetensors"]
        n = len(shapes)
        return TrainState(
            epoch=checked["epoch"],
            model_state=tensors["last.safetensors"],
            optimizer_state={
                "steps": checked["steps"],
                "eps": checked["adam_eps"],
                "exp_avg": [optimizer[f"exp_avg.{i}"] for i in range(n)],
                "exp_avg_sq": [optimizer[f"exp_avg_sq.{i}"] for i in range(n)],
            },
            best_state=tensors.get("best.safetensors"),
            best_val_loss=checked["best_val_loss"],
            best_epoch=checked["best_epoch"],
            bad_epochs=checked["bad_epochs"],
            history=checked["history"],
            torch_rng=optimizer["torch_rng"],
            shuffle_rng=optimizer["shuffle_rng"],
            weight_sum={k.removeprefix("weight_sum."): v for k, v in optimizer.items()
                        if k.startswith("weight_sum.")} or None,
        )
    except (OSError, KeyError, TypeError, ValueError, SafetensorError, FolderChanged) as err:
        raise DataError(
            f"--resume: the checkpoint at {folder} is damaged ({err}); pass --force to start over"
        ) from None


def run_inputs(config: TrainConfig) -> dict[str, Path | None]:
    """The files a run reads, by the option that names them."""
    if config.line_files is not None:
        return {"positive_lines": config.line_files[0], "negative_lines": config.line_files[1]}
    return {"data": config.data_path, "val_data": config.val_data}


class Checkpoints:
    """The checkpoints of one run in ``folder``: each epoch saved under ``fingerprint`` (what
    must not change before a --resume), the last one loaded back for it."""

    def __init__(self, folder: Path, fingerprint: dict[str, Any], job: str | None = None) -> None:
        self.folder, self.fingerprint, self.job = folder, fingerprint, job
        self.last_saved = 0  # the epoch saved last (or resumed from), 0 for none

    def load(self, vocab_size: int, training: TrainingConfig, n_outputs: int) -> TrainState:
        shapes = parameter_shapes(ModelConfig(vocab_size, list(training.hidden),
                                              training.dropout, n_outputs))
        state = load_checkpoint(self.folder, self.fingerprint, shapes)
        self.last_saved = state.epoch
        return state

    def save(self, state: TrainState) -> None:
        save_checkpoint(self.folder, state, self.fingerprint, self.job)
        self.last_saved = state.epoch

    def out_of_space(self, output: Path,
                     resume_with: str = "the same command plus --resume") -> TrainingError:
        """A full disk while saving a checkpoint or writing ``output``, as the user should
        read it: what is kept (both are written whole or not at all) and how to go on."""
        kept = (f"epoch {self.last_saved} is kept in {self.folder}: free some space, then "
                f"continue with {resume_with}" if self.last_saved else
                "no epoch was saved: free some space, then run the command again")
        return TrainingError(f"no space left on the disk while writing {output} or its "
                             f"checkpoint; {output} is as it was before this run, {kept}")

    def interrupted(self, err: Interrupted,
                    resume_with: str = "the same command plus --resume") -> Interrupted:
        """The interruption as the user should read it: how to resume (``resume_with``), or
        that this run kept nothing (an earlier run's checkpoint, which --force replaces only
        once this run saves an epoch, is still there)."""
        if self.last_saved:
            return Interrupted(err.signum, f"interrupted; epoch {self.last_saved} is saved in "
                               f"{self.folder}: continue with {resume_with}")
        earlier = checkpoint_epoch(self.folder)
        if earlier is None:
            return Interrupted(err.signum, "interrupted before the first epoch ended; nothing "
                               "was saved")
        return Interrupted(err.signum, f"interrupted before the first epoch ended; this run "
                           f"saved nothing, and {self.folder} still holds the checkpoint of an "
                           f"earlier run (epoch {earlier}): --resume with that run's options "
                           f"continues it")
