"""Packed rows: several samples in one row (``cu_seqlens`` from a packer), attention confined to
each sample, each with its own restarting MRoPE positions; logits equal running each sample alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import mmprep  # noqa: E402
import mmprep.models as mm  # noqa: E402
from mmprep.errors import InvalidInputError  # noqa: E402
from tests.test_models_glm4v import IMG, ckpt, image_batch, images, ours  # noqa: E402,F401

ISAAC = Path(__file__).parent / "golden" / "models" / "isaac-tiny"


def pack_row(batches: list, pixel_key: str = "pixel_values", grid_key: str = "image_grid_thw") -> dict:
    """One row holding every single-sample batch, one after the other (what a packer builds)."""
    ids = [np.asarray(b["input_ids"]).reshape(-1) for b in batches]
    lengths = [len(i) for i in ids]
    row = {"input_ids": np.concatenate(ids)[None],
           "cu_seqlens": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)}
    if all(b.get("position_ids") is not None for b in batches):  # MRoPE models: each sample's own, restarting
        pos = [np.asarray(b["position_ids"]).reshape(3, -1) for b in batches]
        row["position_ids"] = np.concatenate(pos, axis=1)[:, None]
    with_media = [b for b in batches if b.get(pixel_key) is not None]
    if with_media:
        row[pixel_key] = np.concatenate([np.asarray(b[pixel_key]) for b in with_media])
        row[grid_key] = np.concatenate([np.asarray(b[grid_key]).reshape(-1, 3) for b in with_media])
    return row, lengths


def assert_packed_equals_alone(model, batches, family=None):
    row, lengths = pack_row(batches)
    if family is not None:  # the packer's own rows (mmprep.pack -> family.pack_batch): the same row
        (packed_row,) = family.pack_batch(batches, [list(range(len(batches)))])
        np.testing.assert_array_equal(np.asarray(packed_row["input_ids"]), row["input_ids"])
        np.testing.assert_array_equal(np.asarray(packed_row["cu_seqlens"]), row["cu_seqlens"])
        with torch.no_grad():
            logits = model(packed_row).logits[0]
            want = [model(b).logits[0] for b in batches]
        for got, one in zip(logits.split(lengths), want):
            torch.testing.assert_close(got, one, atol=1e-4, rtol=0)
    with torch.no_grad():
        packed = model(row).logits[0]
        alone = [model(b).logits[0] for b in batches]
    for got, want in zip(packed.split(lengths), alone):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    # without the boundaries the samples see each other: the logits of the later ones change
    row.pop("cu_seqlens")
    with torch.no_grad():
        mixed = model(row).logits[0]
    assert not torch.allclose(mixed[lengths[0]:], packed[lengths[0]:], atol=1e-4)


def test_glm_packed_row_equals_each_sample_alone(ckpt, ours):  # noqa: F811
    imgs = images()
    batches = [image_batch(ckpt, f"{IMG}Describe it.", imgs[:1]),
               mmprep.load(ckpt[0]).process("Just text here.", tokenizer=ckpt[3], return_tensors="pt"),
               image_batch(ckpt, f"Look {IMG} here.", imgs[1:])]
    assert_packed_equals_alone(ours, batches, mmprep.load(ckpt[0]))


def test_isaac_packed_row_equals_each_sample_alone():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(ISAAC / "tokenizer.json"))
    family = mmprep.load(ISAAC)
    model = mm.load(ISAAC, device="cpu")
    pics = sorted((ISAAC / "images").glob("*.png"))
    batches = [family.process("<image>What is it?", images=[str(pics[0])], tokenizer=tok, return_tensors="pt"),
               family.process("Hello there.", tokenizer=tok, return_tensors="pt"),
               family.process("<image> and <image>", images=[str(p) for p in pics[1:3]], tokenizer=tok,
                              return_tensors="pt")]
    assert_packed_equals_alone(model, batches, family)


def test_bad_sample_boundaries_raise(ckpt, ours):  # noqa: F811
    b = mmprep.load(ckpt[0]).process("Just text here.", tokenizer=ckpt[3], return_tensors="pt")
    n = b["input_ids"].shape[1]
    for cu in ([0, n + 1], [0, 3, 3, n], [1, n]):
        with pytest.raises(InvalidInputError, match="cu_seqlens"):
            ours(dict(b, cu_seqlens=np.array(cu)))
    with pytest.raises(InvalidInputError, match="packed row"):
        ours.generate(dict(b, cu_seqlens=np.array([0, 2, n])), max_new_tokens=2)


def test_nemotron_packed_row_equals_each_sample_alone(tmp_path_factory):
    """Mamba2 layers restart their conv and SSM state at every sample boundary, attention stays inside."""
    from tests.test_models_nemotron import omni as omni_fixture  # noqa: F401
    from tests.test_models_nemotron import pictures

    omni = omni_fixture.__wrapped__(tmp_path_factory)
    d, _, tok, model = omni
    family = mmprep.load(d)
    pics = pictures()
    batches = [family.process("<image> what is it?", images=pics[:1], tokenizer=tok, return_tensors="pt"),
               family.process("plain words only", tokenizer=tok, return_tensors="pt"),
               family.process("and <image> this", images=pics[1:], tokenizer=tok, return_tensors="pt")]
    media_keys = sorted({k for b in batches for k in b if k not in ("input_ids", "attention_mask", "position_ids",
                                                                     "mrope_position_delta", "plans")})
    row, lengths = pack_row(batches)
    for key in media_keys:
        parts = [np.asarray(b[key]) for b in batches if b.get(key) is not None]
        row[key] = np.concatenate(parts)
    row.pop("pixel_values", None)
    (packed_row,) = family.pack_batch(batches, [[0, 1, 2]])
    with torch.no_grad():
        torch.testing.assert_close(model(packed_row).logits[0], model(row).logits[0])
        packed = model(row).logits[0]
        alone = [model(b).logits[0] for b in batches]
    for got, want in zip(packed.split(lengths), alone):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
