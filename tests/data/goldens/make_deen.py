"""Make tests/data/golden_deen_{sysu,regdb}.npz and their state-dict manifests by running the
authors' DEEN code (ZYK100/LLCM, folder DEEN/: model.py embed_net, loss.py CPMLoss and
OriTripletLoss, train.py's loss sum) on fixed inputs and synthetic weights.

Not part of the test suite (it needs torch): run it in a side environment with torch and numpy,
from the repository root, with the path of a checkout's DEEN/ folder:

    python tests/data/goldens/make_deen.py /path/to/LLCM/DEEN

`resnet50(pretrained=True)` is called with pretrained=False (no download); the synthetic weights
replace every entry anyway. DEE's dropout is set to p=0 so the training forward is
deterministic. Random running statistics would make the evaluation forward overflow (every MFA
block feeds the next), so one training-mode forward with BatchNorm momentum 1 first sets them to
the statistics of the inputs; they are stored (`running/<name>`) beside the outputs.
Everything runs in float64 (the float32 weights and inputs widened), so the goldens hold the
exact values that a float32 implementation approximates. torch 2.x no longer takes
`addmm_(beta, alpha, a, b)` positionally, which loss.py's distances use; this script maps that
call to the keyword form before running them.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from synthetic_weights import synthetic_state  # noqa: E402

CLASSES, IDS, K, HEIGHT, WIDTH, SEED = 4, 2, 2, 64, 32, 7
LAMBDA_1, LAMBDA_2 = 0.8, 0.01
GRADIENTS = (  # full gradients kept for these (PyTorch names); norms for every parameter
    "classifier.weight",
    "DEE.FC1.bias",
    "MFA1.CNL.W.1.weight",
    "MFA2.PNL.theta.weight",
    "visible_module.visible.bn1.weight",
)


def _authors_modules(deen_dir: str):
    sys.path.insert(0, deen_dir)
    import resnet

    original = resnet.resnet50
    resnet.resnet50 = lambda pretrained=False, **kw: original(pretrained=False, **kw)
    old_addmm = torch.Tensor.addmm_

    def addmm_(self, *args, **kwargs):
        if len(args) == 4 and not kwargs:
            beta, alpha, a, b = args
            return old_addmm(self, a, b, beta=beta, alpha=alpha)
        return old_addmm(self, *args, **kwargs)

    torch.Tensor.addmm_ = addmm_
    import loss
    import model

    return model, loss


def _inputs(rng):
    visible = rng.normal(0, 1, (IDS * K, 3, HEIGHT, WIDTH)).astype(np.float32)
    thermal = rng.normal(0, 1, (IDS * K, 3, HEIGHT, WIDTH)).astype(np.float32)
    labels = np.repeat(np.arange(IDS), K).astype(np.int64) + 1
    return visible, thermal, labels


def _calibrate(net, visible, thermal) -> None:
    """Running statistics := the statistics of one training-mode forward of the inputs."""
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.momentum = 1.0
    net.train()
    with torch.no_grad():
        net(torch.from_numpy(visible).double(), torch.from_numpy(thermal).double())
    for norm in norms:
        norm.momentum = 0.1


def make(dataset: str, model, loss_module) -> None:
    torch.manual_seed(0)
    net = model.embed_net(CLASSES, dataset)
    manifest = [
        {"name": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
        for k, v in net.state_dict().items()
    ]
    state = synthetic_state(manifest, SEED)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    net.DEE.dropout.p = 0.0
    net.double()
    visible, thermal, labels = _inputs(np.random.default_rng(SEED))
    out = {"visible": visible, "thermal": thermal, "labels": labels}
    _calibrate(net, visible, thermal)
    for name, value in net.state_dict().items():
        if name.endswith(("running_mean", "running_var")):
            out["running/" + name] = value.numpy().astype(np.float32)

    net.eval()
    with torch.no_grad():
        for modal, images in ((1, visible), (2, thermal)):
            x = torch.from_numpy(images).double()
            pool, feat = net(x, x, modal)
            out[f"eval_pool_{modal}"], out[f"eval_feat_{modal}"] = pool.numpy(), feat.numpy()

    net.train()
    x1, x2 = torch.from_numpy(visible).double(), torch.from_numpy(thermal).double()
    label1 = label2 = torch.from_numpy(labels)
    labs = torch.cat((label1, label2, label1, label2), 0)
    all_labels = torch.cat((label1, label2, label1, label2, label1, label2), 0)
    feat1, out1, loss_ort = net(x1, x2)
    loss_id = F.cross_entropy(out1, all_labels)
    loss_tri = loss_module.OriTripletLoss(batch_size=IDS * K, margin=0.3)(feat1, all_labels)
    cpm = loss_module.CPMLoss(margin=0.2)
    ft1, ft2, ft3 = torch.chunk(feat1, 3, 0)
    loss_cpm = cpm(torch.cat((ft1, ft2), 0), labs) + cpm(torch.cat((ft1, ft3), 0), labs)
    total = loss_id + loss_tri + loss_cpm * LAMBDA_1 + loss_ort * LAMBDA_2
    total.backward()
    out.update(
        train_pool=feat1.detach().numpy(),
        train_logits=out1.detach().numpy(),
        loss_id=np.float64(loss_id.item()),
        loss_triplet=np.float64(loss_tri.item()),
        loss_cpm=np.float64(loss_cpm.item()),
        loss_orthogonal=np.float64(loss_ort.item()),
        loss_total=np.float64(total.item()),
    )
    grads = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
    out["grad_names"] = np.array(sorted(grads))
    out["grad_norms"] = np.array([float(grads[n].norm()) for n in sorted(grads)])
    for name in GRADIENTS:
        out["grad/" + name] = grads[name].numpy()
    np.savez_compressed(HERE.parent / f"golden_deen_{dataset}.npz", **out)
    (HERE.parent / f"deen_state_manifest_{dataset}.json").write_text(
        json.dumps({"classes": CLASSES, "seed": SEED, "entries": manifest})
    )
    print(dataset, {k: float(out[k]) for k in out if k.startswith("loss_")})


if __name__ == "__main__":
    model_module, loss_module = _authors_modules(sys.argv[1])
    for name in ("sysu", "regdb"):
        make(name, model_module, loss_module)
