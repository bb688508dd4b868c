"""Isaac end to end against the tiny golden checkpoint (tests/golden/models/isaac-tiny, README there).

Reference: HF Isaac (the released model's code), cross-checked with vLLM; fp32 on CPU. Both
position rules: ``mrope_rule="perceptron"`` (the golden ``position_ids``) and the default
``"vllm"`` (``position_ids_vllm`` where the rules differ).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

import mmprep  # noqa: E402
import mmprep.models as mm  # noqa: E402
from mmprep.errors import BudgetError, InvalidInputError, WeightsError  # noqa: E402
from mmprep.models import isaac  # noqa: E402
from mmprep.models.decoder import run_decode, run_prefill  # noqa: E402

CKPT = Path(__file__).parent / "golden" / "models" / "isaac-tiny"
EXPECTED = json.loads((CKPT / "expected.json").read_text())
ARRAYS = np.load(CKPT / "expected.npz")
CASES = {c["name"]: c for c in EXPECTED["cases"]}
TOL = EXPECTED["tolerance"]
RULES = ("perceptron", "vllm")


@pytest.fixture(scope="module")
def model():
    return mm.load(CKPT, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(CKPT / "tokenizer.json"))


def _variant(case: dict, rule: str) -> str:
    """Suffix of the expected arrays/keys under ``rule``: vLLM's differ only where the case says so."""
    return "_vllm" if rule == "vllm" and "position_ids_vllm" in case else ""


def _process(case: dict, rule: str, tokenizer, **kw):
    family = mmprep.load(CKPT, mrope_rule=rule)
    images = [str(CKPT / im["file"]) for im in case["images"]] or None
    return family.process(case["prompt"], images=images, tokenizer=tokenizer, return_tensors="pt", **kw)


def _greedy_logits(model, batch, n: int) -> tuple[list[int], torch.Tensor]:
    """Greedy tokens and the logits each was taken from, through prefill + cached decode."""
    prompt = model.prepare(batch)
    t = prompt.tokens
    cache = model.new_cache(1, int(t.lengths[0]) + n)
    logits = run_prefill(model, prompt, cache)
    rows, ids = [], []
    pos = t.lengths + t.deltas
    for step in range(n):
        rows.append(logits[0])
        nxt = logits.argmax(-1)
        ids.append(int(nxt[0]))
        if step + 1 < n:
            logits = run_decode(model, nxt, pos + step, cache)
    return ids, torch.stack(rows)


def test_checkpoint_files_are_the_published_ones():
    for name, digest in EXPECTED["checkpoint_files"].items():
        assert hashlib.sha256((CKPT / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("name", list(CASES))
def test_processor_ids_grids_pixels_and_positions(name, rule, tokenizer):
    case = CASES[name]
    b = _process(case, rule, tokenizer)
    assert b["input_ids"][0].tolist() == case["input_ids"]
    v = _variant(case, rule)
    assert b["position_ids"].reshape(3, -1).tolist() == case["position_ids" + v]
    assert int(np.asarray(b["mrope_position_delta"]).reshape(-1)[0]) == case["rope_delta" + v]
    if case["images"]:
        assert b["image_grid_thw"].tolist() == case["image_grid_thw"]
        got = np.asarray(b["pixel_values"])
        np.testing.assert_allclose(got, ARRAYS[f"{name}/pixel_values"], atol=TOL["pixel_values"], rtol=0)


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c["images"]])
def test_vision_tower_and_features_match(name, model):
    case = CASES[name]
    pixels = torch.from_numpy(ARRAYS[f"{name}/pixel_values"])
    grids = [(h, w) for _, h, w in case["image_grid_thw"]]
    tower = model.vision_embedding.tower
    with torch.no_grad():
        pre = tower.encode(pixels, grids)
        shuffled = tower(pixels, grids)
        feats = model.image_features(pixels, case["image_grid_thw"])
    for got, key in ((pre, "vision_pre_shuffle"), (shuffled, "vision_tower"), (feats, "image_features")):
        np.testing.assert_allclose(got.numpy(), ARRAYS[f"{name}/{key}"], atol=TOL["features"], rtol=0, err_msg=key)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("name", list(CASES))
def test_prompt_logits_and_greedy_tokens_match(name, rule, model, tokenizer):
    case = CASES[name]
    v = _variant(case, rule)
    suffix = "_vllm_positions" if v else ""
    b = _process(case, rule, tokenizer)
    with torch.no_grad():
        logits = model(b).logits[0]
    np.testing.assert_allclose(logits.numpy(), ARRAYS[f"{name}/logits{suffix}"], atol=TOL["logits"], rtol=0)
    n = EXPECTED["generation"]["max_new_tokens"]
    with torch.no_grad():
        ids, step_logits = _greedy_logits(model, b, n)
    assert ids == case["greedy_tokens" + ("_vllm_positions" if v else "")]
    np.testing.assert_allclose(step_logits.numpy(), ARRAYS[f"{name}/greedy_logits{suffix}"], atol=TOL["logits"],
                               rtol=0)
    generated = model.generate(b, max_new_tokens=n, stop_token_ids=[])
    assert generated[0].tolist() == ids


