"""The worked examples of docs/testing.md run as tests: every Python block that defines a
``test_`` function is executed as a module, and each test is called with the fixtures it names
(``tokenizer``: a small GLM tokenizer built in code, standing in for the model's)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from mmprep.testing import BatchCheckError
from mmprep.testing import strategies as mst
from tests.tokenizers_fixture import glm_tokenizer

DOC = Path(__file__).parents[1] / "docs" / "testing.md"
BLOCKS = [b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL) if "def test_" in b]
FIXTURES = {"tokenizer": glm_tokenizer}


def _tests():
    for k, block in enumerate(BLOCKS):
        for name in re.findall(r"^def (test_\w+)", block, flags=re.MULTILINE):
            yield k, name


def test_the_page_has_three_examples_with_tests():
    assert len(BLOCKS) == 3 and all(re.search(r"^@given", b, flags=re.MULTILINE) for b in BLOCKS)


@pytest.mark.parametrize("block, name", list(_tests()))
def test_docs_example(block, name):
    fn = _load(block)[name]
    fn(**{p: FIXTURES[p]() for p in inspect.signature(fn).parameters})


def _load(block: int) -> dict:
    namespace = {"__name__": f"docs_testing_{block}"}
    exec(compile(BLOCKS[block], f"{DOC}:block{block}", "exec"), namespace)  # noqa: S102
    return namespace


# the examples must be able to fail: each catches a plausible bug in the user code it tests
# (generation only, no shrinking, so the search stays short)
QUICK = settings(max_examples=200, deadline=None, phases=[Phase.generate], report_multiple_bugs=False, database=None,
                 derandomize=True)


def test_the_truncation_example_catches_a_rule_that_splits_spans():
    ns = _load(1)
    ns["truncate"] = lambda ids, spans, max_len: ids[:max_len]  # the rule without the back-off
    inner = ns["test_truncation_never_splits_a_media_span"].hypothesis.inner_test

    @QUICK
    @given(case=mst.prompts(ns["GLM"]), max_len=st.integers(1, 3000))
    def run(case, max_len):
        inner(glm_tokenizer(), case, max_len)

    with pytest.raises(BatchCheckError, match=r"a cut at \d+ tokens splits (image|video) \d+"):
        run()


def test_the_collator_example_catches_positions_left_unshifted():
    ns = _load(2)
    good = ns["collate_left"]

    def collate_forgetting_positions(batches, pad_id=0):
        batch, plans = good(batches, pad_id)
        pos = np.zeros_like(batch["position_ids"])
        for i, b in enumerate(batches):  # ids padded on the left, positions copied to the left
            pos[:, i, : b["input_ids"].shape[1]] = b["position_ids"][:, 0]
        return {**batch, "position_ids": pos}, plans

    ns["collate_left"] = collate_forgetting_positions
    inner = ns["test_collator_keeps_every_invariant"].hypothesis.inner_test

    @QUICK
    @given(cases=st.lists(mst.prompts(ns["GLM"], max_items=2), min_size=1, max_size=3))
    def run(cases):
        inner(glm_tokenizer(), cases)

    with pytest.raises(BatchCheckError, match=r"sample \d: "):
        run()
