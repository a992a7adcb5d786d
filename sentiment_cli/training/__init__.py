"""Training: the loop, checkpoints and resume, calibration, progress events."""
