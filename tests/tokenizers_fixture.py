"""Small byte-level BPE tokenizers holding each family's special tokens, built in code.

They are trained on a tiny corpus (digits, "Frame ... sampled at ... seconds", chat words) so
separators and timestamps split into several tokens, as with the real tokenizers. No network.
"""

from __future__ import annotations

import functools

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

CORPUS = [
    "Frame 1 sampled at 0.00 seconds: ", "Frame 12 sampled at 3.47 seconds: ",
    "Describe the image and the video in detail.", "What is in this picture? A cat on a mat.",
    "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 30 40 50 60 99 100 1000",
    "0.0 seconds 1.0 seconds 2.5 seconds 12.0 seconds", "user assistant system hello world",
    "The quick brown fox jumps over the lazy dog. <not special> image video audio.",
] * 4

GLM_SPECIAL = [
    "<|endoftext|>", "[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>",
    "<|begin_of_image|>", "<|end_of_image|>", "<|begin_of_video|>", "<|end_of_video|>",
    "<|image|>", "<|video|>",
]
ISAAC_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|image_pad|>"]  # "<image>" is NOT one token
NEMOTRON_SPECIAL = [
    "<unk>", "<s>", "</s>", "<img>", "</img>", "<image>", "<video>", "<so_start>", "<so_end>",
    "<so_embedding>",
]


def _build(special: list[str], bos: str | None = None, vocab_size: int = 400) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    if bos is not None:  # adds a BOS with add_special_tokens=True, to test T17
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    return tok


@functools.lru_cache(maxsize=None)
def glm_tokenizer() -> Tokenizer:
    return _build(GLM_SPECIAL)


@functools.lru_cache(maxsize=None)
def isaac_tokenizer() -> Tokenizer:
    return _build(ISAAC_SPECIAL)


@functools.lru_cache(maxsize=None)
def nemotron_tokenizer() -> Tokenizer:
    return _build(NEMOTRON_SPECIAL, bos="<s>")


def hf_tokenizer(tok: Tokenizer, **special):
    """Wrap a tokenizer as a transformers PreTrainedTokenizerFast (for processor parity tests)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tok, **special)
