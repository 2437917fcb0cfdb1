"""Make tests/data/golden_pmt_optimizer.npz: PMT's optimiser and schedule (hulu88/PMT
Pytorch-PMT-VI-ReID/optimizer.py make_optimizer, scheduler.py create_scheduler with
config/config.py's values) run unchanged under torch on a stand-in model whose parameter names
fall into PMT's two groups:

    python tests/data/goldens/make_pmt_optimizer.py /path/to/PMT/Pytorch-PMT-VI-ReID

The stand-in has `base.patch_embed.proj.weight`, `base.blocks.0.fc.{weight,bias}` (LR_PRETRAIN
group), `base.cls_token` and `classifier.weight` (base rate). It trains EPOCHS epochs of STEPS
steps as train.py does (`scheduler.step(epoch)` with 1-based epochs before each epoch's steps,
then `optimizer.step()` per step) on fixed gradients; the file keeps the start values, the
gradients, every group's rate per epoch and the parameters at the end.
"""

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
EPOCHS, STEPS, SEED = 6, 2, 5
SHAPES = {
    "base.patch_embed.proj.weight": (4, 3),
    "base.blocks.0.fc.weight": (3, 4),
    "base.blocks.0.fc.bias": (3,),
    "base.cls_token": (1, 4),
    "classifier.weight": (5, 4),
}


def main(pmt_dir: str) -> None:
    sys.path.insert(0, pmt_dir)
    from optimizer import make_optimizer
    from scheduler import create_scheduler

    cfg = SimpleNamespace(
        BASE_LR=3e-4,
        WEIGHT_DECAY=1e-4,
        WEIGHT_DECAY_BIAS=1e-4,
        BIAS_LR_FACTOR=1,
        LR_PRETRAIN=0.5,
        OPTIMIZER_NAME="AdamW",
        MOMENTUM=0.9,
        MAX_EPOCH=EPOCHS,
        LR_MIN=0.01,
        LR_INIT=0.01,
        WARMUP_EPOCHS=3,
    )
    rng = np.random.default_rng(SEED)
    start = {n: rng.normal(0, 1, s).astype(np.float32) for n, s in SHAPES.items()}
    model = torch.nn.Module()
    for name, value in start.items():
        model.register_parameter(name.replace(".", "__"), torch.nn.Parameter(torch.tensor(value)))
    # make_optimizer reads the dotted names: give it those.
    model.named_parameters = lambda: [(n, getattr(model, n.replace(".", "__"))) for n in SHAPES]
    optimizer = make_optimizer(cfg, model)
    scheduler = create_scheduler(cfg, optimizer)
    grads = rng.normal(0, 1, (EPOCHS, STEPS, sum(int(np.prod(s)) for s in SHAPES.values())))
    rates = []
    for epoch in range(1, EPOCHS + 1):
        scheduler.step(epoch)
        rates.append([group["lr"] for group in optimizer.param_groups])
        for step in range(STEPS):
            flat = grads[epoch - 1, step]
            offset = 0
            for name, shape in SHAPES.items():
                size = int(np.prod(shape))
                param = getattr(model, name.replace(".", "__"))
                param.grad = torch.tensor(
                    flat[offset : offset + size].reshape(shape), dtype=torch.float32
                )
                offset += size
            optimizer.step()
    out = {f"start/{n}": v for n, v in start.items()}
    out.update({f"end/{n}": getattr(model, n.replace(".", "__")).detach().numpy() for n in SHAPES})
    out["grads"] = grads.astype(np.float32)
    out["rates"] = np.asarray(rates)  # (EPOCHS, parameters): one group per parameter in PMT
    np.savez(HERE.parent / "golden_pmt_optimizer.npz", **out)
    print(np.asarray(rates))


if __name__ == "__main__":
    main(sys.argv[1])
