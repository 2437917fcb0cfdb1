"""Adding a component is one Python file plus one YAML: a backbone family that is not a ResNet,
written into a temporary module, trains, saves, reloads (its checkpoint checked against its own
declared tensors) and evaluates, with no line of ddag changed."""

import importlib.util
import json
import sys
import textwrap

import pytest

from ddag.checkpoints.checkpointer import Checkpointer
from ddag.checkpoints.format import read_checkpoint, save_checkpoint
from ddag.checkpoints.meta import CheckpointMeta
from ddag.config.run_config import run_config
from ddag.errors import CheckpointError
from ddag.models.architecture import build_network
from ddag.tasks import eval as eval_task
from ddag.tasks import train
from tests.conftest import TINY, compose_config

MODULE = "ddag.models.backbones.toy_patch_backbone"

# A patch-embedding stem (4x4 stride-4 convolution) and a trunk of 3x3 convolutions at one
# resolution: no ResNet block, stage or name anywhere.
SOURCE = textwrap.dedent(
    '''
    from mindspore import nn


    class PatchStem(nn.Cell):
        def __init__(self, channels):
            super().__init__()
            self.embed = nn.Conv2d(3, channels, 4, stride=4, has_bias=True)
            self.norm = nn.BatchNorm2d(channels)

        def construct(self, x):
            return self.norm(self.embed(x))


    class ConvTrunk(nn.Cell):
        def __init__(self, channels, depth):
            super().__init__()
            self.mix = nn.CellList(
                [nn.Conv2d(channels, channels, 3, pad_mode="same") for _ in range(depth)]
            )
            self.act = nn.ReLU()

        def construct(self, x):
            for layer in self.mix:
                x = x + self.act(layer(x))
            return x


    class PatchBackbone:
        """Toy backbone recipe: the contract DDAG asks of a backbone, nothing else."""

        def __init__(self, channels: int = 16, depth: int = 2):
            if not (1 <= channels <= 256 and 1 <= depth <= 8):
                raise ValueError("channels must be in 1..256 and depth in 1..8")
            self.channels, self.depth = channels, depth

        @property
        def out_channels(self):
            return self.channels

        def make_stem(self):
            return PatchStem(self.channels)

        def make_trunk(self):
            return ConvTrunk(self.channels, self.depth)

        def stem_shapes(self):
            return {"embed.weight": (self.channels, 3, 4, 4)}

        def trunk_shapes(self):
            shape = (self.channels, self.channels, 3, 3)
            return {f"mix.{i}.weight": shape for i in range(self.depth)}

        def weight_part(self, name):
            return None

        optional_trunk_prefixes = ()
    '''
)
YAML = f"_target_: {MODULE}.PatchBackbone\nchannels: 16\ndepth: 2\n"


@pytest.fixture
def toy_backbone(tmp_path, monkeypatch):
    """The backbone's .py as a temporary module of ddag.models, its YAML in a config folder on
    Hydra's search path; yields the search-path override."""
    source = tmp_path / "toy_patch_backbone.py"
    source.write_text(SOURCE)
    spec = importlib.util.spec_from_file_location(MODULE, source)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, MODULE, module)
    spec.loader.exec_module(module)
    conf = tmp_path / "extra_conf" / "model" / "backbone"
    conf.mkdir(parents=True)
    (conf / "patch.yaml").write_text(YAML)
    return f"hydra.searchpath=[file://{tmp_path / 'extra_conf'}]"


def test_a_non_resnet_backbone_trains_saves_reloads_and_evaluates(toy_backbone, tmp_path):
    eager = ["runtime.mode=pynative", "runtime.jit_step=false"]
    common = TINY + [toy_backbone, "model/backbone=patch", "dataset.num_val_ids=0", *eager]
    out = tmp_path / "run"
    train_config = compose_config(
        common + ["task.epochs=2", "task.selection=last", "seed=1"], output_dir=out
    )
    assert train_config.model.backbone._target_ == f"{MODULE}.PatchBackbone"
    train.run(run_config(train_config))
    losses = json.loads((out / "train_history.json").read_text())["epoch_losses"]
    assert len(losses) == 2 and all(loss["total"] > 0 for loss in losses)

    loaded = Checkpointer().load_network(out / "checkpoints" / "best.ckpt")
    assert loaded.report.ok and type(loaded.network.trunk).__name__ == "ConvTrunk"
    stored = {"_target_": f"{MODULE}.PatchBackbone", "channels": 16, "depth": 2}
    assert loaded.meta.model["backbone"] == stored

    evaluated = tmp_path / "evaluated"
    eval_config = compose_config(
        common + ["task=eval", f"task.checkpoint={out / 'checkpoints' / 'best.ckpt'}"],
        output_dir=evaluated,
    )
    eval_task.run(run_config(eval_config))
    records = json.loads((evaluated / "results.json").read_text())
    trained = {(r["protocol"], r["feature"]): r["mean"] for r in _records(out)}
    for record in records:
        assert record["mean"] == pytest.approx(trained[(record["protocol"], record["feature"])])


def _records(out):
    return json.loads((out / "results.json").read_text())


def test_the_toy_backbone_checks_its_own_tensors_when_loaded(toy_backbone, tmp_path):
    """A spec stored beside tensors of another depth is refused by the shapes the backbone
    declares, before anything is built."""
    config = run_config(compose_config(TINY + [toy_backbone, "model/backbone=patch"]))
    network = build_network(config.model, 4)
    path = tmp_path / "toy.ckpt"
    deeper = json.loads(json.dumps(config.model))
    deeper["backbone"]["depth"] = 8
    save_checkpoint(path, network, meta=CheckpointMeta(model=deeper))
    assert read_checkpoint(path)[1].model["backbone"]["depth"] == 8
    with pytest.raises(CheckpointError, match=r"trunk\.mix\.2\.weight \(16, 16, 3, 3\) vs absent"):
        Checkpointer().load_network(path)
