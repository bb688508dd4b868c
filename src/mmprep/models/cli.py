"""``mmprep generate``: run a local checkpoint on images/videos and a prompt, streaming tokens.

    mmprep generate --model /ckpt/GLM-4.1V-9B-Thinking --image cat.jpg --prompt "Describe it."

The checkpoint directory holds ``config.json``, the safetensors, the processor JSON files and
``tokenizer.json``. Unless ``--raw`` is given, the prompt is wrapped in the family's chat turn
and gets one media placeholder per ``--image``/``--video`` in front (when it has none itself).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from ..errors import MmprepError

# One chat turn per family (the checkpoints' chat templates, reduced to a single user turn) and
# the text that stands for one image / one video in it.
_TURNS = {
    "glm4v": "[gMASK]<sop><|user|>\n{content}<|assistant|>\n",
    "isaac": "<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n",
}


def _media_marks(spec: Any) -> dict[str, tuple[str, str]]:
    """``{kind: (text for one item, the token whose presence means the user placed them)}``."""
    if hasattr(spec, "image_start_token"):  # GLM: begin / token / end
        return {"image": (f"{spec.image_start_token}{spec.image_token}{spec.image_end_token}", spec.image_token),
                "video": (f"{spec.video_start_token}{spec.video_token}{spec.video_end_token}", spec.video_token)}
    if hasattr(spec, "vision_token"):  # Isaac: <image>
        return {"image": (spec.vision_token, spec.vision_token)}
    return {}


def add_generate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``generate`` on an ``argparse`` subparsers object; returns the new parser."""
    p = subparsers.add_parser("generate", help="generate text with a local checkpoint (needs torch)")
    p.add_argument("--model", required=True, help="checkpoint directory (config.json, safetensors, tokenizer.json)")
    p.add_argument("--image", action="append", default=[], help="image file (repeatable)")
    p.add_argument("--video", action="append", default=[], help="video file (at most one for GLM)")
    p.add_argument("--prompt", default="", help="user text")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    p.add_argument("--dtype", default=None, help="bf16 / fp16 / fp32 (default: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--raw", action="store_true", help="use the prompt as is (no chat turn, no added placeholders)")
    p.set_defaults(func=run_generate)
    return p


def build_prompt(family: Any, prompt: str, n_images: int, n_videos: int, raw: bool = False) -> str:
    """The text handed to the processor: placeholders for the media, wrapped in the family's chat turn."""
    if raw:
        return prompt
    if family.name not in _TURNS:
        raise MmprepError(f"generate has no chat turn for the {family.name} family; pass --raw with a full prompt")
    marks = _media_marks(family.spec)
    media = ""
    for kind, count in (("image", n_images), ("video", n_videos)):
        if not count:
            continue
        if kind not in marks:
            raise MmprepError(f"the {family.name} family takes no {kind}s")
        text, token = marks[kind]
        if token not in prompt:
            media += text * count
    return _TURNS[family.name].format(content=media + prompt)


def _tokenizer(directory: Path):
    from tokenizers import Tokenizer

    path = directory / "tokenizer.json"
    if not path.is_file():
        raise MmprepError(f"{directory} has no tokenizer.json")
    return Tokenizer.from_file(str(path))


def run_generate(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Load, process, generate and stream the decoded text to ``out`` (stdout); returns an exit code."""
    import mmprep

    out = out or sys.stdout
    try:
        from . import load

        directory = Path(args.model)
        family = mmprep.load(directory)
        tok = _tokenizer(directory)
        text = build_prompt(family, args.prompt, len(args.image), len(args.video), args.raw)
        batch = family.process(text, images=args.image or None, videos=args.video or None, tokenizer=tok,
                               return_tensors="pt")
        model = load(directory, device=args.device, dtype=args.dtype)
        stream = _Stream(tok, out, model.stop_token_ids)
        model.generate(batch, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                       top_p=args.top_p, top_k=args.top_k, on_tokens=stream)
        stream.finish()
        out.write("\n")
        out.flush()
        return 0
    except MmprepError as e:
        print(f"mmprep generate: {e}", file=sys.stderr)
        return 2


class _Stream:
    """Prints the text of row 0 as tokens arrive (decodes the whole tail so multi-byte text stays whole)."""

    def __init__(self, tokenizer: Any, out: TextIO, stops: tuple[int, ...] = ()):
        self.tok, self.out, self.stops = tokenizer, out, set(stops)
        self.ids: list[int] = []
        self.shown, self.done = "", False

    def __call__(self, step: int, ids: Any) -> None:
        if self.done:
            return
        self.ids.append(int(ids[0]))
        self.done = self.ids[-1] in self.stops
        text = self.tok.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd") and not self.done:  # an incomplete UTF-8 sequence: wait for the next token
            return
        self._show(text)

    def _show(self, text: str) -> None:
        self.out.write(text[len(self.shown):])
        self.out.flush()
        self.shown = text

    def finish(self) -> None:
        """Print what was held back: generation ended inside a multi-byte sequence."""
        if self.ids:
            self._show(self.tok.decode(self.ids, skip_special_tokens=True))
