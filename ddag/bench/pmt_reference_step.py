"""Step time of the authors' PMT (hulu88/PMT, folder Pytorch-PMT-VI-ReID/), for side-by-side
speed ratios.

Self-contained like `reference_step.py` (numpy and torch only, nothing of ddag):
`task=bench experiment=pmt_sysu_all init=none task.reference=<checkout>/Pytorch-PMT-VI-ReID`
starts it as `<task.reference_python> pmt_reference_step.py --ref <folder> ...` between its own
timing blocks and reads one JSON line. It builds `build_vision_transformer` with random weights
(the ImageNet file `load_param` reads is not needed: loading is switched off) and times
train.py's step after the progressive phase: forward, CE per modality + triplet + 0.5 x DCL +
0.5 x MSEL, backward and `make_optimizer`'s AdamW, on P identities x K instances per modality
(train.py's autocast is CUDA-only: on the CPU the step runs in float32); then the test forward.
"""

import json
import os
import sys
from types import SimpleNamespace


def _import_pmt(checkout: str):
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from reference_step import _accept_old_addmm

    sys.path.insert(0, checkout)
    from model import vision_transformer

    vision_transformer.ViT.load_param = lambda self, path: None
    _accept_old_addmm(torch)
    from loss.DCL import DCL
    from loss.MSEL import MSEL
    from loss.Triplet import TripletLoss
    from model.make_model import build_vision_transformer
    from optimizer import make_optimizer

    return torch, build_vision_transformer, make_optimizer, (TripletLoss, DCL, MSEL)


def time_pmt_step(checkout, ids, instances, height, width, steps, warmup, threads):
    """Per-step seconds of PMT's training step and images/s of its test forward."""
    torch, build, make_optimizer, losses = _import_pmt(os.path.abspath(checkout))
    from reference_step import timed_calls, timed_inference  # beside this script

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = SimpleNamespace(
        H=height,
        W=width,
        STRIDE_SIZE=[12, 12],
        DROP_PATH=0.1,
        DROP_OUT=0.03,
        ATT_DROP_RATE=0.0,
        PRETRAIN_PATH="",
        BASE_LR=3e-4,
        WEIGHT_DECAY=1e-4,
        WEIGHT_DECAY_BIAS=1e-4,
        BIAS_LR_FACTOR=1,
        LR_PRETRAIN=0.5,
        OPTIMIZER_NAME="AdamW",
        MOMENTUM=0.9,
    )
    net = build(num_classes=395, cfg=cfg).train()
    triplet_loss, dcl_loss, msel_loss = losses
    triplet = triplet_loss(margin=0.1, feat_norm="no")
    dcl = dcl_loss(num_pos=instances, feat_norm="no")
    msel = msel_loss(num_pos=instances, feat_norm="no")
    optimizer = make_optimizer(cfg, net)
    pairs = ids * instances
    label = torch.arange(ids).repeat_interleave(instances)
    labels = torch.cat((label, label))
    images = torch.randn(2 * pairs, 3, height, width)
    cross_entropy = torch.nn.functional.cross_entropy

    def step():
        optimizer.zero_grad()
        scores, feats = net(images)
        first, second = scores.chunk(2, 0)
        total = cross_entropy(first, label) + cross_entropy(second, label)
        total = total + triplet(feats, feats, labels)
        total = total + 0.5 * dcl(feats, labels) + 0.5 * msel(feats, labels)
        total.backward()
        optimizer.step()

    times = timed_calls(step, steps, warmup)
    net.eval()
    visible = images[:pairs]
    return {
        "torch": torch.__version__,
        "threads": threads,
        "step_s": times,
        "infer_images_per_s": timed_inference(torch, lambda: net(visible), pairs, steps, warmup),
    }


def main(argv=None) -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from reference_step import shape_arguments, step_arguments

    parser = step_arguments(__doc__.split("\n")[0], "the Pytorch-PMT-VI-ReID/ folder", 256)
    args = parser.parse_args(argv)
    ids, instances, height, width, steps, warmup, threads = shape_arguments(args)
    result = time_pmt_step(args.ref, ids, instances, height, width, steps, warmup, threads)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
