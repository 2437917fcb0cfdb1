"""A checkpoint's stored spec and metadata against its own tensors (ddag/checkpoints/network.py,
meta.py): refused before anything is built, within bounded memory and time.

Every file is made here. Cases that would allocate gigabytes if a check regressed run in a
child process under a memory limit (tests/bounded.py), with a time bound.
"""

import json

import pytest

from ddag.config.run_config import run_config
from ddag.errors import CheckpointError
from tests.bounded import refused as _refused
from tests.bounded import run_bounded
from tests.conftest import TINY, compose_config

# 3. A checkpoint's stored spec against its own tensors ---------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A tiny DDAG checkpoint (two stems, IWPA, CGSA) and the spec it stores."""
    from ddag.checkpoints.format import write_checkpoint_file as save_checkpoint
    from ddag.models.architecture import build_network

    cfg = compose_config(TINY)
    spec = run_config(cfg).model
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    save_checkpoint(path, build_network(spec, 5), meta={"model": spec, "config": {}})
    return path, spec


CRAFTED_SPECS = {
    "layers": ("backbone", "layers", [10**6, 1, 1, 1]),
    "stem_channels": ("backbone", "stem_channels", 10**9),
    "widths": ("backbone", "widths", [16, 16, 32, 10**8]),
    "non_local_channels": ("backbone", "non_local_channels", 10**9),
    "num_parts": ("part_attention", "num_parts", 10**9),
    "num_heads": ("graph_attention", "num_heads", 10**6),
    "low_dim": (None, "low_dim", 10**9),
}


@pytest.mark.parametrize("case", sorted(CRAFTED_SPECS))
def test_a_stored_spec_that_does_not_match_its_tensors_is_refused_before_building(
    case, tiny_checkpoint, tmp_path
):
    from ddag.checkpoints.format import META_KEY
    from ddag.checkpoints.format import read_checkpoint_file as read_checkpoint

    source, spec = tiny_checkpoint
    node, key, value = CRAFTED_SPECS[case]
    crafted = json.loads(json.dumps(spec))
    (crafted[node] if node else crafted)[key] = value
    params, _ = read_checkpoint(source)
    path = tmp_path / "crafted.ckpt"
    import mindspore as ms

    entries = [{"name": n, "data": p} for n, p in params.items()]
    from ddag.checkpoints.format import DIGEST_KEY, parameter_digest

    digest = parameter_digest((n, p.asnumpy()) for n, p in params.items())
    meta = json.dumps({"model": crafted})
    ms.save_checkpoint(entries, str(path), append_dict={META_KEY: meta, DIGEST_KEY: digest})
    output, seconds = run_bounded(
        f"""
        from ddag.checkpoints.checkpointer import Checkpointer
        from ddag.errors import CheckpointError
        import time
        limit_memory(1500)
        start = time.monotonic()
        try:
            Checkpointer().load_network({str(path)!r})
            print("LOADED")
        except CheckpointError as err:
            print("REFUSED CheckpointError", err, "in", time.monotonic() - start)
        """
    )
    _refused(output, seconds, limit=90)
    assert "nothing was built" in output  # refused by the tensors or by the component's bound
    refusal_time = float(output.rsplit(" in ", 1)[1].split()[0])
    assert refusal_time < 1.0, output


def test_a_stored_input_size_out_of_range_is_refused():
    from ddag.checkpoints.meta import CheckpointMeta, InputSpec

    old = CheckpointMeta.from_dict({"config": {"loader": {"height": 288, "width": 144}}})
    assert old.input == InputSpec(288, 144)
    new = CheckpointMeta.from_dict({"format_version": 2, "input": {"height": 96, "width": 48}})
    assert new.input == InputSpec(96, 48)
    with pytest.raises(CheckpointError, match="stored input size"):
        CheckpointMeta.from_dict({"config": {"loader": {"height": 10**6, "width": 144}}})
    with pytest.raises(CheckpointError, match="stored input size"):
        CheckpointMeta.from_dict({"format_version": 2, "input": {"height": 10**6, "width": 9}})


# 7. Deep nesting and huge metadata are errors, not tracebacks --------------------------------


def test_deeply_nested_checkpoint_metadata_is_a_checkpoint_error(tiny_checkpoint, tmp_path):
    import mindspore as ms

    from ddag.checkpoints.format import META_KEY
    from ddag.checkpoints.format import read_checkpoint_file as read_checkpoint

    params, _ = read_checkpoint(tiny_checkpoint[0])
    path = tmp_path / "deep.ckpt"
    entries = [{"name": n, "data": p} for n, p in params.items()]
    ms.save_checkpoint(entries, str(path), append_dict={META_KEY: "[" * 200_000 + "]" * 200_000})
    with pytest.raises(CheckpointError, match="nested too deeply"):
        read_checkpoint(path)
