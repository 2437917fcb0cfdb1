"""Make tests/data/golden_pmt_losses.npz: PMT's loss terms (hulu88/PMT Pytorch-PMT-VI-ReID/loss:
DCL.py, MSEL.py, Triplet.py; train.py's CE per modality and intra-modality triplets) on fixed
features, run unchanged in float64 under torch:

    python tests/data/goldens/make_pmt_losses.py /path/to/PMT/Pytorch-PMT-VI-ReID

A batch of 4 identities x 4 images per modality (train.py's layout: visible half, then thermal
half, each identity's images consecutive), 32-d features, 6-class logits. DCL.py and MSEL.py
call torch 2.x's `addmm_(beta, alpha, a, b)` positionally; that call is mapped to the keyword
form first (Triplet.py already uses it).
"""

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
IDS, K, DIM, SEED = 4, 4, 32, 21


def main(pmt_dir: str) -> None:
    old = torch.Tensor.addmm_

    def addmm_(self, *args, **kwargs):
        if len(args) == 4 and not kwargs:
            beta, alpha, a, b = args
            return old(self, a, b, beta=beta, alpha=alpha)
        return old(self, *args, **kwargs)

    torch.Tensor.addmm_ = addmm_
    sys.path.insert(0, pmt_dir)
    from loss.DCL import DCL
    from loss.MSEL import MSEL
    from loss.Triplet import TripletLoss

    rng = np.random.default_rng(SEED)
    features = rng.normal(0, 1, (2 * IDS * K, DIM))
    logits = rng.normal(0, 1, (2 * IDS * K, 6))
    label = np.repeat(rng.choice(6, IDS, replace=False), K)
    labels = np.concatenate([label, label])
    feats = torch.from_numpy(features)
    targets = torch.from_numpy(labels)
    half = IDS * K
    triplet = TripletLoss(0.1, feat_norm="no")
    out = {
        "features": features,
        "logits": logits,
        "labels": labels,
        "dcl": DCL(num_pos=K, feat_norm="no")(feats, targets).item(),
        "msel": MSEL(num_pos=K, feat_norm="no")(feats, targets).item(),
        "triplet": triplet(feats, feats, targets).item(),
        "triplet_intra": (
            triplet(feats[:half], feats[:half], targets[:half])
            + triplet(feats[half:], feats[half:], targets[half:])
        ).item(),
        "id": (
            F.cross_entropy(torch.from_numpy(logits[:half]), targets[:half])
            + F.cross_entropy(torch.from_numpy(logits[half:]), targets[half:])
        ).item(),
    }
    np.savez(HERE.parent / "golden_pmt_losses.npz", **out)
    print({k: v for k, v in out.items() if np.ndim(v) == 0})


if __name__ == "__main__":
    main(sys.argv[1])
