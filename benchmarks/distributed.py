"""SST-2 training in one process and under torchrun with N processes, in alternating rounds.

    python benchmarks/distributed.py [--nproc 2] [--pairs 3] [--hidden none] [--out FILE.md]
                                     [--options "--stream"] [--repeat 10]

Each round trains with ``bce-train`` and with ``torchrun --standalone --nproc-per-node N
--no-python bce-train`` (same options and seed), the first one rotating, and records the wall
time and peak RSS of the whole command (measured from outside, as in benchmarks/run.py; under
torchrun the RSS is the largest process's), the training phase's seconds and the validation
accuracy from ``--json``. After the rounds, each model is evaluated on the dev file.
``--options`` adds options to both (``--stream``: each rank keeps its own share of the rows).
``--repeat K`` trains on DATA's rows repeated K times (written to a scratch file). The table
also gives the megabytes each rank sent per epoch (the model's changes, ``sent_mb_per_epoch``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import BIN, checked, run_measured  # noqa: E402


def _train(command: list[str], data: Path, output: Path, hidden: str, options: list[str],
           log: Path) -> dict[str, float]:
    result = checked(run_measured(
        [*command, data, "-o", output, "--force", "--quiet", "--seed", "0", "--json",
         "--hidden", hidden, *options], stdout=log), " ".join(map(str, command)))
    summary = json.loads(log.read_text(encoding="utf-8").splitlines()[-1])
    return {"wall": result.wall, "rss": result.peak_rss_mb, "train": summary["seconds"]["train"],
            "val_acc": summary["validation"]["accuracy"], "epochs": summary["epochs_run"],
            "sent_mb": summary.get("sent_mb_per_epoch", 0.0)}


def _repeated(data: Path, times: int, folder: Path) -> Path:
    """DATA's rows ``times`` over, under one header, in ``folder``."""
    header, *rows = data.read_text(encoding="utf-8").splitlines(keepends=True)
    out = folder / f"{data.stem}_x{times}.csv"
    with out.open("w", encoding="utf-8") as file:
        file.write(header)
        for _ in range(times):
            file.writelines(rows)
    return out


def main() -> None:
    shared = HERE.parent.parent / "shared" / "data"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=shared / "sst2_train.csv")
    parser.add_argument("--dev", type=Path, default=shared / "sst2_dev.csv")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--hidden", default="none", help="--hidden for both (none: linear)")
    parser.add_argument("--options", default="", help="more bce-train options for both")
    parser.add_argument("--repeat", type=int, default=1, help="DATA's rows repeated K times")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: results/distributed.md (with --stream: "
                             "distributed_stream.md)")
    args = parser.parse_args()
    options = args.options.split()
    if args.out is None:
        args.out = HERE / "results" / (
            "distributed_stream.md" if "--stream" in options else "distributed.md")
    started = time.perf_counter()
    systems = {
        "1 process": [BIN / "bce-train"],
        f"{args.nproc} processes": [BIN / "torchrun", "--standalone", "--nproc-per-node",
                                    str(args.nproc), "--no-python", BIN / "bce-train"],
    }
    names = list(systems)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        data = args.data if args.repeat == 1 else _repeated(args.data, args.repeat, folder)
        for i in range(args.pairs):
            order = names[i % 2:] + names[: i % 2]
            for name in order:
                figures = _train(systems[name], data, folder / name.replace(" ", "_"),
                                 args.hidden, options, folder / "out.json")
                rows.append({"round": i + 1, "system": name, "first": order[0], **figures})
                print(json.dumps(rows[-1]), flush=True)
        dev = {}
        for name in names:
            checked(run_measured(
                [BIN / "bce-eval", folder / name.replace(" ", "_"), args.dev, "--json"],
                stdout=folder / "eval.json"), "bce-eval")
            dev[name] = json.loads((folder / "eval.json").read_text())["accuracy"]
    lines = [
        f"# SST-2 training: one process against torchrun with {args.nproc} processes", "",
        f"Command: `python benchmarks/distributed.py {' '.join(sys.argv[1:])}` "
        f"({time.perf_counter() - started:.0f} s), on {data.name} with `--seed 0 "
        f"--hidden {args.hidden}{' ' + args.options if options else ''}`, gloo on CPU. "
        "Wall and peak RSS of the whole command; "
        "`train s` is the training phase alone (the epochs, from `--json`).", "",
        "| round | first | system | wall s | train s | peak RSS MiB | epochs | val acc | "
        "MB sent per epoch |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['round']} | {r['first']} | {r['system']} | {r['wall']:.2f} | "
                     f"{r['train']:.2f} | {r['rss']:.0f} | {r['epochs']} | {r['val_acc']:.4f} | "
                     f"{r['sent_mb']:.2f} |")
    lines += ["", "| system | median wall s | median train s | dev accuracy |",
              "|---|---:|---:|---:|"]
    for name in names:
        mine = [r for r in rows if r["system"] == name]
        lines.append(f"| {name} | {statistics.median(r['wall'] for r in mine):.2f} | "
                     f"{statistics.median(r['train'] for r in mine):.2f} | {dev[name]:.4f} |")
    text = "\n".join(lines) + "\n"
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
