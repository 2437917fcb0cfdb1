"""Make tests/data/golden_vit.npz and vit_state_manifest.json: timm's VisionTransformer and
PMT's ViT on the same synthetic ImageNet-layout weights (a ViT-Ti layout, 2 blocks).

Not part of the test suite (it needs torch and timm): run it in a side environment, from the
repository root, with the path of a checkout's Pytorch-PMT-VI-ReID/ folder:

    python tests/data/goldens/make_vit.py /path/to/PMT/Pytorch-PMT-VI-ReID

- timm: `VisionTransformer(img_size=(64, 32), patch_size=16, embed_dim=192, depth=2,
  num_heads=3)` (plain stride, LayerNorm eps 1e-6): the normalised class token and patch tokens
  of `forward_features`, in eval and in train mode (no dropout is configured).
- PMT: `model/vision_transformer.py` ViT(img_size=[288, 144], stride_size=12, embed_dim=192,
  depth=2, num_heads=3) loading a 224x224 (14 x 14 grid) state dict of the same layout through
  its own `load_param`, which resizes the position embedding bilinearly to the 23 x 11 grid;
  its forward (the class token).

Images come from numpy's generator seeded with `INPUT_SEED` (the test draws the same). timm
imports torchvision, which a CPU torch side environment may lack: the import is satisfied by an
empty stand-in (nothing of torchvision runs for a VisionTransformer).
"""

import importlib.abc
import importlib.machinery
import json
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from synthetic_weights import synthetic_state  # noqa: E402

SEED, INPUT_SEED = 11, 12


class _StandIn(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = _StandIn(f"{self.__name__}.{name}")
        value.__path__ = []
        return value

    def __call__(self, *args, **kwargs):
        return _StandIn(self.__name__ + "()")

    def __iter__(self):
        return iter(())

    def __mro_entries__(self, bases):
        return (object,)


class _TorchvisionStandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] == "torchvision":
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _StandIn(spec.name)

    def exec_module(self, module):
        module.__path__ = []


def images(height, width, count=2):
    return (
        np.random.default_rng(INPUT_SEED).normal(0, 1, (count, 3, height, width)).astype(np.float32)
    )


def main(pmt_dir: str) -> None:
    try:
        import torchvision  # noqa: F401
    except ImportError:
        sys.meta_path.insert(0, _TorchvisionStandIn())
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    small = VisionTransformer(img_size=(64, 32), patch_size=16, embed_dim=192, depth=2, num_heads=3)
    imagenet = VisionTransformer(img_size=224, patch_size=16, embed_dim=192, depth=2, num_heads=3)
    manifest = [
        {"name": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
        for k, v in imagenet.state_dict().items()
    ]
    state = synthetic_state(manifest, SEED)
    small_state = {k: v for k, v in state.items()}
    # The 64x32 model takes its position embedding from the same generator at its own size.
    small_manifest = [
        {"name": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
        for k, v in small.state_dict().items()
    ]
    small_state = synthetic_state(small_manifest, SEED)
    small.load_state_dict({k: torch.from_numpy(v) for k, v in small_state.items()})
    out = {}
    x = torch.from_numpy(images(64, 32)).double()
    small.double()
    for mode in ("eval", "train"):
        small.train(mode == "train")
        with torch.no_grad():
            tokens = small.forward_features(x).numpy()
        out[f"timm_{mode}_cls"], out[f"timm_{mode}_patches"] = tokens[:, 0], tokens[:, 1:]

    sys.path.insert(0, pmt_dir)
    from model.vision_transformer import ViT

    pmt = ViT(img_size=[288, 144], stride_size=12, embed_dim=192, depth=2, num_heads=3)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "imagenet.pth"
        torch.save({k: torch.from_numpy(v) for k, v in state.items()}, path)
        pmt.load_param(str(path))
    pmt.double().eval()
    with torch.no_grad():
        out["pmt_cls"] = pmt(torch.from_numpy(images(288, 144)).double()).numpy()
        out["pmt_pos_embed"] = pmt.pos_embed.detach().numpy()
    np.savez_compressed(HERE.parent / "golden_vit.npz", **out)
    (HERE.parent / "vit_state_manifest.json").write_text(
        json.dumps(
            {"seed": SEED, "input_seed": INPUT_SEED, "imagenet": manifest, "small": small_manifest}
        )
    )
    print({k: v.shape for k, v in out.items()})


if __name__ == "__main__":
    main(sys.argv[1])
