"""Benchmarks' own room: timing helpers and the PyTorch reference's step timer.

`timing.py` times callables with progress lines (used by task=bench); `reference_step.py` is a
self-contained torch script (nothing of ddag) that task=bench starts in a side environment for
side-by-side speed ratios. Neither is part of training.
"""
