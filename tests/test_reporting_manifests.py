"""Table manifests (ddag/reporting/manifests.py) are data: malformed ones are one error.

Every file is made here. Cases that would allocate gigabytes if a check regressed run in a
child process under a memory limit (tests/bounded.py), with a time bound.
"""

import time

import pytest

from ddag.errors import ConfigError

# 5. Table manifests --------------------------------------------------------------------------

ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}]\n"
    for i in range(7)
)
BAD_MANIFESTS = {
    "alias": (ALIAS_BOMB, "aliases"),
    "python_tag": ("name: x\nrows: !!python/object/apply:os.system ['true']\n", "not a valid"),
    "string_metrics": ("name: x\nmetrics: rank1\nrows: [{preset: p, protocol: q}]\n", "metrics"),
    "unknown_metric": ("name: x\nmetrics: [rank2]\nrows: [{preset: p, protocol: q}]\n", "rank2"),
    "no_rows": ("name: x\n", "'rows' is required"),
    "empty_rows": ("name: x\nrows: []\n", "rows is empty"),
    "row_not_mapping": ("name: x\nrows: [p]\n", "a row is a mapping"),
    "no_protocol": ("name: x\nrows: [{preset: p}]\n", "'protocol' is required"),
    "bad_seeds": ("name: x\nrows: [{preset: p, protocol: q, seeds: [a]}]\n", "seeds"),
    "bad_paper": ("name: x\nrows: [{preset: p, protocol: q, paper: {rank1: high}}]\n", "paper"),
    "typo": ("name: x\nrowz: []\nrows: [{preset: p, protocol: q}]\n", "did you mean 'rows'"),
    "scanner": ("name: [x\nrows: y\n", "not a valid"),
    "list_top": ("- a\n- b\n", "a mapping with name and rows"),
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_a_malformed_manifest_is_one_error_naming_the_problem(case, tmp_path):
    from ddag.tasks.table import load_manifest

    text, problem = BAD_MANIFESTS[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    start = time.monotonic()
    with pytest.raises(ConfigError, match=problem):
        load_manifest(str(path))
    assert time.monotonic() - start < 1


def test_interpolations_in_a_manifest_stay_text(tmp_path, monkeypatch):
    from ddag.tasks.table import load_manifest

    monkeypatch.setenv("HOME", "/secret/home")
    path = tmp_path / "m.yaml"
    path.write_text("name: '${oc.env:HOME}'\nrows: [{preset: p, protocol: q}]\n")
    assert load_manifest(str(path))["name"] == "${oc.env:HOME}"
