"""sentiment-cli: train bag-of-words text classifiers under BCEWithLogitsLoss from the shell."""

__version__ = "0.1.0"
