"""Nemotron Nano VL (NVIDIA-Nemotron-Nano-12B-v2-VL, Nemotron-3-Nano-Omni), readable top to bottom.

    images: 512x512 tiles (12B-v2-VL, ``pixel_values_flat (Σ tiles, 3, S, S)``) or dynamic-size
            images as packed patch rows (Omni, ``pixel_values_flat (Σ patches, 3·p·p)`` + ``imgs_sizes``)
    video:  one S x S tile per frame (``pixel_values_flat_video``), each frame through RADIO alone
      --> RADIO (models/radio.py): one feature per 16 px patch, class/register tokens dropped
      --> pixel shuffle (downsample_ratio 0.5: 2x2 patches -> one token, ps_version v2)
      --> mlp1: RMSNorm -> Linear -> relu² -> Linear: one embedding per ``<image>`` token
    token embeddings with the features in the ``<image>`` slots (images and video frames, prompt order)
      --> EVS (video_pruning_rate > 0): the video's span is rebuilt with the real per-frame counts
      --> NemotronH hybrid decoder (models/nemotron_h.py) --> lm_head

EVS (SPEC §4, the seed's ``_process_video_input`` / ``_create_final_video_embeddings``): the
retention mask is computed from the projected frame embeddings; the prompt put all ``R`` retained
``<image>`` tokens in the first frame and none in the others (the per-frame counts were unknown).
:func:`rebuild_video_span` rewrites the range from the first frame's ``<img>`` to the last
frame's ``</img>`` as ``<img> <image>×k_0 </img> sep_1 <img> <image>×k_1 </img> ...`` (the
separators are read from the prompt itself), embeds it with the decoder's embedding and puts the
kept embeddings, in order, into its ``<image>`` positions. The length is unchanged.

Weight names are the released (remote-code) checkpoint's: ``vision_model.radio_model.*``,
``mlp1.{0,1,3}.weight``, ``language_model.backbone.*``, ``language_model.lm_head.weight``.
transformers 5's ``save_pretrained`` writes the same names.

Audio (Omni checkpoints with a ``sound_config`` / ``audio_config``): log-mel features
(``input_audio_features``, valid frames ``audio_feature_lengths``) --> the Parakeet sound tower
(models/parakeet.py: FastConformer encoder + sound projector, weights ``sound_encoder.*`` /
``sound_projection.*``) --> one embedding per ``<so_embedding>`` token. Each clip's rows must equal
its run of placeholders in the prompt (``family.count_audio_tokens``), else the clip is named.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import evs
from ..errors import InvalidInputError, UnknownModelError, UnsupportedModalityError
from .cache import StaticKVCache
from .decoder import ModelOutput, Prompt, Step, run_decode, run_forward, run_prefill
from .generate import generate
from .inputs import as_tensor, check_slot_counts, pack_tokens
from .layers import RMSNorm, activation, space_to_depth
from .nemotron_h import KEEP_FP32, NemotronHConfig, NemotronHForCausalLM
from .nemotron_h import weight_table as text_weight_table
from .parakeet import ParakeetConfig, SoundTower
from .parakeet import weight_table as sound_weight_table
from .radio import RadioConfig, RadioModel, radio_weight_table, tiles_to_patches

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class NemotronVLConfig:
    text: NemotronHConfig = field(default_factory=NemotronHConfig)
    vision: RadioConfig = field(default_factory=RadioConfig)
    downsample_ratio: float = 0.5
    ps_version: str = "v2"
    projector_hidden_size: int = 20480
    image_token_id: int = 18  # <image>: image tiles and video frames
    video_pruning_rate: float = 0.7  # EVS; the family's default when config.json has none
    norm_mean: tuple[float, ...] = CLIP_MEAN  # for uint8 pixels only (float pixels come normalised)
    norm_std: tuple[float, ...] = CLIP_STD
    sound: ParakeetConfig | None = None  # the Parakeet sound tower (Omni); None: no audio
    audio_token_id: int = 27  # <so_embedding>: one per audio token
    max_context: int = 131072  # tokens: max_sequence_length, else the decoder's max_position_embeddings

    @property
    def has_sound(self) -> bool:
        return self.sound is not None

    @property
    def scale(self) -> int:
        """Patches per side merged into one token: ``1 / downsample_ratio`` (2)."""
        return round(1 / self.downsample_ratio)

    @classmethod
    def from_hf(cls, config: dict[str, Any], generation_config: dict[str, Any] | None = None) -> NemotronVLConfig:
        """Both layouts: released (``llm_config``, ``vision_config.args``, ``img_context_token_id``,
        ``sound_config``) and transformers 5 (``text_config``, RADIO keys, ``image_token_id``, ``audio_config``)."""
        t = config.get("llm_config") or config.get("text_config") or {}
        v = config.get("vision_config") or {}
        text = NemotronHConfig.from_hf(t, generation_config)
        if not text.eos_token_ids and config.get("eos_token_id") is not None:
            eos = config["eos_token_id"]
            text = replace(text, eos_token_ids=tuple(eos) if isinstance(eos, list) else (int(eos),))
        vision = RadioConfig.from_hf(v)
        rate = config.get("video_pruning_rate")
        ps = str(config.get("ps_version") or "v2")
        if ps != "v2":
            raise UnknownModelError(f"pixel shuffle ps_version {ps!r} is not supported (only 'v2')")
        mean = config.get("norm_mean") or v.get("norm_mean") or CLIP_MEAN
        std = config.get("norm_std") or v.get("norm_std") or CLIP_STD
        return cls(
            text=text, vision=vision, downsample_ratio=float(config.get("downsample_ratio") or 0.5), ps_version=ps,
            projector_hidden_size=int(config.get("projector_hidden_size") or 20480),
            image_token_id=int(_first(config, "img_context_token_id", "image_token_id", default=18)),
            video_pruning_rate=0.7 if rate is None else float(rate),
            norm_mean=tuple(mean), norm_std=tuple(std),
            sound=ParakeetConfig.from_hf(config) if config.get("sound_config") or config.get("audio_config") else None,
            audio_token_id=int(_first(config, "sound_context_token_id", "audio_token_id", default=27)),
            max_context=int(config.get("max_sequence_length") or text.max_position_embeddings),
        )


def _first(d: dict[str, Any], *names: str, default: Any = None) -> Any:
    return next((d[n] for n in names if d.get(n) is not None), default)


def read_config(config: dict[str, Any], generation_config: dict[str, Any] | None = None,
                added_tokens: dict[str, int] | None = None) -> NemotronVLConfig:
    """The model table's reader for ``NemotronH_Nano_VL_V2`` / ``NemotronH_Nano_Omni_Reasoning_V3`` /
    ``nemotron_h_omni`` checkpoints."""
    return NemotronVLConfig.from_hf(config, generation_config)


# -- vision: pixel shuffle and projector ----------------------------------------------------------------


def pixel_shuffle(features: torch.Tensor, grids_hw: list[tuple[int, int]], scale: int) -> torch.Tensor:
    """The seed's ``pixel_shuffle`` (ps_version v2) on packed per-image features: token ``(i, j)``
    concatenates patches ``(s·i + a, s·j + b)`` in ``(a, b)`` row-major order. Grids must be multiples of ``s``."""
    for i, (h, w) in enumerate(grids_hw):
        if h % scale or w % scale:
            raise InvalidInputError(
                f"image {i}: a {h}x{w} patch grid cannot be pixel-shuffled by {scale} (both sides must be multiples)")
    return space_to_depth(features, grids_hw, scale)


class Projector(nn.Sequential):
    """``mlp1``: RMSNorm (eps 1e-5) -> Linear -> relu² -> Linear, no biases (indices 0, 1, 3 hold weights)."""

    def __init__(self, cfg: NemotronVLConfig):
        width = cfg.vision.hidden_size * cfg.scale**2
        super().__init__(RMSNorm(width, 1e-5), nn.Linear(width, cfg.projector_hidden_size, bias=False),
                         _Act("relu2"), nn.Linear(cfg.projector_hidden_size, cfg.text.hidden_size, bias=False))


class _Act(nn.Module):
    def __init__(self, name: str):
        super().__init__()
        self.fn = activation(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


# -- the whole model -------------------------------------------------------------------------------------


class NemotronVLForConditionalGeneration(nn.Module):
    """The whole model. Submodules sit at the checkpoint's own paths (``vision_model.radio_model.model``,
    ``mlp1``, ``language_model.backbone``), so the weight table is the identity on the names."""

    def __init__(self, cfg: NemotronVLConfig):
        super().__init__()
        self.cfg = cfg
        self.video_pruning_rate = cfg.video_pruning_rate  # EVS switch; may be changed on a loaded model
        self.vision_model = nn.Module()
        self.vision_model.radio_model = nn.Module()
        self.vision_model.radio_model.model = RadioModel(cfg.vision)
        if cfg.text.mtp_layers:  # checkpoints with MTP layers (e.g. 3.5 Super VL) norm the RADIO features
            self.vision_projector = nn.Module()
            self.vision_projector.vision_final_layernorm = nn.LayerNorm(cfg.vision.hidden_size,
                                                                        eps=cfg.vision.layer_norm_eps)
        self.mlp1 = Projector(cfg)
        self.language_model = NemotronHForCausalLM(cfg.text)
        self.sound = SoundTower(cfg.sound) if cfg.sound is not None else None  # Parakeet encoder + projector

    # -- what the generic passes read
    @property
    def device(self) -> torch.device:
        return self.language_model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.language_model.dtype

    @property
    def max_context(self) -> int:
        return self.cfg.max_context

    @property
    def stop_token_ids(self) -> tuple[int, ...]:
        return self.language_model.stop_token_ids

    @property
    def vocab_size(self) -> int:
        return self.language_model.vocab_size

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.language_model.embed(ids)

    def text_forward(self, embeds: torch.Tensor, positions: torch.Tensor, step: Step) -> torch.Tensor:
        return self.language_model.text_forward(embeds, positions, step)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.language_model.logits(hidden)

    # -- vision
    def vision_features(self, patches: torch.Tensor, grids_hw: list[tuple[int, int]]) -> torch.Tensor:
        """Packed patch rows of images/tiles/frames -> one LLM embedding per token ``(Σ h·w/4, hidden)``."""
        feats = self.vision_model.radio_model.model(patches, grids_hw)
        if self.cfg.text.mtp_layers:
            feats = self.vision_projector.vision_final_layernorm(feats)
        return self.mlp1(pixel_shuffle(feats, grids_hw, self.cfg.scale))

    def _pixels(self, x: Any) -> torch.Tensor:
        """Float pixels as given (normalised by the processor); uint8 normalised here (channel-major rows)."""
        t = as_tensor(x, self.device)
        if t.is_floating_point():
            return t.to(self.dtype)
        mean = torch.tensor(self.cfg.norm_mean, device=t.device)
        std = torch.tensor(self.cfg.norm_std, device=t.device)
        f = t.float().reshape(t.shape[0], 3, -1) / 255
        return ((f - mean[:, None]) / std[:, None]).reshape(t.shape).to(self.dtype)

    def encode_images(self, batch: Any) -> list[torch.Tensor]:
        """Each image's embeddings: tiles (``image_num_patches`` per image) or dynamic patch rows
        (``imgs_sizes`` px, or transformers' ``image_grid_hw`` patches)."""
        key = "pixel_values_flat" if batch.get("pixel_values_flat") is not None else "pixel_values"
        pixels = self._pixels(batch[key])
        p = self.cfg.vision.patch_size
        if pixels.ndim == 4:  # tiles
            rows, grids = tiles_to_patches(pixels, p)
            per_tile = self.vision_features(rows, grids).view(pixels.shape[0], -1, self.cfg.text.hidden_size)
            tiles = batch.get("image_num_patches")
            tiles = [pixels.shape[0]] if tiles is None else as_tensor(tiles).reshape(-1).tolist()
            if sum(tiles) != pixels.shape[0]:
                raise InvalidInputError(f"image_num_patches {tiles} sum to {sum(tiles)}, pixels hold {pixels.shape[0]} tiles")
            return [t.reshape(-1, t.shape[-1]) for t in per_tile.split(tiles)]
        if batch.get("imgs_sizes") is not None:
            sizes = as_tensor(batch["imgs_sizes"]).reshape(-1, 2).tolist()
            bad = [(i, s) for i, s in enumerate(sizes) if s[0] % p or s[1] % p]
            if bad:
                raise InvalidInputError(f"image {bad[0][0]}: size {bad[0][1]} px is not a multiple of the {p} px patch")
            grids = [(h // p, w // p) for h, w in sizes]
        elif batch.get("image_grid_hw") is not None:
            grids = [tuple(g) for g in as_tensor(batch["image_grid_hw"]).reshape(-1, 2).tolist()]
        else:
            raise InvalidInputError(f"{key} holds patch rows but the batch has neither imgs_sizes nor image_grid_hw")
        feats = self.vision_features(pixels, grids)
        return list(feats.split([h * w // self.cfg.scale**2 for h, w in grids]))

    def encode_videos(self, batch: Any) -> list[tuple[torch.Tensor, list[int]]]:
        """Each video's kept embeddings and kept tokens per frame (all of them without EVS)."""
        pixels = self._pixels(batch["pixel_values_flat_video"])
        if pixels.ndim != 4:
            raise InvalidInputError(f"pixel_values_flat_video must be (frames, 3, S, S), got {tuple(pixels.shape)}")
        frames = batch.get("video_num_patches")
        frames = [pixels.shape[0]] if frames is None else as_tensor(frames).reshape(-1).tolist()
        if sum(frames) != pixels.shape[0]:
            raise InvalidInputError(f"video_num_patches {frames} sum to {sum(frames)}, pixels hold {pixels.shape[0]} frames")
        rows, grids = tiles_to_patches(pixels, self.cfg.vision.patch_size)
        feats = self.vision_features(rows, grids)
        side = int(pixels.shape[-1] * self.cfg.downsample_ratio // self.cfg.vision.patch_size)  # the seed's rows/cols
        per_frame = feats.shape[0] // pixels.shape[0]
        out = []
        for video in feats.split([n * per_frame for n in frames]):
            T = video.shape[0] // per_frame
            q = self.video_pruning_rate
            if q and q > 0:
                mask = evs.retention_mask(video, T, side, side, 1, q)
                out.append((video[mask], mask.view(T, -1).sum(1).tolist()))
            else:
                out.append((video, [per_frame] * T))
        return out

    def encode_audio(self, batch: Any, tokens: Any) -> torch.Tensor:
        """All clips' embeddings ``(Σ tokens, hidden)`` in clip order, one per ``<so_embedding>`` slot.

        Features: ``input_audio_features`` (mmprep / vLLM) or ``input_features`` (transformers),
        ``(clips, frames, mels)``; valid frames from ``audio_feature_lengths``, else the sum of
        ``feature_attention_mask`` / ``input_features_mask``. Each clip's encoder rows must equal its
        run of placeholders in the packed prompt: else :class:`InvalidInputError` naming the clip.
        """
        if self.sound is None:
            raise UnsupportedModalityError("the batch has audio features, but this model has no audio encoder "
                                           "(its config has no sound_config)")
        feats = _audio_value(batch, "input_audio_features", "input_features")
        lengths = batch.get("audio_feature_lengths")
        if lengths is None:
            mask = _audio_value(batch, "feature_attention_mask", "input_features_mask")
            if mask is None:
                raise InvalidInputError("audio features need audio_feature_lengths or feature_attention_mask")
            lengths = as_tensor(mask).reshape(as_tensor(feats).shape[0], -1).long().sum(-1)
        slots = tokens.ids == self.cfg.audio_token_id
        runs = placeholder_runs(slots, tokens.cu_seqlens)
        one_run_per_clip = len(runs) == as_tensor(feats).shape[0]  # <so_start>/<so_end> separate the clips
        embeds, per_clip = self.sound.encode_audio(feats, lengths, expected_tokens=runs if one_run_per_clip else None)
        cu = tokens.cu_seqlens.long()
        upto = F.pad(torch.cumsum(slots.long(), 0), (1, 0))
        check_slot_counts("audio", (upto[cu[1:]] - upto[cu[:-1]]).tolist(), per_clip)
        return embeds

    # -- prompt
    def prepare(self, batch: Any) -> Prompt:
        """Pack the tokens, put audio embeddings into the ``<so_embedding>`` slots and image and video
        embeddings into the ``<image>`` slots in prompt order, and rebuild each video span with its
        real per-frame counts (EVS)."""
        has_images = batch.get("pixel_values_flat") is not None or batch.get("pixel_values") is not None
        images = self.encode_images(batch) if has_images else []
        videos = self.encode_videos(batch) if batch.get("pixel_values_flat_video") is not None else []
        tokens = pack_tokens(batch, self.device, max_context=self.max_context, has_media=False)
        bad = (tokens.ids < 0) | (tokens.ids >= self.vocab_size)
        if bool(bad.any()):
            raise InvalidInputError(f"token id {int(tokens.ids[bad][0])} is outside the vocabulary of {self.vocab_size}")
        embeds = self.embed(tokens.ids)
        if _audio_value(batch, "input_audio_features", "input_features") is not None:
            audio = self.encode_audio(batch, tokens)
            embeds = embeds.masked_scatter((tokens.ids == self.cfg.audio_token_id)[:, None], audio.to(embeds.dtype))
        items = media_order(batch, len(images), len(videos), tokens.batch_size)
        feats = [images[i] if kind == "image" else videos[i][0] for kind, i in items]
        slots = tokens.ids == self.cfg.image_token_id
        cu = tokens.cu_seqlens.long()
        upto = F.pad(torch.cumsum(slots.long(), 0), (1, 0))
        check_slot_counts("<image>", (upto[cu[1:]] - upto[cu[:-1]]).tolist(), [f.shape[0] for f in feats])
        if feats:
            embeds = embeds.masked_scatter(slots[:, None], torch.cat(feats).to(embeds.dtype))
        first = 0
        positions = torch.nonzero(slots)[:, 0].tolist() if videos else []
        for (kind, i), f in zip(items, feats):
            if kind == "video" and self.video_pruning_rate and self.video_pruning_rate > 0:
                rebuild_video_span(self, tokens, embeds, positions[first], videos[i][1], f, i)
            first += f.shape[0]
        return Prompt(tokens, embeds)

    # -- passes
    def forward(self, batch: Any) -> ModelOutput:
        """Full logits ``(B, L, vocab)`` of a processor batch (no cache)."""
        return run_forward(self, batch)

    def new_cache(self, batch_size: int, max_len: int) -> StaticKVCache:
        return self.language_model.new_cache(batch_size, max_len)

    def prefill(self, prompt: Prompt, cache: StaticKVCache) -> torch.Tensor:
        return run_prefill(self, prompt, cache)

    def decode(self, token_ids: torch.Tensor, positions: torch.Tensor, cache: StaticKVCache) -> torch.Tensor:
        return run_decode(self, token_ids, positions, cache)

    def generate(self, batch: Any, max_new_tokens: int = 32, **kwargs: Any) -> torch.Tensor:
        """New token ids ``(B, n)``; see :func:`mmprep.models.generate.generate` for the options."""
        return generate(self, batch, max_new_tokens=max_new_tokens, **kwargs)


def _audio_value(batch: Any, *keys: str) -> Any:
    """The first of ``keys`` the batch holds (mmprep's / vLLM's name, then transformers')."""
    return next((batch.get(k) for k in keys if batch.get(k) is not None), None)


def placeholder_runs(slots: torch.Tensor, cu_seqlens: torch.Tensor) -> list[int]:
    """Lengths of the runs of consecutive placeholder slots in packed ids, never across rows: one
    run per clip (``<so_start> <so_embedding>×N <so_end>``)."""
    row_start = torch.zeros_like(slots)
    row_start[cu_seqlens[:-1].long()] = True
    after_slot = torch.cat([slots.new_zeros(1), slots[:-1]])
    starts = slots & (row_start | ~after_slot)
    run = torch.cumsum(starts.long(), 0)[slots]
    return torch.bincount(run - 1).tolist() if run.numel() else []


def media_order(batch: Any, n_images: int, n_videos: int, rows: int) -> list[tuple[str, int]]:
    """``(kind, index)`` of every image and video in prompt order, row after row.

    An mmprep ``Batch`` carries each sample's spans (``batch.plans["spans"]``); a plain mapping
    with only one kind of media needs none. Both kinds without spans raise (both fill ``<image>``
    slots, so their order cannot be read from the ids).
    """
    spans = getattr(batch, "plans", {}).get("spans") if hasattr(batch, "plans") else None
    if spans is not None and len(spans) == rows and (n_images or n_videos):
        order, seen = [], {"image": 0, "video": 0}
        for sample in spans:
            for s in sorted((s for s in sample if s.modality in seen), key=lambda s: s.start):
                order.append((s.modality, seen[s.modality]))
                seen[s.modality] += 1
        if seen == {"image": n_images, "video": n_videos}:
            return order
        raise InvalidInputError(f"the batch's spans name {seen['image']} images and {seen['video']} videos, "
                                f"the pixels hold {n_images} and {n_videos}")
    if n_images and n_videos:
        raise InvalidInputError("images and videos in one batch need the batch's spans (an mmprep Batch from "
                                "process()) to order them: both fill <image> slots")
    return [("image", i) for i in range(n_images)] + [("video", i) for i in range(n_videos)]


def rebuild_video_span(model: Any, tokens: Any, embeds: torch.Tensor, first_slot: int, kept: list[int],
                       features: torch.Tensor, index: int) -> None:
    """Rewrite one video's span in place (``tokens.ids``, ``embeds``) with the real per-frame counts ``kept``.

    ``first_slot``: packed index of the video's first ``<image>`` token. The span is read from the
    prompt: frame ``i`` is ``sep_i <img> <image>×n_i </img>`` (``sep_0`` lies before the range and
    stays). Raises :class:`InvalidInputError` with the numbers when the prompt does not have that shape.
    """
    ids = tokens.ids
    row = int(torch.searchsorted(tokens.cu_seqlens.long(), torch.tensor(first_slot), right=True)) - 1
    end_of_row = int(tokens.cu_seqlens[row + 1])
    context = ids[first_slot].item()
    start = first_slot - 1
    seq = ids[start:end_of_row].tolist()
    img, n0 = seq[0], 0
    while 1 + n0 < len(seq) and seq[1 + n0] == context:
        n0 += 1
    if 1 + n0 >= len(seq):
        raise InvalidInputError(f"video {index}: its first frame's <image> run has no closing token")
    img_end = seq[1 + n0]
    new, pos = [], 0
    for f, k in enumerate(kept):
        if f > 0:
            try:
                nxt = seq.index(img, pos)
            except ValueError:
                raise InvalidInputError(f"video {index}: frame {f} of {len(kept)} has no <img> token in the prompt") from None
            new += seq[pos:nxt]
            pos = nxt
        n = 0
        while pos + 1 + n < len(seq) and seq[pos + 1 + n] == context:
            n += 1
        if pos + 1 + n >= len(seq) or seq[pos + 1 + n] != img_end:
            raise InvalidInputError(f"video {index}: frame {f} does not end with the </img> token")
        new += [img] + [context] * k + [img_end]
        pos += n + 2
    if len(new) != pos:
        raise InvalidInputError(f"video {index}: the rebuilt span has {len(new)} tokens, the prompt reserved {pos}")
    new_ids = torch.tensor(new, dtype=ids.dtype, device=ids.device)
    part = model.embed(new_ids).masked_scatter((new_ids == context)[:, None], features.to(embeds.dtype))
    ids[start:start + pos] = new_ids
    embeds[start:start + pos] = part


# -- weights ------------------------------------------------------------------------------------------


def weight_table(cfg: NemotronVLConfig) -> dict[str, str | None]:
    """Every tensor of a released checkpoint and the parameter it fills (``None``: skipped; a
    ``prefix.*`` key skips a block: MTP layers, the sound encoder's featurizer buffers)."""
    table: dict[str, str | None] = {}
    table.update(radio_weight_table(cfg.vision, "vision_model.", "vision_model.radio_model.model."))
    table.update({f"mlp1.{i}.weight": f"mlp1.{i}.weight" for i in (0, 1, 3)})
    if cfg.text.mtp_layers:
        norm = "vision_projector.vision_final_layernorm"
        table.update({f"{norm}.weight": f"{norm}.weight", f"{norm}.bias": f"{norm}.bias"})
    table.update(text_weight_table(cfg.text, "language_model.", "language_model."))
    if cfg.sound is not None:  # sound_encoder.encoder.* and sound_projection.* under their own names
        table.update(sound_weight_table(cfg.sound, target="sound."))
    return table


__all__ = ["KEEP_FP32", "NemotronVLConfig", "NemotronVLForConditionalGeneration", "read_config", "weight_table"]
