"""sentiment-cli: train bag-of-words text classifiers under BCEWithLogitsLoss from the shell,
or from Python::

    from sentiment_cli import train, load_model

    train("reviews.csv", "models/reviews", epochs=10)
    model = load_model("models/reviews")
    model.predict(["I loved it", "never again"])
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_model", "train"]


def train(*args: Any, **kwargs: Any) -> Any:
    """Train a model as bce-train would; see :func:`sentiment_cli.api.train`."""
    from sentiment_cli.api import train as _train

    return _train(*args, **kwargs)


def load_model(*args: Any, **kwargs: Any) -> Any:
    """Load a model folder; see :func:`sentiment_cli.api.load_model`."""
    from sentiment_cli.api import load_model as _load_model

    return _load_model(*args, **kwargs)
