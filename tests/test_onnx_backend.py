"""eval.backend=onnxruntime: the same features and metrics as MindSpore, a cached export, the
recorded backend, and clear errors when it cannot be used."""

import json

import numpy as np
import pytest

from ddag.api import load_model
from ddag.config.run_config import run_config
from ddag.errors import ConfigError
from ddag.tasks import eval as eval_task
from ddag.tasks import extract, train
from tests.conftest import TINY, compose_config

EAGER = ["runtime.mode=pynative", "runtime.jit_step=false"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    train.run(run_config(compose_config(TINY + ["+debug=fast", *EAGER], output_dir=root / "run")))
    return root / "run" / "checkpoints" / "last.ckpt"


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DDAG_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_onnx_runtime_gives_mindsporess_features_and_metrics(trained, tmp_path, cache):
    results = {}
    for backend in ("mindspore", "onnxruntime"):
        overrides = TINY + ["task=eval", f"task.checkpoint={trained}", f"eval.backend={backend}"]
        overrides += ["eval.flip=true", *EAGER]
        folder = tmp_path / backend
        eval_task.run(run_config(compose_config(overrides, output_dir=folder)))
        results[backend] = json.loads((folder / "results.json").read_text())
    assert [r["flags"]["backend"] for r in results["onnxruntime"]] == ["onnxruntime"] * 4
    assert [r["flags"]["backend"] for r in results["mindspore"]] == ["mindspore"] * 4
    for ours, theirs in zip(results["mindspore"], results["onnxruntime"]):
        assert ours["trials"] == theirs["trials"] and ours["cmc"] == theirs["cmc"]
    (exported,) = list((cache / "onnx").glob("*.onnx"))
    assert exported.name.endswith("-32x16.onnx")
    images = np.random.default_rng(0).integers(0, 255, (5, 32, 16, 3), dtype=np.uint8)
    plain = load_model(str(trained))
    fast = load_model(str(trained), backend="onnxruntime", threads=1)
    assert fast.extractor.backend == "onnxruntime"
    assert list((cache / "onnx").glob("*.onnx")) == [exported]  # reused, not exported again
    for modality in ("visible", "thermal"):
        for a, b in zip(plain.extract(images, modality), fast.extract(images, modality)):
            np.testing.assert_allclose(a, b, atol=1e-5)


def test_extract_writes_the_same_features_with_either_backend(trained, tmp_path):
    written = {}
    for backend in ("mindspore", "onnxruntime"):
        overrides = TINY + ["task=extract", f"task.checkpoint={trained}", *EAGER]
        overrides += [f"eval.backend={backend}"]
        extract.run(run_config(compose_config(overrides, output_dir=tmp_path / backend)))
        written[backend] = np.load(tmp_path / backend / "features.npz")
    for key in ("fc", "fc_att"):
        np.testing.assert_allclose(
            written["mindspore"][key], written["onnxruntime"][key], atol=1e-5
        )


def test_a_missing_onnxruntime_names_the_extra(trained, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_onnxruntime)
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[onnx\]'"):
        load_model(str(trained), backend="onnxruntime")


def test_a_graph_that_cannot_be_exported_falls_back_with_a_warning(trained, monkeypatch, caplog):
    from ddag.evaluation import onnx_engine

    def broken(*args, **kwargs):
        raise RuntimeError("no ONNX mapping for SomeNewOp")

    monkeypatch.setattr(onnx_engine, "export_onnx", broken)
    with caplog.at_level("WARNING"):
        model = load_model(str(trained), backend="onnxruntime")
    assert model.extractor.backend == "mindspore"
    assert "could not be exported to ONNX (RuntimeError: no ONNX mapping" in caplog.text
    with pytest.raises(ConfigError, match="choose one of"):
        load_model(str(trained), backend="tensorrt")


@pytest.mark.slow
def test_resnet50_ddag_at_the_papers_input_gives_the_same_features_in_both_backends(tmp_path):
    """The paper's network (ResNet-50 DDAG, 288x144; random weights): both modalities, with
    flip averaging, through the FeatureExtractor each backend is used by."""
    import mindspore as ms

    from ddag.data.datasets.base import ArrayImageSet
    from ddag.data.loader import LoaderSettings
    from ddag.evaluation.features import FeatureExtractor
    from ddag.evaluation.onnx_engine import onnx_engine
    from ddag.tasks.steps.networks import build_network

    ms.set_context(mode=ms.PYNATIVE_MODE)
    config = run_config(compose_config(["model/backbone=resnet50", "loader=paper"], tmp_path))
    ms.set_seed(0)
    network = build_network(config, 206)
    network.set_train(False)
    pixels = np.random.default_rng(0).integers(0, 255, (6, 288, 144, 3), dtype=np.uint8)
    images = ArrayImageSet(pixels, [0] * 6, [1] * 6, [f"{i}.png" for i in range(6)])
    settings = LoaderSettings(height=288, width=144, test_batch_size=4, num_workers=1)
    engine = onnx_engine(network, 288, 144, threads=2, cache_dir=tmp_path / "onnx")
    assert engine is not None
    ours = FeatureExtractor(network, settings, flip=True)
    theirs = FeatureExtractor(network, settings, flip=True, engine=engine)
    for modality in ("visible", "thermal"):
        for a, b in zip(ours(images, modality), theirs(images, modality)):
            assert a.shape == (6, 2048)
            np.testing.assert_allclose(a, b, atol=1e-5)
