"""The ``mmprep`` command line.

    mmprep count --model glm-4.1v photos/*.jpg          # a table, headers only (no decode)
    mmprep count --model isaac --json a.png b.jpg       # one JSON object per file, then a total
    mmprep count --model glm-4.1v --manifest data.jsonl --out counts.parquet   # a dataset
    mmprep count --model nemotron-3-nano-omni --engine transformers clip.mp4   # another engine's rules
    mmprep plan --model nemotron-nano-vl --height 1080 --width 1920
    mmprep explain --model glm-4.6v clip.mp4 --engines  # why a count is what it is; per engine
    mmprep models                                       # the known model names
    mmprep generate --model DIR --image x.jpg --prompt "Describe it."   (needs torch)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from .engines import DEFAULT_ENGINE, ENGINES
from .errors import MmprepError
from .loading import MODEL_NAMES, load

VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".ts", ".flv"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".opus", ".aiff", ".aif", ".m4a"}
COUNT_KEYS = ("file", "height", "width", "resized_height", "resized_width", "grid", "num_tokens")


def _row(file: str, **values: Any) -> dict[str, Any]:
    row = {key: None for key in COUNT_KEYS}
    row["file"] = file
    row.update(values)
    return row


def count_file(family: Any, path: str) -> dict[str, Any]:
    """Plan one file from its header (image), container (video) or audio header.

    Raises :class:`MmprepError` for unreadable or unplannable files.
    """
    suffix = Path(path).suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        plan = family.plan_video(path)  # a family without video raises UnsupportedModalityError
        meta = plan.metadata
        return _row(path, height=getattr(meta, "height", None), width=getattr(meta, "width", None),
                    resized_height=plan.height, resized_width=plan.width, grid=list(plan.grid),
                    num_tokens=plan.num_tokens)
    if suffix in AUDIO_SUFFIXES:
        plan = family.plan_audio(path)
        return _row(path, grid=[plan.num_frames], num_tokens=plan.num_tokens)
    from .io.image import probe_image  # Pillow reads the header only

    height, width = probe_image(path)
    plan = family.plan_image(height, width)
    return _row(path, height=height, width=width, resized_height=plan.height,
                resized_width=plan.width, grid=list(plan.grid), num_tokens=plan.num_tokens)


def _progress(items: Sequence[str], enabled: bool) -> Iterable[str]:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc="planning", unit="file", file=sys.stderr, leave=False)


def _table(rows: list[dict[str, Any]], out: TextIO) -> None:
    headers = ("file", "size", "resized", "grid", "tokens")

    def cells(r: dict[str, Any]) -> tuple[str, ...]:
        if "error" in r:
            return (r["file"], "-", "-", "-", f"error: {r['error']}")
        size = f"{r['height']}x{r['width']}" if r["height"] is not None else "-"
        resized = f"{r['resized_height']}x{r['resized_width']}" if r["resized_height"] is not None else "-"
        grid = "x".join(map(str, r["grid"])) if r["grid"] else "-"
        return (r["file"], size, resized, grid, str(r["num_tokens"]))

    body = [tuple(_printable(c) for c in cells(r)) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in body)) if body else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line, file=out)
    for c in body:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths)).rstrip(), file=out)


def _printable(text: str) -> str:
    """One table cell on one line: newlines, tabs and other control characters are escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def cmd_count(args: argparse.Namespace, out: TextIO) -> int:
    """Exit status 0 when every file / record was counted, 1 when any failed."""
    if args.manifest is not None:
        from .data.cli import count_manifest

        return count_manifest(args, out)
    if not args.files:
        print("mmprep: error: count needs files or --manifest FILE", file=sys.stderr)
        return 2
    family = load(args.model, engine=args.engine)
    rows: list[dict[str, Any]] = []
    total = errors = 0
    show_bar = not args.no_progress and len(args.files) >= 20 and sys.stderr.isatty()
    for path in _progress(args.files, show_bar):
        try:
            row = count_file(family, path)
            total += row["num_tokens"]
        except MmprepError as e:
            row = _row(path, error=str(e))
            errors += 1
        except Exception as e:  # noqa: BLE001 - one bad file must not stop a long run
            row = _row(path, error=f"{type(e).__name__}: {e}")
            errors += 1
        if args.json:
            print(json.dumps(row), file=out, flush=True)
        else:
            rows.append(row)
    summary = {"total_tokens": total, "files": len(args.files), "errors": errors}
    if args.json:
        print(json.dumps(summary), file=out)
    else:
        _table(rows, out)
        print(f"total: {total} tokens in {len(args.files)} files ({errors} errors)", file=out)
    return 1 if errors else 0


