"""``python -m sentiment_cli train|predict|eval ...``: the same commands as bce-train etc."""

from __future__ import annotations

import sys

from sentiment_cli import launch

COMMANDS = {"train": launch.train, "predict": launch.predict, "eval": launch.evaluate,
            "info": launch.info}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.stderr.write(
            "usage: python -m sentiment_cli {train,predict,eval,info} [OPTIONS] ...\n"
            "       (the same as bce-train, bce-predict, bce-eval, bce-info; add --help to "
            "any)\n"
        )
        raise SystemExit(0 if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help") else 2)
    command = sys.argv.pop(1)
    sys.argv[0] = f"bce-{command}"
    COMMANDS[command]()


if __name__ == "__main__":
    main()
