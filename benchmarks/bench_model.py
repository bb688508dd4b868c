"""Benchmark a model layer against transformers, measured in the same run.

    python benchmarks/bench_model.py                 # GLM-4.1V, GPU: real vision config, bf16
    python benchmarks/bench_model.py --small         # tiny sizes, CPU fp32, < 1 minute
    python benchmarks/bench_model.py --model isaac   # Isaac's SigLIP2 tower vs Siglip2VisionModel

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
    vocab = ours.cfg.text.vocab_size
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
    return dict(batch=batch, prompt_tokens=length, new_tokens=new, layers=ours.cfg.text.num_layers,
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("glm4v", "isaac"), default="glm4v")
    ap.add_argument("--small", action="store_true", help="tiny configs and inputs (CPU smoke run)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--dtype", default=None, help="default: bf16 on CUDA, fp32 on CPU")
    ap.add_argument("--decoder-layers", type=int, default=4)
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
    if args.model == "isaac":
        print(json.dumps(dict(main_isaac(args, device, dtype), fa3=fa3)), flush=True)
        return
    hf, ours, cfg = build(args.small, args.decoder_layers, device, dtype)
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