def cmd_plan(args: argparse.Namespace, out: TextIO) -> int:
    family = load(args.model)
    plan = family.plan_image(args.height, args.width)
    row = {
        "height": plan.orig_height, "width": plan.orig_width, "resized_height": plan.height,
        "resized_width": plan.width, "grid": list(plan.grid), "num_tokens": plan.num_tokens,
    }
    if plan.tiles is not None:
        row["tiles"] = {"cols": plan.tiles.cols, "rows": plan.tiles.rows,
                        "thumbnail": plan.tiles.thumbnail, "num_tiles": plan.tiles.num_tiles}
    print(json.dumps(row), file=out)
    return 0


def build_parser(with_generate: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmprep", description="Exact multimodal token accounting.")
    sub = parser.add_subparsers(dest="command", required=True)
    names = ", ".join(MODEL_NAMES)

    p = sub.add_parser("count", help="tokens per media file, from headers only")
    p.add_argument("--model", required=True, help=f"{names}, an HF repo id or a checkpoint dir")
    p.add_argument("--engine", default=DEFAULT_ENGINE, choices=ENGINES,
                   help=f"whose rules to follow (default {DEFAULT_ENGINE}; docs/engines.md)")
    p.add_argument("--json", action="store_true", help="one JSON object per file, then a total")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--manifest", help="a dataset manifest (.jsonl or .parquet): counts per record")
    p.add_argument("--out", help="with --manifest: write per-record counts to .jsonl or .parquet")
    p.add_argument("--tokenizer", help="with --manifest: tokenizer.json (or its dir) to count records' text")
    p.add_argument("files", nargs="*")

    p = sub.add_parser("plan", help="resized size, grid and tokens of one image size")
    p.add_argument("--model", required=True, help=names)
    p.add_argument("--height", type=int, required=True, help="px")
    p.add_argument("--width", type=int, required=True, help="px")

    sub.add_parser("models", help="list the known model names")

    from .explain_cli import add_explain_parser

    add_explain_parser(sub)

    if with_generate:
        from .models.cli import add_generate_parser  # imports torch

        add_generate_parser(sub)
    else:  # keep `mmprep count` fast: torch loads only when `generate` is asked for
        sub.add_parser("generate", help="generate text with a local checkpoint (needs torch; see --help)")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    argv = list(sys.argv[1:] if argv is None else argv)
    with_generate = bool(argv) and argv[0] == "generate"
    if with_generate:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("mmprep: error: `generate` needs torch: pip install torch==2.13.0 safetensors", file=sys.stderr)
            return 2
    args = build_parser(with_generate).parse_args(argv)
    try:
        if args.command == "count":
            return cmd_count(args, out)
        if args.command == "plan":
            return cmd_plan(args, out)
        if args.command == "explain":
            from .explain_cli import cmd_explain

            return cmd_explain(args, out)
        if args.command == "models":
            print("\n".join(MODEL_NAMES), file=out)
            return 0
        if args.command == "generate":
            from .models.cli import run_generate

            return run_generate(args, out=out)
    except (MmprepError, OSError) as e:  # a bad model name, checkpoint or size: no traceback
        print(f"mmprep: error: {_printable(e)}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
