"""Every line of every golden file is one case, dispatched on ``fn`` to mmprep's public API.

Vectors come from the reference implementations (vLLM, transformers); see tests/golden/README.md.
Set ``MMPREP_GOLDEN_DIR`` to run another directory of vectors of the same form. Adapters live in
``tests/adapters/<area>.py``, each exporting ``RUNNERS = {fn: callable(args) -> dict}``; they map
args onto the public API and never branch on the case name.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import pathlib

import pytest

from mmprep import MmprepError

HERE = pathlib.Path(__file__).parent
GOLDEN = pathlib.Path(os.environ.get("MMPREP_GOLDEN_DIR", HERE / "golden"))
FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
INFO = {"branch", "num_before_dedupe", "min_gap_at_cut", "image_processor"}
ADAPTERS = ("image", "video", "evs", "prompts")


def floats(x):
    if isinstance(x, str):
        return FLOATS.get(x, x)
    if isinstance(x, list):
        return [floats(v) for v in x]
    if isinstance(x, dict):
        return {k: floats(v) for k, v in x.items()}
    return x


def _runners() -> dict:
    runners: dict = {}
    for area in ADAPTERS:
        try:
            mod = importlib.import_module(f"tests.adapters.{area}")
        except ModuleNotFoundError as e:
            if e.name != f"tests.adapters.{area}":
                raise
            continue
        runners.update(mod.RUNNERS)
    return runners


RUNNERS = _runners()
CASES = [
    pytest.param(row, id=f"{p.name}:{row['case']}")
    for p in sorted(GOLDEN.glob("*.jsonl"))
    for row in map(json.loads, filter(str.strip, p.read_text().splitlines()))
]
assert CASES, f"no golden vectors in {GOLDEN}"


@pytest.mark.parametrize("row", CASES)
def test_golden(row):
    assert row["fn"] in RUNNERS, f"unknown fn {row['fn']!r}"
    run, args, exp = RUNNERS[row["fn"]], floats(row["args"]), row["expected"]
    if "error" in exp or exp.get("invalid_input"):
        with pytest.raises(MmprepError):
            run(args)
        return
    got = run(args)
    for key, want in exp.items():
        if key not in INFO:
            assert key in got, f"adapter returned no {key!r}"
            assert got[key] == want, key
