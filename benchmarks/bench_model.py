"""Benchmark a model layer against transformers, measured in the same run.

    python benchmarks/bench_model.py                 # GLM-4.1V, GPU: real vision config, bf16
    python benchmarks/bench_model.py --small         # tiny sizes, CPU fp32, < 1 minute
    python benchmarks/bench_model.py --model isaac   # Isaac's SigLIP2 tower vs Siglip2VisionModel
    python benchmarks/bench_model.py --model glm-moe # GLM-4.5V's MoE decoder vs Glm4vMoeForConditionalGeneration
    python benchmarks/bench_model.py --model nemotron  # RADIO + NemotronH vs NemotronH_Omni_Reasoning_V3

glm-moe and nemotron build transformers' model (random weights at a trained model's scale),
save_pretrained it to a temp dir and load that with mmprep.models.load: the checkpoint path, same
weights. glm-moe: GLM-4.5V's text widths (hidden 4096, 96 heads of 128, 8 KV heads, 128 routed
experts of 1408, 8 per token, one shared; vocab 151424) with --decoder-layers layers (default 2:
one dense, one MoE; ~3.8 B parameters, ~7.6 GB bf16 per model); tiny vision tower. nemotron:
C-RADIO ViT-H (32 layers, 1280) + pixel shuffle + projector (20480) on (a) 64 tiles of 512x512
(the 12B-v2-VL path) and (b) six Omni dynamic-size images up to the 13312-patch cap, and the
NemotronH decoder at Nemotron-3-Nano-Omni's widths (hidden 2688, Mamba2 64 heads of 64, state 128,
8 groups; 32 heads / 2 KV; 128 experts of 1856, 6 per token, shared 3712) with --pattern (default
"M*-EM", repeated --decoder-layers times; ~2.9 B parameters, ~5.8 GB bf16 per model). Both: decoder
prefill 8 x 2048 tokens and 64 greedy new tokens per row, plus max |logit diff| on a 32-token prompt.

Isaac workloads (the released tower's size: hidden 1152, 27 layers, 16 heads of 72, patch 16;
random weights shared by both): isaac_a 256 images of 512x512 (1024 patches each); isaac_b a mix
of sizes up to the 6144-patch cap. transformers runs its padded NaFlex path (one padded batch
with an attention mask, SDPA); ours runs packed varlen attention. Pixel shuffle excluded (the
peer has none): both produce the post-LayerNorm patch features, compared for max |diff|.

Workloads (random weights; both models share the very same tensors):
  vision_a  256 images of 308x308 (22x22 patches each) through the GLM-4.1V vision tower
  vision_b  a mix of large images up to 2408x2408 (attention-bound: up to 29584 patches per image)
  decoder   prefill of B prompts of L tokens, then greedy decode of N tokens per row
            (GLM-4 decoder widths, fewer layers than the 9B model: --decoder-layers)
Prints ONE JSON line: patches/s, achieved TFLOP/s, tokens/s, and ours/transformers ratios.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests._torchvision

REAL_VISION = dict(depth=24, hidden_size=1536, num_heads=12, intermediate_size=13696, out_hidden_size=4096,
                   image_size=336, patch_size=14)
SMALL_VISION = dict(depth=2, hidden_size=64, num_heads=2, intermediate_size=96, out_hidden_size=128,
                    image_size=56, patch_size=14)


def text_config(small: bool, layers: int) -> dict:
    rope = dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.5)
    if small:
        return dict(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                    rope_parameters={**rope, "mrope_section": [2, 3, 3]})
    return dict(vocab_size=151552, hidden_size=4096, intermediate_size=13696, num_hidden_layers=layers,
                num_attention_heads=32, num_key_value_heads=2, max_position_embeddings=65536,
                rope_parameters={**rope, "mrope_section": [8, 12, 12]})


def build(small: bool, layers: int, device: torch.device, dtype: torch.dtype):
    """transformers' model (SDPA) and ours, sharing one set of random weights."""
    from tests._torchvision import import_torchvision

    import_torchvision()
    from transformers import Glm4vConfig, Glm4vForConditionalGeneration

    import mmprep.models.glm4v as g

    cfg = Glm4vConfig(text_config=text_config(small, layers), vision_config=SMALL_VISION if small else REAL_VISION)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        hf = Glm4vForConditionalGeneration(cfg).to(dtype).eval()
    ours_cfg = g.Glm4vConfig.from_hf(cfg.to_dict())
    with torch.device("meta"):
        ours = g.Glm4vForConditionalGeneration(ours_cfg)
    table = g.weight_table(ours_cfg)
    ours.load_state_dict({table[k]: v for k, v in hf.state_dict().items()}, strict=True, assign=True)
    return hf, ours.eval(), ours_cfg


