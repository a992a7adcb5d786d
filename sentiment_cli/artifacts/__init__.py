"""The model folder: written whole and locked, read back verified."""
