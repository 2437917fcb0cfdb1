"""Deterministic weights for a state-dict manifest, made the same way by the golden scripts
(under torch, for the authors' network) and by the tests (for ddag's): numpy only.

Each entry draws from its own generator seeded by (seed, crc32 of its name), so the two sides
agree whatever order they visit the names in. Convolution and linear weights are He-normal
(std sqrt(2 / fan_in)); norm scales 1 + N(0, 0.1); shifts and biases N(0, 0.1); running means
N(0, 0.1); running variances U(0.5, 1.5); integer counters 0.
"""

import zlib

import numpy as np


def synthetic_state(manifest, seed: int = 0) -> dict:
    """{name: array} for a manifest of {"name", "shape", "dtype"} entries (PyTorch names)."""
    state = {}
    for entry in manifest:
        name, shape = entry["name"], tuple(entry["shape"])
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        leaf = name.rsplit(".", 1)[-1]
        if not entry["dtype"].startswith("float"):
            state[name] = np.zeros(shape, dtype=np.int64)
            continue
        if leaf == "running_var":
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) >= 2:
            value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
        elif leaf == "weight":
            value = 1.0 + rng.normal(0.0, 0.1, shape)
        else:
            value = rng.normal(0.0, 0.1, shape)
        state[name] = value.astype(np.float32)
    return state