def images_grid(sizes: list[tuple[int, int]], patch: int = 14) -> torch.Tensor:
    return torch.tensor([[1, h // patch, w // patch] for h, w in sizes])


def vision_flops(grid: torch.Tensor, v) -> float:
    """Forward FLOPs (2 per multiply-add) of the vision tower: matmuls plus attention scores."""
    n = int(grid.prod(-1).sum())
    d, o = v.hidden_size, v.out_hidden_size
    per_patch = 2 * (v.patch_dim * d + v.depth * (4 * d * d + 3 * d * o))
    attn = sum(int(t) * 4 * (int(h) * int(w)) ** 2 * d for t, h, w in grid.tolist()) * v.depth
    merged = n // 4
    tail = 2 * merged * (4 * d * o + o * o + 3 * o * v.intermediate_size)
    return float(n * per_patch + attn + tail)


def timed(fn, device: torch.device, repeats: int) -> float:
    """Best wall time of ``repeats`` runs after one warm-up, in seconds."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        fn()
        sync()
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            sync()
            best = min(best, time.perf_counter() - t0)
    return best


def bench_vision(hf, ours, cfg, sizes, device, dtype, repeats) -> dict:
    grid = images_grid(sizes)
    n = int(grid.prod(-1).sum())
    pix = torch.randn(n, cfg.vision.patch_dim, device=device, dtype=dtype)
    grid_dev = grid.to(device)
    with torch.inference_mode():
        diff = (ours.visual(pix, grid) - hf.model.visual(pix, grid_thw=grid_dev).pooler_output).abs().max()
    t_ours = timed(lambda: ours.visual(pix, grid), device, repeats)
    t_peer = timed(lambda: hf.model.visual(pix, grid_thw=grid_dev), device, repeats)
    flops = vision_flops(grid, cfg.vision)
    return dict(images=len(sizes), patches=n, max_patches_per_image=int(grid.prod(-1).max()),
                ours_s=round(t_ours, 5), peer_s=round(t_peer, 5),
                ours_patches_per_s=round(n / t_ours), peer_patches_per_s=round(n / t_peer),
                ours_tflops=round(flops / t_ours / 1e12, 3), peer_tflops=round(flops / t_peer / 1e12, 3),
                ratio=round(t_peer / t_ours, 3), max_abs_diff=float(diff))


def bench_decoder(hf, ours, batch: int, length: int, new: int, device, repeats) -> dict:
    vocab = ours.vocab_size
    layers = getattr(ours.cfg, "text", ours.cfg).num_layers
    ids = torch.randint(1000 % vocab, vocab - 1, (batch, length), device=device)
    data = {"input_ids": ids}

    def ours_prefill():
        cache = ours.new_cache(batch, length + 1)
        return ours.prefill(ours.prepare(data), cache)

    t_pre = timed(ours_prefill, device, repeats)
    t_pre_hf = timed(lambda: hf(input_ids=ids, logits_to_keep=1), device, repeats)
    t_gen = timed(lambda: ours.generate(data, max_new_tokens=new, stop_token_ids=()), device, 1)
    t_gen_hf = timed(lambda: hf.generate(input_ids=ids, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                                         eos_token_id=None, pad_token_id=0), device, 1)
    dec, dec_hf = max(t_gen - t_pre, 1e-9), max(t_gen_hf - t_pre_hf, 1e-9)
    steps = batch * (new - 1)  # the first new token comes from the prefill
    return dict(batch=batch, prompt_tokens=length, new_tokens=new, layers=layers,
                ours_prefill_tokens_per_s=round(batch * length / t_pre),
                peer_prefill_tokens_per_s=round(batch * length / t_pre_hf),
                prefill_ratio=round(t_pre_hf / t_pre, 3),
                ours_decode_tokens_per_s=round(steps / dec, 1), peer_decode_tokens_per_s=round(steps / dec_hf, 1),
                decode_ratio=round(dec_hf / dec, 3))


ISAAC_VISION = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                    num_patches=256, patch_size=16)
ISAAC_SMALL = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2,
                   num_patches=64, patch_size=16)


def build_isaac(small: bool, device: torch.device, dtype: torch.dtype):
    """transformers' ``Siglip2VisionModel`` (SDPA, no head) and our Isaac tower with the same weights."""
    from tests._torchvision import import_torchvision

    import_torchvision()
    from transformers import Siglip2VisionConfig, Siglip2VisionModel

    from mmprep.models import isaac

    raw = ISAAC_SMALL if small else ISAAC_VISION
    cfg = Siglip2VisionConfig(**raw, vision_use_head=False, hidden_act="gelu_pytorch_tanh")
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        hf = Siglip2VisionModel(cfg).to(dtype).eval()
    ours_cfg = isaac.VisionConfig(hidden_size=raw["hidden_size"], intermediate_size=raw["intermediate_size"],
                                  num_layers=raw["num_hidden_layers"], num_heads=raw["num_attention_heads"],
                                  num_patches=raw["num_patches"], patch_size=raw["patch_size"])
    with torch.device("meta"):
        ours = isaac.VisionTower(ours_cfg)
    ours.load_state_dict(hf.state_dict(), strict=True, assign=True)
    return hf, ours.eval(), ours_cfg


def isaac_flops(grids: list[tuple[int, int]], v) -> float:
    n = sum(h * w for h, w in grids)
    d, i = v.hidden_size, v.intermediate_size
    per_patch = 2 * (v.patch_dim * d + v.num_layers * (4 * d * d + 2 * d * i))
    attn = sum(4 * (h * w) ** 2 * d for h, w in grids) * v.num_layers
    return float(n * per_patch + attn)


def bench_isaac_vision(hf, ours, v, grids, device, dtype, repeats) -> dict:
    sizes = [h * w for h, w in grids]
    n, longest = sum(sizes), max(sizes)
    packed = torch.randn(n, v.patch_dim, device=device, dtype=dtype)
    padded = torch.zeros(len(grids), longest, v.patch_dim, device=device, dtype=dtype)
    mask = torch.zeros(len(grids), longest, dtype=torch.int64, device=device)
    for b, rows in enumerate(packed.split(sizes)):
        padded[b, : len(rows)], mask[b, : len(rows)] = rows, 1
    shapes = torch.tensor(grids, device=device)

    def peer():
        return hf(pixel_values=padded, pixel_attention_mask=mask, spatial_shapes=shapes).last_hidden_state

    with torch.inference_mode():
        diff = (ours.encode(packed, grids) - peer()[mask.bool()]).abs().max()
    t_ours = timed(lambda: ours.encode(packed, grids), device, repeats)
    t_peer = timed(peer, device, repeats)
    flops = isaac_flops(grids, v)
    return dict(images=len(grids), patches=n, max_patches_per_image=longest, ours_s=round(t_ours, 5),
                peer_s=round(t_peer, 5), ours_patches_per_s=round(n / t_ours), peer_patches_per_s=round(n / t_peer),
                ours_tflops=round(flops / t_ours / 1e12, 3), peer_tflops=round(flops / t_peer / 1e12, 3),
                ratio=round(t_peer / t_ours, 3), max_abs_diff=float(diff))


def main_isaac(args, device: torch.device, dtype: torch.dtype) -> dict:
    import mmprep.models as mm

    hf, ours, v = build_isaac(args.small, device, dtype)
    if args.compile:
        for layer in ours.encoder.layers:
            layer.forward = torch.compile(layer.forward, dynamic=True)
    if args.small:
        grids_a, grids_b = [(8, 8)] * 8, [(8, 12), (12, 4), (4, 6)]
    else:
        grids_a = [(32, 32)] * 256
        grids_b = [(96, 64), (64, 96), (78, 78), (48, 128), (40, 60), (32, 32), (16, 24), (24, 40)]
    return dict(stage="model", model="isaac-vision", small=args.small, device=str(device),
                device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else
                platform.processor() or platform.machine(),
                dtype=str(dtype).removeprefix("torch."), attention_backend=mm.attention_backend(device),
                compiled=args.compile,
                isaac_a=bench_isaac_vision(hf, ours, v, grids_a, device, dtype, args.repeats),
                isaac_b=bench_isaac_vision(hf, ours, v, grids_b, device, dtype, args.repeats),
                versions=dict(torch=torch.__version__, transformers=__import__("transformers").__version__,
                              python=platform.python_version()))


# -- GLM-4.5V's MoE decoder and Nemotron (RADIO + NemotronH): checkpoints saved by transformers, loaded by mmprep


def header(args, model: str, device: torch.device, dtype: torch.dtype) -> dict:
    import mmprep.models as mm

    return dict(stage="model", model=model, small=args.small, device=str(device),
                device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else
                platform.processor() or platform.machine(),
                dtype=str(dtype).removeprefix("torch."), attention_backend=mm.attention_backend(device))


def versions() -> dict:
    return dict(torch=torch.__version__, transformers=__import__("transformers").__version__,
                python=platform.python_version())


def construct(cls, cfg, device: torch.device, dtype: torch.dtype):
    """transformers' model with its own random init, SDPA everywhere, moved to ``dtype``."""
    for c in [cfg] + [getattr(cfg, k) for k in ("text_config", "vision_config") if getattr(cfg, k, None) is not None]:
        c._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        return randomize(cls(cfg)).to(dtype).eval()


def randomize(model):
    """Weights of a trained model's scale (transformers' init leaves logits near zero and some
    projections zero, which would hide any difference): N(0, 0.5/sqrt(fan_in)) matrices, norms near
    1, a non-zero router correction bias, Mamba A/D/dt in their real ranges; layer scales 1 (C-RADIO
    has none)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_scale" in name:
                p.fill_(1.0)
            elif name.endswith("A_log"):
                p.copy_(torch.log(torch.rand_like(p) * 4 + 0.5))
            elif name.endswith("dt_bias"):
                p.copy_(torch.log(torch.expm1(torch.rand_like(p) * 0.0998 + 0.0002)))
            elif name.endswith(".D") or ("norm" in name and p.ndim == 1 and name.endswith("weight")):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0, 0.5 / p.shape[-1] ** 0.5 if p.ndim > 1 else 0.05)
        for name, b in model.named_buffers():
            if "e_score_correction_bias" in name:
                b.copy_(0.1 * torch.randn_like(b))
    return model


def save_and_load(hf, device: torch.device, dtype: torch.dtype, drop: str | None = None):
    """``save_pretrained`` to a temp dir (tensors whose name holds ``drop`` removed: transformers-only
    ones), then ``mmprep.models.load``: both models hold the very same weights."""
    import tempfile

    from safetensors.torch import load_file, save_file

    import mmprep.models as mm

    with tempfile.TemporaryDirectory(prefix="mmprep_bench_") as d:
        hf.save_pretrained(d)
        if drop:
            for f in Path(d).glob("*.safetensors"):
                state = load_file(f)
                kept = {k: v for k, v in state.items() if drop not in k}
                if len(kept) < len(state):
                    save_file(kept, f, metadata={"format": "pt"})
                del state, kept
        return mm.load(d, device=device, dtype=dtype)


def logit_diff(hf_forward, ours, vocab: int, device: torch.device, length: int = 32) -> float:
    """max |logit difference| on one short random prompt (full forward, every position)."""
    ids = torch.randint(3, vocab - 1, (1, length), generator=torch.Generator().manual_seed(7)).to(device)
    with torch.inference_mode():
        return float((ours({"input_ids": ids}).logits.float() - hf_forward(input_ids=ids).logits.float()).abs().max())


def decoder_workload(small: bool) -> dict:
    return dict(batch=2, length=64, new=8) if small else dict(batch=8, length=2048, new=64)


GLM_MOE_TEXT = dict(vocab_size=151424, hidden_size=4096, intermediate_size=10944, num_attention_heads=96,
                    num_key_value_heads=8, head_dim=128, moe_intermediate_size=1408, n_routed_experts=128,
                    num_experts_per_tok=8, n_shared_experts=1, n_group=1, topk_group=1, first_k_dense_replace=1,
                    routed_scaling_factor=1.0, norm_topk_prob=True, attention_bias=True,
                    max_position_embeddings=65536,
                    rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.5,
                                         mrope_section=[8, 12, 12]))
GLM_MOE_SMALL = dict(GLM_MOE_TEXT, vocab_size=512, hidden_size=64, intermediate_size=96, num_attention_heads=4,
                     num_key_value_heads=2, head_dim=24, moe_intermediate_size=32, n_routed_experts=16,
                     num_experts_per_tok=4, n_group=4, topk_group=2, max_position_embeddings=4096,
                     rope_parameters=dict(GLM_MOE_TEXT["rope_parameters"], mrope_section=[2, 2, 2]))
GLM_MOE_VISION = dict(depth=1, hidden_size=32, num_heads=2, intermediate_size=48, out_hidden_size=64, image_size=56,
                      patch_size=14)  # tiny: the decoder is measured


def main_glm_moe(args, device: torch.device, dtype: torch.dtype) -> dict:
    """GLM-4.5V's MoE decoder (real widths, ``--decoder-layers`` layers: the first dense, the rest MoE)."""
    from tests._torchvision import import_torchvision

    import_torchvision()
    from transformers import Glm4vMoeConfig, Glm4vMoeForConditionalGeneration

    layers = args.decoder_layers or 2
    text = dict(GLM_MOE_SMALL if args.small else GLM_MOE_TEXT, num_hidden_layers=layers)
    hf = construct(Glm4vMoeForConditionalGeneration, Glm4vMoeConfig(text_config=text, vision_config=GLM_MOE_VISION),
                   device, dtype)
    ours = save_and_load(hf, device, dtype)
    if args.compile:
        import mmprep.models as mm

        mm.compile_blocks(ours)
    diff = logit_diff(hf, ours, text["vocab_size"], device)
    dec = decoder_workload(args.small)
    params = sum(p.numel() for p in ours.language_model.parameters()) + ours.lm_head.weight.numel()
    decoder = bench_decoder(hf, ours, dec["batch"], dec["length"], dec["new"], device, args.repeats)
    return dict(header(args, "glm-4.5v-moe-decoder", device, dtype), compiled=args.compile,
                inputs=dict(dec, layers=layers, hidden=text["hidden_size"], experts=text["n_routed_experts"],
                            experts_per_token=text["num_experts_per_tok"], decoder_params=params),
                ours="mmprep.models.load of the saved checkpoint",
                peer="transformers Glm4vMoeForConditionalGeneration (SDPA)",
                ratio=dict(prefill=decoder["prefill_ratio"], decode=decoder["decode_ratio"]),
                decoder=dict(decoder, max_abs_diff=diff), max_abs_diff=diff,
                peer_experts_implementation=getattr(hf.config.text_config, "_experts_implementation", None),
                versions=versions())


NEMOTRON_KINDS = {"M": "linear_attention", "*": "full_attention", "-": "mlp", "E": "moe"}
# Nemotron-3-Nano-Omni's backbone widths (Nemotron-3-Nano-30B-A3B, /work/shared/docs/CHECKPOINTS.md:
# hidden, Mamba, attention, 128 experts, 6 per token). Not listed there, recalled from that model's
# config and to be checked: expert 1856 / shared 3712 widths, scale 2.5. The "-" MLP layer (absent
# there, the 12B's kind) at 4x hidden, the 12B's ratio. Widths for timing, not a checkpoint claim.
NEMOTRON_TEXT = dict(vocab_size=131072, hidden_size=2688, num_attention_heads=32, num_key_value_heads=2,
                     head_dim=128, intermediate_size=10752, mamba_num_heads=64, mamba_head_dim=64, ssm_state_size=128,
                     n_groups=8, chunk_size=128, conv_kernel=4, n_routed_experts=128, num_experts_per_tok=6,
                     moe_intermediate_size=1856, moe_shared_expert_intermediate_size=3712, n_group=1, topk_group=1,
                     routed_scaling_factor=2.5, max_position_embeddings=8192, eos_token_id=2)
NEMOTRON_SMALL = dict(NEMOTRON_TEXT, vocab_size=300, hidden_size=64, num_attention_heads=4, head_dim=16,
                      intermediate_size=96, mamba_num_heads=4, mamba_head_dim=16, ssm_state_size=8, n_groups=2,
                      chunk_size=8, n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                      moe_shared_expert_intermediate_size=48, n_group=2)
RADIO_H = dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, max_img_size=2048, patch_size=16,
               num_cls_tokens=3, num_registers=7, video_temporal_patch_size=2)  # C-RADIO ViT-H (12B and Omni)
RADIO_SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, max_img_size=128, patch_size=16,
                   num_cls_tokens=2, num_registers=3, video_temporal_patch_size=2)


def bench_radio(run_ours, run_peer, patches: int, device, repeats: int, **inputs) -> dict:
    with torch.inference_mode():
        diff = (run_ours().float() - run_peer().float()).abs().max()
    t_ours = timed(run_ours, device, repeats)
    t_peer = timed(run_peer, device, repeats)
    return dict(inputs, patches=patches, ours_s=round(t_ours, 5), peer_s=round(t_peer, 5),
                ours_patches_per_s=round(patches / t_ours), peer_patches_per_s=round(patches / t_peer),
                ratio=round(t_peer / t_ours, 3), max_abs_diff=float(diff))


def main_nemotron(args, device: torch.device, dtype: torch.dtype) -> dict:
    """RADIO (+ pixel shuffle + projector) on 12B-style tiles and Omni dynamic-size images, and the
    NemotronH decoder (``--pattern``, repeated ``--decoder-layers`` times), vs transformers' Omni."""
    import importlib.util

    from tests._torchvision import import_torchvision

    import_torchvision()
    from transformers.models import nemotron_h_omni

    from mmprep.models.radio import tiles_to_patches

    pattern = args.pattern * (args.decoder_layers or 1)
    text = dict(NEMOTRON_SMALL if args.small else NEMOTRON_TEXT, layers_block_type=[NEMOTRON_KINDS[c] for c in pattern])
    vision = RADIO_SMALL if args.small else RADIO_H
    cfg = nemotron_h_omni.NemotronH_Omni_Reasoning_V3_Config(
        text_config=text, vision_config=vision, vision_hidden_size=vision["hidden_size"],
        projector_hidden_size=48 if args.small else 20480, image_token_id=18, video_token_id=19, video_pruning_rate=0.0)
    hf = construct(nemotron_h_omni.NemotronH_Omni_Reasoning_V3, cfg, device, dtype)
    ours = save_and_load(hf, device, dtype, drop="layer_scale")  # transformers-only (all 1 here)
    p = vision["patch_size"]
    if args.small:
        tile, n_tiles, grids = 64, 4, [(8, 6), (4, 8), (2, 2)]
    else:  # 64 tiles of 512x512; Omni images from 1024 to the 13312-patch cap, up to 2048 px a side
        tile, n_tiles, grids = 512, 64, [(128, 104), (96, 96), (64, 128), (80, 48), (40, 72), (32, 32)]
    g = torch.Generator().manual_seed(0)
    tiles = torch.randn(n_tiles, 3, tile, tile, generator=g).to(device, dtype)
    side = tile // p

    def ours_tiles():
        rows, tile_grids = tiles_to_patches(tiles, p)
        return ours.vision_features(rows, tile_grids)

    def peer_tiles():
        return hf.project_vision_features(hf.vision_model(tiles).features, side, side).reshape(-1, text["hidden_size"])

    n = sum(h * w for h, w in grids)
    rows = torch.randn(n, 3 * p * p, generator=g).to(device, dtype)
    grid_hw = torch.tensor(grids, device=device)

    def peer_dynamic():
        return torch.cat(list(hf.get_image_features(pixel_values=rows, image_grid_hw=grid_hw).pooler_output))

    tiles_res = bench_radio(ours_tiles, peer_tiles, n_tiles * side * side, device, args.repeats, tiles=n_tiles,
                            tile_px=tile)
    dynamic_res = bench_radio(lambda: ours.vision_features(rows, grids), peer_dynamic, n, device, args.repeats,
                              images=len(grids), max_patches_per_image=max(h * w for h, w in grids))
    lm, hf_lm = ours.language_model, hf.language_model
    diff = logit_diff(hf_lm, lm, text["vocab_size"], device)
    dec = decoder_workload(args.small)
    decoder = bench_decoder(hf_lm, lm, dec["batch"], dec["length"], dec["new"], device, args.repeats)
    return dict(header(args, "nemotron-radio-h", device, dtype),
                inputs=dict(dec, pattern=pattern, hidden=text["hidden_size"], experts=text["n_routed_experts"],
                            experts_per_token=text["num_experts_per_tok"], radio_layers=vision["num_hidden_layers"],
                            params=sum(q.numel() for q in ours.parameters())),
                ours="mmprep.models.load of the saved checkpoint (RADIO + pixel shuffle + mlp1; language_model)",
                peer="transformers NemotronH_Omni_Reasoning_V3 (SDPA; its language_model for the decoder)",
                ratio=dict(radio_tiles=tiles_res["ratio"], radio_dynamic=dynamic_res["ratio"],
                           prefill=decoder["prefill_ratio"], decode=decoder["decode_ratio"]),
                radio_tiles=tiles_res, radio_dynamic=dynamic_res, decoder=dict(decoder, max_abs_diff=diff),
                max_abs_diff=max(diff, tiles_res["max_abs_diff"], dynamic_res["max_abs_diff"]),
                peer_mamba_kernels=importlib.util.find_spec("mamba_ssm") is not None, versions=versions())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("glm4v", "isaac", "glm-moe", "nemotron"), default="glm4v")
    ap.add_argument("--small", action="store_true", help="tiny configs and inputs (CPU smoke run)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--dtype", default=None, help="default: bf16 on CUDA, fp32 on CPU")
    ap.add_argument("--decoder-layers", type=int, default=None,
                    help="decoder layers: glm4v 4; glm-moe 2 (one dense, then MoE); nemotron: pattern repeats, 1")
    ap.add_argument("--pattern", default="M*-EM",
                    help="nemotron: the decoder's layer kinds (M Mamba2, * attention, - MLP, E MoE)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fa3", action="store_true", help="switch torch's flash kernels to FA3 (Hopper)")
    ap.add_argument("--compile", action="store_true", help="torch.compile our repeated blocks (warm-up compiles)")
    ap.add_argument("--profile", action="store_true",
                    help="after timing, print torch.profiler's top kernels of our vision_a and decoder to stderr")
    args = ap.parse_args(argv)

    import mmprep.models as mm

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = mm.resolve_dtype(args.dtype, device)
    fa3 = mm.activate_hopper_flash("FA3") if args.fa3 else False
    if args.model in ("isaac", "glm-moe", "nemotron"):
        run = {"isaac": main_isaac, "glm-moe": main_glm_moe, "nemotron": main_nemotron}[args.model]
        print(json.dumps(dict(run(args, device, dtype), fa3=fa3)), flush=True)
        return
    hf, ours, cfg = build(args.small, args.decoder_layers or 4, device, dtype)
    if args.compile:
        mm.compile_blocks(ours)
    if args.small:
        sizes_a, sizes_b = [(56, 56)] * 8, [(112, 168), (224, 112), (56, 84)]
        dec = dict(batch=2, length=64, new=8)
    else:
        sizes_a = [(308, 308)] * 256
        sizes_b = [(2408, 2408), (2408, 1204), (1932, 1092), (1540, 2016), (1092, 812), (812, 1092), (644, 644)]
        dec = dict(batch=8, length=2048, new=64)
    result = dict(
        stage="model", model="glm-4.1v", small=args.small, device=str(device),
        device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        dtype=str(dtype).removeprefix("torch."), attention_backend=mm.attention_backend(device), fa3=fa3,
        compiled=args.compile,
        vision_a=bench_vision(hf, ours, cfg, sizes_a, device, dtype, args.repeats),
        vision_b=bench_vision(hf, ours, cfg, sizes_b, device, dtype, args.repeats),
        decoder=bench_decoder(hf, ours, dec["batch"], dec["length"], dec["new"], device, args.repeats),
        versions=dict(torch=torch.__version__, transformers=__import__("transformers").__version__,
                      python=platform.python_version()),
    )
    print(json.dumps(result), flush=True)
    if args.profile:
        profile(ours, cfg, sizes_a, dec, device, dtype)
        profile_vision(ours, cfg, sizes_b, device, dtype)


