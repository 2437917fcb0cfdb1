"""Timings of built objects: embeddings of several networks in alternation, and a data pipeline."""

import statistics
import time

from ddag.models.ddag import VISIBLE, EmbeddingNet


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