def test_packed_images_equal_per_image_runs(model):
    case = CASES["two_images"]
    pixels = torch.from_numpy(ARRAYS["two_images/pixel_values"])
    grid = case["image_grid_thw"]
    sizes = [h * w for _, h, w in grid]
    with torch.no_grad():
        packed = model.image_features(pixels, grid)
        alone = [model.image_features(p, [g]) for p, g in zip(pixels.split(sizes), grid)]
    torch.testing.assert_close(packed, torch.cat(alone), atol=1e-5, rtol=0)


@pytest.mark.parametrize("rule", RULES)
def test_padded_batch_equals_single_runs(rule, model, tokenizer):
    family = mmprep.load(CKPT, mrope_rule=rule)
    cases = [CASES["two_images"], CASES["text_only"], CASES["one_image"]]
    texts = [c["prompt"] for c in cases]
    images = [[str(CKPT / im["file"]) for im in c["images"]] for c in cases]
    batch = family.process(texts, images=images, tokenizer=tokenizer, return_tensors="pt")
    with torch.no_grad():
        logits = model(batch).logits
        new = model.generate(batch, max_new_tokens=5, stop_token_ids=[])
    mask = torch.as_tensor(np.asarray(batch["attention_mask"])).bool()
    for row, case in enumerate(cases):
        single = _process(case, rule, tokenizer)
        with torch.no_grad():
            want = model(single).logits[0]
            want_new = model.generate(single, max_new_tokens=5, stop_token_ids=[])
        torch.testing.assert_close(logits[row][mask[row]], want, atol=1e-4, rtol=0)
        assert new[row].tolist() == want_new[0].tolist()


def test_generate_stops_at_eos_and_pads(model, tokenizer):
    b = _process(CASES["one_image"], "vllm", tokenizer)
    first = CASES["one_image"]["greedy_tokens"]  # 304, 17, ...
    out = model.generate(b, max_new_tokens=6, stop_token_ids=[first[1]], pad_token_id=0)
    assert out[0].tolist() == first[:2]


def test_placeholder_count_mismatch_raises(model, tokenizer):
    b = dict(_process(CASES["one_image"], "vllm", tokenizer))
    ids = b["input_ids"].clone()
    ids[0, 3] = 198  # one <|image_pad|> fewer than the image's 6 features
    b["input_ids"] = ids
    with pytest.raises(InvalidInputError, match=r"5 image placeholder tokens.*6 features"):
        model(b)


def test_bad_grids_and_patch_rows_raise(model):
    pixels = torch.from_numpy(ARRAYS["one_image/pixel_values"])
    with pytest.raises(InvalidInputError, match="multiples of the pixel shuffle scale 2"):
        model.image_features(pixels, [[1, 3, 8]])
    with pytest.raises(InvalidInputError, match=r"need \(20, 768\)"):
        model.image_features(pixels, [[1, 2, 10]])


def test_prompt_longer_than_the_context_raises(model, tokenizer):
    b = _process(CASES["text_only"], "vllm", tokenizer)
    with pytest.raises(BudgetError, match="exceed the model's context"):
        model.generate(b, max_new_tokens=model.max_context)


def _copy(tmp_path: Path) -> Path:
    d = tmp_path / "ckpt"
    shutil.copytree(CKPT, d)
    return d


def _rewrite_weights(d: Path, edit) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(d / "model.safetensors"))
    edit(state)
    save_file(state, str(d / "model.safetensors"))


def test_bad_weights_raise_with_every_problem_named(tmp_path):
    d = _copy(tmp_path)

    def edit(state):
        del state["model.norm.weight"]
        state["model.extra.weight"] = torch.zeros(3)
        state["model.vision_embedding.1.weight"] = torch.zeros(5, 5)

    _rewrite_weights(d, edit)
    with pytest.raises(WeightsError) as e:
        mm.load(d, device="cpu")
    msg = str(e.value)
    assert "missing keys: model.norm.weight" in msg
    assert "unexpected keys: model.extra.weight" in msg
    assert "model.vision_embedding.1.weight [5, 5] (expected [512, 128])" in msg


