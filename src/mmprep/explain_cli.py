"""``mmprep explain``: print the account of each file's count, or compare engines.

    mmprep explain --model glm-4.6v clip.mp4 photo.jpg        # every step, readable
    mmprep explain --model isaac --json 1080x1920             # sizes as HxW need no file
    mmprep explain --model nemotron-3-nano-omni --engines clip.mp4 speech.wav
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any, TextIO

from .engines import ENGINES, rule_variants
from .explain import render, to_json
from .loading import MODEL_NAMES, load

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".ts", ".flv"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".opus", ".aiff", ".aif", ".m4a"}
_SIZE = re.compile(r"^(\d+)x(\d+)$")


def add_explain_parser(sub: Any) -> None:
    p = sub.add_parser("explain", help="why each file costs what it costs; --engines compares engines")
    p.add_argument("--model", required=True, help=f"{', '.join(MODEL_NAMES)}, an HF repo id or a checkpoint dir")
    p.add_argument("--engine", default=None, choices=ENGINES, help="whose rules to follow (default vllm-seed)")
    p.add_argument("--engines", action="store_true", help="the count under every engine and the rule that differs")
    p.add_argument("--json", action="store_true", help="JSON instead of text")
    p.add_argument("files", nargs="+", help="images, videos, audio files, or image sizes as HxW (px)")


def _media(files: list[str]) -> dict[str, list[Any]]:
    """Files (and HxW sizes) by modality, in order: images as (h, w) from their headers."""
    from .io.image import probe_image

    out: dict[str, list[Any]] = {"images": [], "videos": [], "audios": []}
    for f in files:
        m = _SIZE.match(f)
        suffix = Path(f).suffix.lower()
        if m:
            out["images"].append((int(m.group(1)), int(m.group(2))))
        elif suffix in VIDEO_SUFFIXES:
            out["videos"].append(f)
        elif suffix in AUDIO_SUFFIXES:
            out["audios"].append(f)
        else:
            out["images"].append(tuple(probe_image(f)))
    return out


def _counts(family: Any, media: dict[str, list[Any]]) -> list[int]:
    e = family.explain("", **media)
    return [item.num_tokens for item in e.items]


def _names(files: list[str]) -> list[str]:
    """Files in the order explain() reports them: images, videos, audios."""
    groups: dict[str, list[str]] = {"image": [], "video": [], "audio": []}
    for f in files:
        suffix = Path(f).suffix.lower()
        kind = "video" if suffix in VIDEO_SUFFIXES and not _SIZE.match(f) else (
            "audio" if suffix in AUDIO_SUFFIXES else "image")
        groups[kind].append(f)
    return groups["image"] + groups["video"] + groups["audio"]


def compare_engines(model: str, files: list[str]) -> dict[str, Any]:
    """Counts per file under every engine, and per engine the rules that change them."""
    media = _media(files)
    names = _names(files)
    out: dict[str, Any] = {"files": names, "engines": {}, "rules": {}}
    base = load(model)
    seed = _counts(base, media)
    for engine in ENGINES:
        counts = _counts(load(model, engine=engine), media)
        out["engines"][engine] = {"counts": counts, "total": sum(counts)}
        differing = []
        for rule, variant in rule_variants(base, engine):
            changed = _counts(variant, media) != seed
            if changed or not rule.counts:
                differing.append({"rule": rule.name, "changes_counts": changed, "what": rule.what,
                                  "this_engine": rule.behaviour.get(engine, "")})
        out["rules"][engine] = differing
    return out


def _print_engines(result: dict[str, Any], out: TextIO) -> None:
    headers = ("file", *ENGINES)
    rows = [(f, *(str(result["engines"][e]["counts"][i]) for e in ENGINES)) for i, f in enumerate(result["files"])]
    rows.append(("total", *(str(result["engines"][e]["total"]) for e in ENGINES)))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)), file=out)
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip(), file=out)
    for engine in ENGINES[1:]:
        for r in result["rules"][engine]:
            mark = "changes the counts" if r["changes_counts"] else "same counts (text/pixels only)"
            print(f"{engine}: {r['rule']} - {mark}: {r['what']}; {engine}: {r['this_engine']}", file=out)


def cmd_explain(args: argparse.Namespace, out: TextIO) -> int:
    if args.engines:
        result = compare_engines(args.model, args.files)
        if args.json:
            print(json.dumps(result), file=out)
        else:
            _print_engines(result, out)
        return 0
    family = load(args.model, engine=args.engine)
    media = _media(args.files)
    n = sum(len(v) for v in media.values())
    if n == 1:
        kind, [item] = next((k, v) for k, v in media.items() if v)
        e = family.explain_image(*item) if kind == "images" else (
            family.explain_video(item) if kind == "videos" else family.explain_audio(item))
    else:
        e = family.explain("", **media)
    print(json.dumps(to_json(e)) if args.json else render(e), file=out)
    return 0
