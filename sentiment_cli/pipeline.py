"""One bce-train run, top to bottom: check -> read -> features -> split -> fit -> calibrate ->
measure -> save (with the report). Each step is a call into the module that owns it; this file
orders them, holds the output folder's lock, and turns an interruption into a way to resume."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sentiment_cli import distributed, in_memory, interruption, streaming
from sentiment_cli.artifacts.bundle import versions
from sentiment_cli.artifacts.folders import check_target, remove_owned
from sentiment_cli.artifacts.locking import FolderLock
from sentiment_cli.artifacts.record import DataSummary, RunRecord, write_model_folder
from sentiment_cli.checks import check, check_read
from sentiment_cli.config import TrainConfig
from sentiment_cli.device import resolve_device
from sentiment_cli.distributed import World
from sentiment_cli.errors import DataError, Interrupted, SentimentError, TrainingError, disk_full
from sentiment_cli.features import training_matrices
from sentiment_cli.memory import check_training_memory
from sentiment_cli.metrics import split_metrics
from sentiment_cli.options import fingerprint
from sentiment_cli.reporting.report import write_training_report
from sentiment_cli.shards import ShardedRows, Unkept, remove_stale_shards, shard_folder
from sentiment_cli.split import TrainSplit
from sentiment_cli.training import checkpoint as ckpt
from sentiment_cli.training.averaging import AVERAGE_EVERY
from sentiment_cli.training.calibration import calibrate
from sentiment_cli.training.progress import TrainProgress
from sentiment_cli.training.state import TrainResult, TrainState

if TYPE_CHECKING:
    from sentiment_cli.data.reading import Dataset
    from sentiment_cli.training.autotune import Search


def run_training(config: TrainConfig, progress: TrainProgress | None = None,
                 note: Callable[[str], None] = lambda message: None) -> RunRecord | None:
    """Train on ``config.data`` and write the model folder ``config.output``; return the run's
    record. Every option, the output and the device are checked first; the output's lock is
    then held until the model folder is written (one writer per folder), before any reading.

    Under torchrun, every rank trains (:mod:`.distributed`) and rank 0 alone checks, locks and
    writes the output; the other ranks return None."""
    world = distributed.from_environment()
    with contextlib.ExitStack() as held, distributed.joined(world) as world, \
            distributed.peers_watched(world):
        output = config.model_folder
        with world.agreed():  # any rank's error here stops every rank, before any reading
            check(config)
            if config.autotune is not None and world.size > 1:
                raise DataError("--autotune searches in one process: run it without torchrun, "
                                "then train under torchrun with the options it chose")
            config = replace(config, training=replace(config.training, device=(
                distributed.rank_device(world, config.training.device))))
            if config.training.device.startswith("cuda"):
                resolve_device(config.training.device)  # a CUDA request that cannot work fails now
            check_training_memory(config.training, vocab_size=1, n_outputs=1,  # --hidden alone
                                  processes=world.local_size)
            stream = False
            if world.main:  # from the lock on, a signal stops the run where it removes its files
                held.enter_context(interruption.deferred())
                output = _hold_output(config, held)
                interruption.check()
                stream = _streams(config, output, world)
                if stream:  # before any rank makes its shard folder
                    remove_stale_shards(output)
        stream = world.from_main(lambda: stream)
        checkpoints = ckpt.checkpoint_path(output)
        if stream:  # from here on a signal stops the run where its shards can be removed
            held.enter_context(interruption.deferred())
        shards = held.enter_context(shard_folder(output, world)) if stream else None
        record = _train(config, output, checkpoints, progress, note, world, shards)
        if world.main and checkpoints.is_dir():
            remove_owned(checkpoints, "checkpoint")
        # A signal while the model folder was written did not stop it: stop now (a shell's
        # `bce-train ... && next` must not go on after Ctrl-C), with the folder complete.
        interruption.check(f"interrupted while writing {output}; the model folder was "
                           f"completed")
    return record


def _hold_output(config: TrainConfig, held: contextlib.ExitStack) -> Path:
    """Check the output, then lock it for the rest of the run (``held``) and check it again:
    nothing else may write it meanwhile. A checkpoint beside it is resumed or discarded as the
    options say (and resumed after torchrun restarted the job)."""
    output = check_target(config.model_folder, "model", config.force, "--output")
    held.enter_context(FolderLock(output))
    check_target(output, "model", config.force, "--output")  # again, now that we hold it
    ckpt.check_checkpoint_folder(ckpt.checkpoint_path(output), resume=_resuming(config, output),
                                 force=config.force)
    return output


def _streams(config: TrainConfig, output: Path, world: World) -> bool:
    """Whether the run reads its data in chunks (:mod:`.streaming`): as --stream/--no-stream
    say, else as the run it resumes did, else when the file would not fit in memory."""
    if not _resuming(config, output):
        return streaming.wanted(config, processes=world.local_size)
    saved = ckpt.checkpoint_streamed(ckpt.checkpoint_path(output))
    if config.stream is not None and config.stream != saved:
        given, made = ("--stream", "in memory") if config.stream else ("--no-stream", "--stream")
        raise DataError(f"--resume with {given}: the checkpoint was made {made}; leave out "
                        f"{given} to resume it")
    return saved


def _resuming(config: TrainConfig, output: Path) -> bool:
    """--resume, or a job torchrun restarted after a failure, once this job saved an epoch
    (a checkpoint of another job is resumed or discarded only as the options say)."""
    if config.resume:
        return True
    job = distributed.job_identity()
    return (distributed.restarted() and job is not None
            and ckpt.checkpoint_job(ckpt.checkpoint_path(output)) == job)


@dataclass
class _Features:
    split: TrainSplit
    x_train: Any  # CSR matrices over the training rows' vocabulary
    x_val: Any
    vectorizer: dict[str, Any]  # its JSON form: params and terms
    train_rows: int  # over every rank (split.train holds this rank's, streamed under torchrun)


def _train(config: TrainConfig, output: Path, checkpoints: Path, progress: TrainProgress | None,
           note: Callable[[str], None], world: World, shards: Path | None) -> RunRecord | None:
    started = time.perf_counter()
    digests = ckpt.input_digests(ckpt.run_inputs(config))

    streamed = {"stream": True} if shards is not None else {}  # in memory: as ever

    def resumable() -> bool:
        if _resuming(config, output):
            ckpt.check_resumable(checkpoints, {**fingerprint(config), **digests, **streamed})
            return True
        return False

    resuming = world.from_main(resumable)
    features, read_seconds = _features_everywhere(config, note, world, digests, shards,
                                                  progress)
    # What is loaded now (torch, the rows, the counts) lives until the end: Python's collector
    # need not walk it again (about 260,000 objects on SST-2; the plots drew 0.2-0.3 s faster).
    gc.freeze()
    laps = {"read": read_seconds, "vectorize": time.perf_counter() - started - read_seconds}
    x_train, split = features.x_train, features.split
    data, train, val = split.data, split.train, split.val
    check_read(config, data)
    note(f"{features.train_rows} training rows, {0 if val is None else len(val)} validation rows, "
         f"vocabulary of {x_train.shape[1]} terms")
    n_outputs = 1 if train.y.ndim == 1 else train.y.shape[1]
    config, search, resume_with = _autotuned(config, features, progress, note)
    run = ckpt.Checkpoints(checkpoints, {
        **fingerprint(config), **digests, **streamed, "text_column": data.text_column,
        "label_columns": data.label_columns, "train_rows": features.train_rows,
        "vocabulary": ckpt.vocabulary_digest(features.vectorizer["terms"])},
        job=distributed.job_identity())
    resume = world.from_main(
        lambda: run.load(x_train.shape[1], config.training, n_outputs) if resuming else None)
    if resume is not None:
        note(f"resuming after epoch {resume.epoch} from {checkpoints}")
    try:
        with interruption.deferred():  # a signal stops the run at the next check
            result = _fitted(config, features, progress, run, resume, world)
            laps["train"] = time.perf_counter() - started - laps["read"] - laps["vectorize"]
            if result.sent_bytes_per_epoch:
                note(f"each of {world.size} ranks sent {result.sent_bytes_per_epoch / 1e6:.2f} MB "
                     f"per epoch to the others (the model's changes, every {AVERAGE_EVERY} steps)")
            record = _measure_and_write(config, output, features, result, world, note, search)
            if record is None:
                return None  # rank 0 measures and writes
    except Interrupted as err:
        raise run.interrupted(err, resume_with) from None
    except Exception as err:  # a checkpoint or the model folder, written on a full disk
        if disk_full(err):
            raise run.out_of_space(output, resume_with) from None
        raise
    laps["total"] = time.perf_counter() - started
    laps["finish"] = laps["total"] - laps["read"] - laps["vectorize"] - laps["train"]
    record.seconds = laps
    return record


def _fitted(config: TrainConfig, features: _Features, progress: TrainProgress | None,
            run: ckpt.Checkpoints, resume: TrainState | None, world: World) -> TrainResult:
    """``fit``, its errors as the run reports them: a divergence or a lost peer names the epoch
    kept; an error every rank meets (the same data) is said by rank 0 alone."""
    from sentiment_cli.training.loop import TrainingDiverged, fit

    train, val = features.split.train, features.split.val
    try:
        with distributed.peers_watched(world):
            return fit(features.x_train, train.y, features.x_val, None if val is None else val.y,
                       config.training, w_train=train.weights,
                       w_val=None if val is None else val.weights, progress=progress,
                       checkpoint=run.save if world.main else None, resume=resume,
                       world=world, multiclass=features.split.data.multiclass)
    except (TrainingDiverged, distributed.PeerLost) as err:
        if run.last_saved:
            raise TrainingError(f"{err} (epoch {run.last_saved} is kept in {run.folder})") \
                from None
        raise
    except SentimentError as err:
        if world.main or err.every_rank_reports:
            raise
        raise distributed.ReportedByMain(err.exit_code) from None


def _autotuned(config: TrainConfig, features: _Features, progress: TrainProgress | None,
               note: Callable[[str], None]) -> tuple[TrainConfig, Search | None, str]:
    """The run's config with ``--autotune``'s chosen training options, to be trained,
    checkpointed and recorded as if given; the search; and how an interrupted run is resumed
    (--resume refuses --autotune: with the chosen options instead)."""
    if config.autotune is None:
        return config, None, "the same command plus --resume"
    from sentiment_cli.training.autotune import described, searched, tune

    split = features.split
    with interruption.deferred():
        search = tune(features.x_train, split.train, features.x_val, split.val,
                      config.training, config.autotune, progress, note)
    return (replace(config, training=search.chosen, autotune=None), search,
            f"--resume and, instead of --autotune, {described(searched(search.chosen))}")


def _features_everywhere(config: TrainConfig, note: Callable[[str], None], world: World,
                        digests: dict[str, str | None], shards: Path | None,
                        progress: TrainProgress | None) -> tuple[_Features, float]:
    """:func:`_features`, on every rank from its own copy of the data: a rank whose copy
    differs from rank 0's, that cannot read it, or lacks the memory to train on it stops them
    all, before any training step."""
    on_main = world.from_main(lambda: digests)
    with world.agreed():
        differ = [name for name, digest in digests.items()
                  if digest and on_main.get(name) and digest != on_main[name]]
        if differ:
            files = ", ".join("DATA" if n == "data_sha256" else
                              f"--{n.removesuffix('_sha256').replace('_', '-')}" for n in differ)
            raise DataError(f"this node's copy of {files} differs from rank 0's (SHA-256); every "
                            f"node must read the same file")
        features, read_seconds = _features(config, note, world, shards, progress)
        train = features.split.train
        check_training_memory(config.training, features.x_train.shape[1],
                              1 if train.y.ndim == 1 else train.y.shape[1], world.local_size)
    seen = _features_digest(features)
    on_main = world.from_main(lambda: seen)
    with world.agreed():
        if seen != on_main:
            raise DataError("this rank's vocabulary or validation split differs from rank 0's, "
                            "from the same data: give every node the same versions of "
                            "sentiment-cli, scikit-learn and pandas")
    return features, read_seconds


def _features_digest(features: _Features) -> str:
    """What every rank must have computed alike: the vocabulary, the split, the labels."""
    split = features.split
    return ckpt.vocabulary_digest([
        *features.vectorizer["terms"],
        f"train {features.train_rows}", f"val {0 if split.val is None else len(split.val)}",
        *split.data.label_names])


def _features(config: TrainConfig, note: Callable[[str], None], world: World,
              shards: Path | None, progress: TrainProgress | None) -> tuple[_Features, float]:
    """Read the rows and count every text's terms once (:mod:`.in_memory`, or in shards by
    :mod:`.streaming`), split off the validation rows and fit the vocabulary on the training
    rows. Also returns the seconds spent reading."""
    started = time.perf_counter()
    if shards is not None:  # too large for memory, or --stream
        rows = streaming.stream_rows(config, shards, note, progress, world)
        split = TrainSplit(rows.data, rows.train, rows.val, None, None)
        return _Features(split, rows.x_train, rows.x_val, rows.vectorizer, rows.train_rows), \
            time.perf_counter() - started
    split, counts, read_seconds = in_memory.read_and_split(config, note, world, progress)
    x_train, x_val, vectorizer = training_matrices(counts, config.vectorizer, split.train_rows,
                                                   split.val_rows)
    return _Features(split, x_train, x_val, vectorizer, len(split.train)), read_seconds


def _measure_and_write(config: TrainConfig, output: Path, features: _Features,
                       result: TrainResult, world: World, note: Callable[[str], None],
                       search: Search | None = None) -> RunRecord | None:
    """Measure the trained model and write the model folder, on rank 0: its record (None on
    the other ranks, once they helped score the training rows)."""
    scored = _training_logits(features, result, world)
    if scored is None:
        return None
    interruption.check()
    record, shown, logits = _measure(config, features, result, world, scored)
    record.autotune = search
    interruption.check()  # the last moment: the model folder is written whole
    terms = features.vectorizer["terms"]
    report = (lambda folder: write_training_report(folder, record, shown, logits, result.model,
                                                   terms)) if config.report else None
    for message in write_model_folder(output, record, result.model, terms, report):
        note(message)
    return record


def _training_logits(features: _Features, result: TrainResult,
                     world: World) -> tuple[np.ndarray, np.ndarray] | None:
    """The training rows' targets and logits, on rank 0 (None on the others). Rows in shards
    (each rank's own) are scored a shard at a time by each rank and gathered on rank 0."""
    from sentiment_cli.model.module import predict_logits

    x, y = features.x_train, features.split.train.y
    if isinstance(x, ShardedRows):
        logits = np.concatenate([predict_logits(result.model, block) for block, _ in x.blocks()])
        parts = world.gather((y, logits))
        if parts is None:
            return None
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    return (y, predict_logits(result.model, x)) if world.main else None


def _measure(config: TrainConfig, features: _Features, result: TrainResult, world: World,
             scored: tuple[np.ndarray, np.ndarray]) -> tuple[RunRecord, Dataset, np.ndarray]:
    """Calibrate on the validation rows and measure both splits (``scored``: the training
    rows' targets and logits): the run's record, and the rows the report shows (validation,
    else training) with their logits."""
    from sentiment_cli.model.module import predict_logits

    data, train, val = features.split.data, features.split.train, features.split.val
    train_y, train_logits = scored
    val_logits = None if features.x_val is None else predict_logits(result.model, features.x_val)
    n_outputs = train_logits.shape[1]
    temperature, thresholds = calibrate(config, val_logits, None if val is None else val.y,
                                        n_outputs, data.multiclass)
    train_metrics = {**split_metrics(train_y, train_logits, temperature, thresholds,
                                     data.label_names, data.task), "loss": result.train_loss}
    val_metrics = None if val is None or val_logits is None else {
        **split_metrics(val.y, val_logits, temperature, thresholds, data.label_names,
                        data.task),
        "loss": result.val_loss}
    record = RunRecord(
        config=config,
        data=DataSummary(data.source, data.text_column, data.label_columns, data.label_names,
                         data.multilabel, len(data) + data.dropped_rows, data.dropped_rows,
                         features.train_rows, 0 if val is None else len(val),
                         data.class_counts, data.multiclass),
        vocabulary=features.x_train.shape[1], model=result.model.config.to_dict(),
        vectorizer=features.vectorizer["params"], history=result.history,
        best_epoch=result.best_epoch, averaged_epochs=result.averaged_epochs,
        stopped_early=result.stopped_early, device=result.device,
        pos_weight=result.pos_weight, temperature=temperature, thresholds=thresholds,
        train_metrics=train_metrics, val_metrics=val_metrics, versions=versions(),
        world_size=world.size, backend=world.backend,
        sent_bytes_per_epoch=result.sent_bytes_per_epoch)
    if val is None or val_logits is None:  # every rank's training rows, in the order scored
        return record, replace(train, texts=Unkept(len(train_y)), y=train_y) \
            if len(train_y) != len(train) else train, train_logits
    return record, val, val_logits