def test_untied_head_reads_lm_head(tmp_path, model, tokenizer):
    d = _copy(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["tie_word_embeddings"] = False
    (d / "config.json").write_text(json.dumps(cfg))
    head = torch.randn(cfg["vocab_size"], cfg["hidden_size"], generator=torch.Generator().manual_seed(0))
    _rewrite_weights(d, lambda state: state.__setitem__("lm_head.weight", head.clone()))
    untied = mm.load(d, device="cpu")
    b = _process(CASES["one_image"], "vllm", tokenizer)
    with torch.no_grad():
        hidden_logits = untied(b).logits[0]
        prompt = model.prepare(b)
        from mmprep.models.decoder import Step

        t = prompt.tokens
        hidden = model.text_forward(prompt.embeds, t.positions, Step(None, None, t.cu_seqlens, t.max_seqlen))
    torch.testing.assert_close(hidden_logits, hidden @ head.T, atol=1e-4, rtol=0)


def _random_model(**text) -> isaac.IsaacForConditionalGeneration:
    cfg = isaac.IsaacConfig(
        vision=isaac.VisionConfig(hidden_size=16, intermediate_size=24, num_layers=1, num_heads=2, num_patches=16),
        text=isaac.TextConfig(**{"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_layers": 2,
                                 "num_heads": 4, "num_kv_heads": 2, "head_dim": 16, **text}),
        image_token_id=5, tie_word_embeddings=False, eos_token_ids=(1,),
    )
    torch.manual_seed(0)
    m = isaac.IsaacForConditionalGeneration(cfg)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return m.eval()


@pytest.mark.parametrize("text", [{}, {"head_dim": 24}, {"attention_bias": True}])
def test_cached_decode_equals_full_forward(text):
    """Query width != hidden size (4 heads x 24 = 96 vs 32) and biases take the same paths."""
    m = _random_model(**text)
    family = mmprep.load("isaac", patch_size=16, max_num_patches=64, min_num_patches=4,
                         text_head_dim=m.cfg.text.head_dim)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 72, 3), dtype=np.uint8)
    pb = family.pixels([img])
    n_img = int(np.prod(pb.grids[0])) // 4
    ids = [7, 8] + [5] * n_img + [9, 10, 11]  # an image inside text, then text at the end
    feats = [{"modality": "image", "offset": 2, "grid_thw": list(pb.grids[0])}]
    pos, delta = family.mrope_positions(len(ids), feats)
    batch = {"input_ids": np.array([ids]), "position_ids": pos[:, None], "mrope_position_delta": [delta],
             "pixel_values": pb.pixel_values, "image_grid_thw": np.asarray(pb.grids)}
    with torch.no_grad():
        new = m.generate(batch, max_new_tokens=4, stop_token_ids=[])[0].tolist()
        full_ids = ids + new[:-1]
        full_pos = np.concatenate([pos, np.arange(len(ids), len(full_ids))[None].repeat(3, 0) + delta], axis=1)
        full = dict(batch, input_ids=np.array([full_ids]), position_ids=full_pos[:, None])
        logits = m(full).logits[0]
    assert logits[len(ids) - 1:].argmax(-1).tolist() == new


def test_image_token_id_comes_from_the_tokenizer_when_the_config_has_none():
    cfg = json.loads((CKPT / "config.json").read_text())
    assert "image_token_id" not in cfg
    assert mm.load(CKPT, device="cpu").cfg.image_token_id == EXPECTED["image_pad_token_id"]


def test_generate_cli_streams_the_golden_tokens(tokenizer, capsys):
    from mmprep.cli import main

    case = CASES["one_image"]
    rc = main(["generate", "--model", str(CKPT), "--image", str(CKPT / case["images"][0]["file"]),
               "--prompt", "Describe the image.", "--max-new-tokens", "8"])
    assert rc == 0
    want = tokenizer.decode(case["greedy_tokens"], skip_special_tokens=True)
    assert capsys.readouterr().out.strip() == want.strip()


def test_vision_tower_equals_transformers_siglip2_naflex():
    """Our packed tower vs transformers' padded NaFlex ``Siglip2VisionModel`` with the same weights:
    position tables shrunk (antialias matters) and grown, images of different sizes in one pack."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.bench_model import bench_isaac_vision, build_isaac

    hf, ours, v = build_isaac(True, torch.device("cpu"), torch.float32)
    grids = [(4, 6), (16, 12), (8, 8), (2, 30)]
    out = bench_isaac_vision(hf, ours, v, grids, torch.device("cpu"), torch.float32, repeats=1)
    assert out["patches"] == sum(h * w for h, w in grids)
    assert out["max_abs_diff"] < 1e-4


def test_transformers_text_model_layout_loads_the_same_model(tmp_path, model, tokenizer):
    """transformers' own save puts the decoder under ``model.text_model.*``; both layouts load."""
    d = _copy(tmp_path)

    def rename(state):
        for k in [k for k in state if k.startswith("model.") and not k.startswith("model.vision_embedding.")]:
            state["model.text_model." + k[len("model."):]] = state.pop(k)

    _rewrite_weights(d, rename)
    other = mm.load(d, device="cpu")
    b = _process(CASES["one_image"], "vllm", tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(other(b).logits, model(b).logits)
    _rewrite_weights(d, lambda state: state.pop("model.text_model.norm.weight"))
    with pytest.raises(WeightsError, match="model.norm.weight.*other 1 known layout"):
        mm.load(d, device="cpu")
