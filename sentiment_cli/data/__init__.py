"""Reading labeled files: CSV/TSV/line files, column and label detection."""
