"""Timings of built objects: embeddings of several networks in alternation, a data pipeline,
and a reference script run in its own process with its progress shown."""

import json
import statistics
import subprocess
import time

from ddag.errors import ConfigError
from ddag.models.ddag import VISIBLE, EmbeddingNet
from ddag.utils.logging import get_logger

log = get_logger(__name__)


def bench_inference(networks: dict, images, repeats: int, warmup: int) -> dict:
    """Images/s of each network's embedding, timed in alternation so machine drift hits all."""
    embeds = {}
    for name, network in networks.items():
        network.set_train(False)
        embeds[name] = EmbeddingNet(network, VISIBLE)
        for _ in range(max(1, warmup)):
            embeds[name](images)[0].asnumpy()
    times = {name: [] for name in embeds}
    for _ in range(repeats):
        for name, embed in embeds.items():
            start = time.perf_counter()
            embed(images)[0].asnumpy()
            times[name].append(time.perf_counter() - start)
    return {name: len(images) / statistics.median(t) for name, t in times.items()}


def bench_data(pipeline, steps: int) -> dict:
    """Images/s of a training pipeline alone, over `steps` batches after the first."""
    iterator = pipeline.create_tuple_iterator(num_epochs=1, output_numpy=True)
    next(iterator)
    start, count = time.perf_counter(), 0
    for batch in iterator:
        count += 2 * len(batch[0])
        if count >= steps * 2 * len(batch[0]):
            break
    return {"images_per_s": count / (time.perf_counter() - start)}


def run_reference(command: list, python: str) -> dict:
    """The JSON result (last stdout line) of a reference script, its progress lines (stderr)
    logged as they come: at the paper batch a round runs for minutes."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
    )
    tail = []
    for line in process.stderr:  # the script's own lines, and torch's warnings
        tail = (tail + [line.rstrip()])[-40:]
        if line.strip():
            log.info("    reference: %s", line.rstrip())
    output = process.stdout.read()
    if process.wait() != 0 or not output.strip():
        raise ConfigError(
            f"the reference step failed under {python} (it needs torch and numpy):\n"
            + "\n".join(tail)[-2000:]
        )
    return json.loads(output.strip().splitlines()[-1])