def profile_vision(ours, cfg, sizes, device, dtype) -> None:
    """The top kernels of one vision_b forward (large images: attention-bound)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    grid = images_grid(sizes)
    pix = torch.randn(int(grid.prod(-1).sum()), cfg.vision.patch_dim, device=device, dtype=dtype)
    with torch.inference_mode():
        ours.visual(pix, grid)
        with torch_profile(activities=acts) as prof:
            ours.visual(pix, grid)
            if device.type == "cuda":
                torch.cuda.synchronize()
    sort = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    print("== profile vision_b ==", file=sys.stderr)
    print(prof.key_averages().table(sort_by=sort, row_limit=14, max_name_column_width=70), file=sys.stderr)


def profile(ours, cfg, sizes, dec: dict, device, dtype) -> None:
    """Where our time goes: the top kernels of one vision_a forward and one short generation."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    grid = images_grid(sizes)
    pix = torch.randn(int(grid.prod(-1).sum()), cfg.vision.patch_dim, device=device, dtype=dtype)
    ids = torch.randint(1000 % ours.cfg.text.vocab_size, ours.cfg.text.vocab_size - 1,
                        (dec["batch"], dec["length"]), device=device)
    sort = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    for name, fn in (("vision_a", lambda: ours.visual(pix, grid)),
                     ("generate", lambda: ours.generate({"input_ids": ids}, max_new_tokens=8, stop_token_ids=()))):
        with torch.inference_mode():
            fn()
            with torch_profile(activities=acts) as prof:
                fn()
                if device.type == "cuda":
                    torch.cuda.synchronize()
        print(f"== profile {name} ==", file=sys.stderr)
        print(prof.key_averages().table(sort_by=sort, row_limit=18, max_name_column_width=70), file=sys.stderr)


if __name__ == "__main__":
    main()
