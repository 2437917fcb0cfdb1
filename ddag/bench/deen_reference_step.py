"""Step time of the authors' DEEN (ZYK100/LLCM, folder DEEN/), for side-by-side speed ratios.

Self-contained like `reference_step.py` (numpy and torch only, nothing of ddag):
`task=bench model=deen task.reference=<checkout>/DEEN` starts it as
`<task.reference_python> deen_reference_step.py --ref <DEEN folder> ...` between its own timing
blocks and reads one JSON line. It builds `embed_net(206, dataset)` with random weights (the
ImageNet download of `resnet50(pretrained=True)` is switched off) and times train.py's step:
forward, id + triplet + 0.8 x CPM + 0.01 x orthogonal losses, backward and SGD, on P identities x
K instances per modality; then the test forward of one modality.
"""

import json
import os
import sys


def _import_deen(checkout: str):
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from reference_step import _accept_old_addmm

    sys.path.insert(0, checkout)
    import resnet

    original = resnet.resnet50
    resnet.resnet50 = lambda pretrained=False, **kw: original(pretrained=False, **kw)
    _accept_old_addmm(torch)
    import loss
    import model

    return torch, model, loss


def time_deen_step(checkout, dataset, ids, instances, height, width, steps, warmup, threads):
    """Per-step seconds of DEEN's training step and images/s of its test forward."""
    torch, model, loss = _import_deen(os.path.abspath(checkout))
    from reference_step import timed_calls, timed_inference  # beside this script

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    functional = torch.nn.functional
    net = model.embed_net(206, dataset).train()
    pairs = ids * instances
    label = torch.arange(ids).repeat_interleave(instances)
    labs = torch.cat((label, label, label, label))
    labels = torch.cat((label, label, label, label, label, label))
    visible = torch.randn(pairs, 3, height, width)
    thermal = torch.randn(pairs, 3, height, width)
    triplet = loss.OriTripletLoss(batch_size=pairs, margin=0.3)
    cpm = loss.CPMLoss(margin=0.2)
    optimizer = torch.optim.SGD(
        net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True
    )

    def step():
        feat, logits, orthogonal = net(visible, thermal)
        first, second, third = torch.chunk(feat, 3, 0)
        pair_loss = cpm(torch.cat((first, second)), labs) + cpm(torch.cat((first, third)), labs)
        total = (
            functional.cross_entropy(logits, labels)
            + triplet(feat, labels)
            + 0.8 * pair_loss
            + 0.01 * orthogonal
        )
        optimizer.zero_grad()
        total.backward()
        optimizer.step()

    times = timed_calls(step, steps, warmup)
    net.eval()
    return {
        "torch": torch.__version__,
        "threads": threads,
        "step_s": times,
        "infer_images_per_s": timed_inference(
            torch, lambda: net(visible, visible, 1), pairs, steps, warmup
        ),
    }


def main(argv=None) -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from reference_step import shape_arguments, step_arguments

    parser = step_arguments(__doc__.split("\n")[0], "the DEEN/ folder of ZYK100/LLCM", 384)
    parser.add_argument("--dataset", default="sysu", choices=("sysu", "llcm", "regdb"))
    args = parser.parse_args(argv)
    ids, instances, height, width, steps, warmup, threads = shape_arguments(args)
    result = time_deen_step(
        args.ref, args.dataset, ids, instances, height, width, steps, warmup, threads
    )
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
