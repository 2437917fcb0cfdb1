"""Step time of the PyTorch reference DDAG (mangye16/DDAG), for side-by-side speed ratios.

Self-contained (numpy and torch only, nothing of ddag), so it runs under any Python that has
torch: `task=bench task.reference=<checkout>` starts it as
`<task.reference_python> reference_step.py --ref <checkout> ...` between its own timing
blocks and reads one JSON line. It builds the reference `embed_net` as `train_ddag.py --wpa
--graph --part 3` does, with random weights (the ImageNet download of `resnet50(pretrained=
True)` is switched off), and times forward + id + triplet + part + w_G * graph losses +
backward + SGD on P identities x K instances per modality.
"""

import argparse
import json
import os
import sys
import time
import types
import warnings


def _import_reference(checkout: str):
    """(torch, model_main, loss) of the checkout, patched to build without downloads."""
    import torch

    if "torchvision" not in sys.modules:  # model_main imports torchvision.models, never uses it
        try:
            import torchvision  # noqa: F401
        except ImportError:
            stand_in = types.ModuleType("torchvision")
            stand_in.models = types.ModuleType("torchvision.models")
            sys.modules.update({"torchvision": stand_in, "torchvision.models": stand_in.models})
    sys.path.insert(0, checkout)
    import loss
    import model_main
    import resnet

    def no_download(pretrained=True, **kwargs):
        return resnet.resnet50(pretrained=False, **kwargs)

    model_main.resnet50 = no_download
    _accept_old_addmm(torch)
    return torch, model_main, loss


def _accept_old_addmm(torch) -> None:
    """loss.py calls `addmm_(beta, alpha, m1, m2)`, a form torch 2 no longer takes."""
    try:
        with warnings.catch_warnings():  # the probe's own deprecation warning says nothing new
            warnings.simplefilter("ignore")
            torch.zeros(1, 1).addmm_(1, -2, torch.ones(1, 1), torch.ones(1, 1))
        return
    except (TypeError, RuntimeError):
        pass
    new_form = torch.Tensor.addmm_

    def addmm_(self, *args, **kwargs):
        if len(args) == 4 and not torch.is_tensor(args[0]):
            beta, alpha, first, second = args
            return new_form(self, first, second, beta=beta, alpha=alpha)
        return new_form(self, *args, **kwargs)

    torch.Tensor.addmm_ = addmm_


def time_reference_step(
    checkout, ids, instances, height, width, steps, warmup, threads, infer_batch=32
):
    """Per-step seconds of the reference training step (after `warmup` untimed steps), and
    the images/s of its test-time forward (one modality, `infer_batch` images)."""
    torch, model_main, loss = _import_reference(os.path.abspath(checkout))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    functional = torch.nn.functional
    net = model_main.embed_net(512, 206, drop=0.2, part=3, arch="resnet50", wpa=True).train()
    pairs = ids * instances
    labels = torch.arange(ids).repeat_interleave(instances).repeat(2)
    one_hot = torch.eye(ids)[labels]
    adjacency = one_hot @ one_hot.t() + torch.eye(2 * pairs)
    adjacency = adjacency / adjacency.pow(2).sum(1, keepdim=True).sqrt()
    visible = torch.randn(pairs, 3, height, width)
    thermal = torch.randn(pairs, 3, height, width)
    triplet = loss.OriTripletLoss(batch_size=pairs, margin=0.3)
    optimizer = torch.optim.SGD(
        net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True
    )

    def step():
        feat, logits, logits_att, graph = net(visible, thermal, adjacency)
        total = (
            functional.cross_entropy(logits, labels)
            + triplet(feat, labels)[0]
            + functional.cross_entropy(logits_att, labels)
            + 0.3 * functional.nll_loss(graph, labels)
        )
        optimizer.zero_grad()
        total.backward()
        optimizer.step()

    times = timed_calls(step, steps, warmup)
    net.eval()
    images = torch.randn(infer_batch, 3, height, width)

    def forward():  # the reference test call: visible modality
        net(images, images, 0, modal=1)

    return {
        "torch": torch.__version__,
        "threads": threads,
        "step_s": times,
        "infer_images_per_s": timed_inference(torch, forward, infer_batch, steps, warmup),
    }


PROGRESS_SECONDS = 10.0


def timed_calls(call, steps: int, warmup: int, label: str = "step") -> list:
    """Seconds of each of `steps` calls of `call()` after `warmup` untimed ones, with a progress
    line on stderr at most every PROGRESS_SECONDS (ddag's bench shows them as they come)."""
    times, last = [], time.perf_counter()
    for index in range(warmup + steps):
        start = time.perf_counter()
        call()
        if index >= warmup:
            times.append(time.perf_counter() - start)
        if time.perf_counter() - last > PROGRESS_SECONDS or index + 1 == warmup + steps:
            last = time.perf_counter()
            done = "warm-up" if index < warmup else "timed"
            sys.stderr.write(
                f"{label} {index + 1}/{warmup + steps} ({done}), "
                f"{time.perf_counter() - start:.2f} s\n"
            )
            sys.stderr.flush()
    return times


def timed_inference(torch, forward, count: int, steps: int, warmup: int) -> float:
    """Images/s of `forward()` over `count` images: the median of `steps` calls after
    `warmup` untimed ones, without gradients."""
    with torch.no_grad():
        inference = sorted(timed_calls(forward, steps, warmup, "inference call"))
    return count / inference[len(inference) // 2]


def time_reference_inference(checkout, height, width, steps, warmup, threads, batch) -> dict:
    """Seconds of each of `steps` test-time forwards (visible modality, `batch` images, eager
    mode, no gradients) of the reference network after `warmup` untimed ones."""
    torch, model_main, _ = _import_reference(os.path.abspath(checkout))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = model_main.embed_net(512, 206, drop=0.2, part=3, arch="resnet50", wpa=True).eval()
    images = torch.randn(batch, 3, height, width)
    with torch.no_grad():
        times = timed_calls(lambda: net(images, images, 0, modal=1), steps, warmup, "inference")
    return {"torch": torch.__version__, "threads": threads, "infer_s": times}


def step_arguments(description: str, reference: str, height: int) -> argparse.ArgumentParser:
    """The options every reference step script takes (the DEEN script shares them)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--ref", required=True, help=reference)
    parser.add_argument("--ids", type=int, default=2)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--height", type=int, default=height)
    parser.add_argument("--width", type=int, default=144)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    return parser


def shape_arguments(args) -> tuple:
    """(ids, instances, height, width, steps, warmup, threads) of parsed step arguments."""
    return args.ids, args.instances, args.height, args.width, args.steps, args.warmup, args.threads


def main(argv=None) -> None:
    parser = step_arguments(__doc__.split("\n")[0], "checkout of mangye16/DDAG", 288)
    parser.add_argument("--infer-batch", type=int, default=32)
    parser.add_argument("--infer-only", action="store_true", help="time inference alone")
    args = parser.parse_args(argv)
    if args.infer_only:
        _, _, height, width, steps, warmup, threads = shape_arguments(args)
        result = time_reference_inference(
            args.ref, height, width, steps, warmup, threads, args.infer_batch
        )
    else:
        result = time_reference_step(args.ref, *shape_arguments(args), args.infer_batch)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
