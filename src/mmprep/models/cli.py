"""``mmprep generate``: run a local checkpoint on images/videos/audio and a prompt, streaming tokens.

    mmprep generate --model /ckpt/GLM-4.1V-9B-Thinking --image cat.jpg --prompt "Describe it."

The checkpoint directory holds ``config.json``, the safetensors, the processor JSON files and
``tokenizer.json``. Unless ``--raw`` is given, the prompt gets one media placeholder per
``--image``/``--video``/``--audio`` in front (when it has none itself) and is wrapped in the
family's chat turn (:data:`CHAT_TURNS`; a family without a fixed turn uses the checkpoint's own
chat template when it ships one, else the bare text).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ..errors import MmprepError


@dataclass(frozen=True)
class ChatTurn:
    """How ``generate`` builds a family's prompt: the chat turn around the user content (``None``:
    the checkpoint's chat template, else bare) and, for one image / video / audio clip, the
    placeholder text and the token whose presence in the prompt means it places its own
    placeholders (``None``: the family takes no such media)."""

    template: str | None
    image: Any  # spec -> (placeholder text, marker token)
    video: Any
    audio: Any = None


CHAT_TURNS = {  # family.name -> ChatTurn
    "glm4v": ChatTurn("[gMASK]<sop><|user|>\n{content}<|assistant|>\n",
                      lambda s: (f"{s.image_start_token}{s.image_token}{s.image_end_token}", s.image_token),
                      lambda s: (f"{s.video_start_token}{s.video_token}{s.video_end_token}", s.video_token)),
    "isaac": ChatTurn("<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n",
                      lambda s: (s.vision_token, s.vision_token), None),
    "nemotron": ChatTurn(None, lambda s: (s.img_context_token,) * 2, lambda s: (s.video_context_token,) * 2,
                         lambda s: (s.audio_context_token,) * 2),  # Omni: <so_embedding> per clip
}


def add_generate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``generate`` on an ``argparse`` subparsers object; returns the new parser."""
    p = subparsers.add_parser("generate", help="generate text with a local checkpoint (needs torch)")
    p.add_argument("--model", required=True, help="checkpoint directory (config.json, safetensors, tokenizer.json)")
    p.add_argument("--image", action="append", default=[], help="image file (repeatable)")
    p.add_argument("--video", action="append", default=[], help="video file (repeatable; GLM: at most one)")
    p.add_argument("--audio", action="append", default=[], help="audio file (repeatable; Nemotron Omni)")
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


def build_prompt(family: Any, prompt: str, n_images: int, n_videos: int, raw: bool = False,
                 directory: Path | None = None, n_audios: int = 0) -> str:
    """The text handed to the processor: placeholders for the media, wrapped in the family's chat turn."""
    if raw:
        return prompt
    turn = CHAT_TURNS.get(family.name)
    if turn is None:
        raise MmprepError(f"generate has no chat turn for the {family.name} family; use --raw")
    s = family.spec
    media = ""
    for kind, count, marks in (("images", n_images, turn.image), ("videos", n_videos, turn.video),
                               ("audio", n_audios, turn.audio)):
        if not count:
            continue
        if marks is None:
            raise MmprepError(f"the {family.name} family takes no {kind}")
        text, mark = marks(s)
        if mark not in prompt:
            media += text * count
    content = media + prompt
    if turn.template is not None:
        return turn.template.format(content=content)
    template = _chat_template(directory) if directory is not None else None
    return content if template is None else _render(template, content)


def _chat_template(directory: Path) -> str | None:
    """The checkpoint's chat template (``chat_template.jinja``, ``chat_template.json`` or ``tokenizer_config.json``)."""
    jinja = directory / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    for name in ("chat_template.json", "tokenizer_config.json"):
        f = directory / name
        if f.is_file():
            try:
                template = json.loads(f.read_text()).get("chat_template")
            except ValueError:
                continue
            if isinstance(template, str):
                return template
    return None


def _render(template: str, content: str) -> str:
    """One user turn through the checkpoint's Jinja chat template, with the generation prompt."""
    try:  # sandboxed: a checkpoint's template cannot run code
        from jinja2.exceptions import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        raise MmprepError("the checkpoint's chat template needs jinja2 (pip install 'mmprep[torch]'); "
                          "or pass --raw with a full prompt") from None

    def raise_exception(message: str):
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(template).render(messages=[{"role": "user", "content": content}],
                                                add_generation_prompt=True)
    except TemplateError as e:
        raise MmprepError(f"the checkpoint's chat template failed: {e}") from None


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
        text = build_prompt(family, args.prompt, len(args.image), len(args.video), args.raw, directory,
                            n_audios=len(args.audio))
        batch = family.process(text, images=args.image or None, videos=args.video or None,
                               audios=args.audio or None, tokenizer=tok, return_tensors="pt")
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
