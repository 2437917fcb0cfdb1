"""Benchmarks' own room: what task=bench measures, apart from the configuration that feeds it.

`timing.py` times callables with progress lines; `kernels.py` holds the micro-benchmarks that
need no configuration (convolution against matmul, SYSU/RegDB-sized evaluations); `measure.py`
times built objects (embeddings in alternation, a data pipeline); `report.py` prints the
results; `reference_step.py` is a self-contained torch script (nothing of ddag) that task=bench
starts in a side environment for side-by-side speed ratios. None of it is part of training.
"""
