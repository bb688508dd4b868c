"""Nemotron's sound path: exact audio token counts, audio plans and Parakeet log-mel features.

Token count (S2 ``ParakeetExtractor.audio_token_count``; SPEC §7): ``frames = n // hop`` then the
encoder's conv subsampling ``log2(subsampling_factor)`` times, ``L = floor((L + add_pad) / stride
+ 1)`` with ``add_pad = (k - 1) // 2 * 2 - k``, and at least 1. For even ``n_fft`` this equals
the encoder's ``_get_subsampling_output_length`` of the extractor's valid frames
``(n + n_fft // 2 * 2 - n_fft) // hop``, which is how many rows the model keeps.

Features: transformers' ``ParakeetFeatureExtractor`` maths (pre-emphasis, centred STFT with a
symmetric Hann window of ``win_length`` inside ``n_fft`` and zero padding, power spectrum,
Slaney mel bank, ``log(x + 2**-24)``, per-utterance mean/std over the valid frames with
``(n - 1)`` and ``std + 1e-5``, padded frames zeroed), in numpy (default) or batched torch.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from ...io.audio import load_audio, probe_audio, read_audio, resample, resampled_length
from ...errors import InvalidInputError, MediaError, item_prefix
from ...validate import check_int, check_number, check_on_error
from ...types import AudioBatch, AudioPlan

__all__ = [
    "VARIANTS", "mel_filter_bank", "nemotron_audio_features", "nemotron_count_audio_tokens",
    "nemotron_plan_audio", "probe_audio", "read_audio", "subsampled_length",
]

# sound_config subsampling conv (checkpoint values; the family Spec has no fields for them)
SUBSAMPLING_KERNEL = 3
SUBSAMPLING_STRIDE = 2
# later vLLM (not S2): audio split into clips of 30 s, the tail padded to at least 0.1 s
CLIP_SECONDS = 30.0
CLIP_MIN_SECONDS = 0.1
# above 2**24 frames the reference's float32 length arithmetic stops being exact: our limit
MAX_FRAMES = 2**24
LOG_GUARD = 2.0**-24  # log(mel + guard)
NORM_EPS = 1e-5  # (x - mean) / (std + eps)
VARIANTS = ("vllm", "vllm-clips", "transformers")
MIN_VALID_FRAMES = 2  # the per-utterance normalization's (n - 1) needs two valid feature frames
_CHUNK = 512  # STFT frames per numpy block: cache-sized (2x faster than 4096), bounds memory


def _spec(family: Any):
    s = family.spec
    if not s.has_audio:
        raise InvalidInputError(
            "this model has no audio encoder (no sound_config; e.g. NVIDIA-Nemotron-Nano-12B-v2-VL): "
            "audio input is not supported"
        )
    return s


# -- token counts ------------------------------------------------------------------------------


def subsampled_length(frames, factor: int, kernel: int = SUBSAMPLING_KERNEL, stride: int = SUBSAMPLING_STRIDE):
    """Encoder conv-subsampling output length, exact integer maths, vectorized.

    ``floor((L + add_pad) / stride + 1)`` == ``(L + add_pad + stride) // stride`` (floor division
    is exact where transformers rounds through float32; they agree below 2**24 frames, ~46 h).
    """
    layers = int(math.log2(factor))
    if 2**layers != factor:
        raise InvalidInputError(f"subsampling_factor must be a power of two, got {factor}")
    add_pad = (kernel - 1) // 2 * 2 - kernel
    out = np.asarray(frames, dtype=np.int64)
    for _ in range(layers):
        out = (out + add_pad + stride) // stride
    return out


def _token_counts(n: np.ndarray, s, variant: str) -> np.ndarray:
    hop, factor = s.audio_hop_length, s.audio_subsampling_factor
    if variant == "vllm":
        return np.maximum(1, subsampled_length(n // hop, factor))
    if variant == "transformers":  # NemotronHOmniProcessor._estimate_audio_num_embeddings
        return np.maximum(1, subsampled_length(1 + n // hop, factor))
    if variant == "vllm-clips":
        clip = int(round(CLIP_SECONDS * s.audio_sampling_rate))
        tail = int(round(CLIP_MIN_SECONDS * s.audio_sampling_rate))
        n = np.maximum(n, tail)
        full, rem = np.divmod(n, clip)
        per_clip = int(subsampled_length(clip // hop, factor))
        last = np.where(rem > 0, subsampled_length(np.maximum(rem, tail) // hop, factor), 0)
        return np.maximum(1, full * per_clip + last)
    raise InvalidInputError(f"variant must be one of {VARIANTS}, got {variant!r}")


def _samples_array(num_samples, seconds, rate: int, on_error: str = "raise",
                   most: int = 2**62) -> tuple[np.ndarray, np.ndarray]:
    """int64 sample counts (at most ``most``) and a validity mask; raises for the first bad item
    unless asked not to."""
    check_on_error(on_error)
    if (num_samples is None) == (seconds is None):
        raise InvalidInputError("pass exactly one of num_samples or seconds")
    if seconds is not None:
        sec = np.asarray(seconds)
        if sec.dtype.kind not in "iuf" or sec.dtype == bool:
            raise InvalidInputError(f"seconds must be numbers, got dtype {sec.dtype}")
        sec = sec.astype(np.float64)
        ok = np.isfinite(sec) & (sec > 0) & (sec * rate <= most)
        what = lambda i: (f"audio duration must be positive seconds up to {most / rate:.6g} "  # noqa: E731
                          f"({most} samples at {rate} Hz), got {sec.ravel()[i]}")
        # ceil, as a resampled length is sized; the tolerance lets samples / rate round-trip
        n = np.maximum(np.ceil(np.where(ok, sec, 1.0) * rate - 1e-6), 1).astype(np.int64)
    else:
        arr = np.asarray(num_samples)
        if arr.dtype.kind == "f":
            ok = np.isfinite(arr) & (arr == np.round(arr)) & (arr > 0) & (arr <= most)
        elif arr.dtype.kind not in "iu" or arr.dtype == bool:
            raise InvalidInputError(f"num_samples must be integers, got dtype {arr.dtype}")
        else:
            ok = (arr > 0) & (arr <= most)
        what = lambda i: f"audio must be a whole number of samples in [1, {most}], got {arr.ravel()[i]}"  # noqa: E731
        n = np.where(ok, arr, 1).astype(np.int64)
    if not ok.all() and on_error == "raise":
        i = int(np.flatnonzero(~ok.ravel())[0])
        raise InvalidInputError(f"{item_prefix(i)}{what(i)}")
    return n, ok


def nemotron_count_audio_tokens(family: Any, num_samples=None, *, seconds=None, variant: str | None = None,
                                on_error: str = "raise"):
    """``<so_embedding>`` tokens per audio from its length alone; vectorized (int or int64 array).

    ``num_samples``: samples at ``spec.audio_sampling_rate`` (after resampling); or ``seconds``
    (converted with ``ceil(seconds * rate)``). ``variant``: ``"vllm"`` (default, the seed's
    extractor), ``"vllm-clips"`` (later vLLM: 30 s clips, tail >= 0.1 s, tokens summed) or
    ``"transformers"`` (the Omni processor's ``1 + n // hop`` estimate). No 600 s cap here (see
    :func:`nemotron_plan_audio`), only the absolute :func:`max_samples` (2**24 feature frames).
    ``on_error="minus_one"`` marks bad lengths with -1.
    """
    s = _spec(family)
    n, ok = _samples_array(num_samples, seconds, s.audio_sampling_rate, on_error, max_samples(s))
    out = np.where(ok, _token_counts(n, s, variant or s.audio_token_rule), -1).astype(np.int64)
    return int(out) if out.ndim == 0 else out


def valid_frames(num_samples, n_fft: int, hop: int):
    """Feature frames the extractor marks valid: ``(n + n_fft // 2 * 2 - n_fft) // hop``."""
    return (np.asarray(num_samples, dtype=np.int64) + n_fft // 2 * 2 - n_fft) // hop


def _source_name(source: Any) -> str | None:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else None


def max_samples(s) -> int:
    """The longest audio mmprep plans or counts, in samples at the spec's rate (:data:`MAX_FRAMES`
    feature frames; ~46.6 h at 16 kHz)."""
    return MAX_FRAMES * s.audio_hop_length


def _make_plan(n: int, s, prefix: str, max_seconds: float | None) -> AudioPlan:
    limit = s.audio_max_seconds if max_seconds is None else check_number(
        max_seconds, "max_seconds", strict=False)
    rate = s.audio_sampling_rate
    if n > max_samples(s):
        raise InvalidInputError(
            f"{prefix}audio of {n} samples ({n / rate:.6g} s at {rate} Hz) is above the limit of "
            f"{max_samples(s)} samples ({MAX_FRAMES} feature frames)"
        )
    if limit > 0 and n > limit * rate:
        raise InvalidInputError(
            f"{prefix}audio is {n / rate:.3f} s ({n} samples at {rate} Hz), longer than the "
            f"maximum {limit} s (audio_max_seconds; pass max_seconds=0 to lift it)"
        )
    frames = int(valid_frames(n, s.audio_n_fft, s.audio_hop_length))
    if frames < MIN_VALID_FRAMES:
        least = MIN_VALID_FRAMES * s.audio_hop_length
        raise MediaError(
            f"{prefix}audio of {n} samples gives {frames} valid feature frame(s); the extractor's "
            f"per-utterance normalization needs >= {MIN_VALID_FRAMES} (>= {least} samples, "
            f"{least / rate * 1000:.0f} ms) and would return NaN features"
        )
    tokens = int(_token_counts(np.int64(n), s, s.audio_token_rule))
    return AudioPlan(num_samples=n, sampling_rate=rate, num_frames=frames, num_tokens=tokens)


def nemotron_plan_audio(
    family: Any, source, *, index: int | None = None, max_seconds: float | None = None,
    sampling_rate: float | None = None,
) -> AudioPlan:
    """Samples (after resampling to the spec's rate), valid feature frames and tokens.

    From metadata where possible: a path/bytes reads only the header (``soundfile.info``) and
    sizes the resampled length as the resampler will; an array uses its length; an ``int`` is a
    sample count at the spec's rate. ``sampling_rate``: the rate of a bare array (default: the
    spec's). Audio longer than ``max_seconds`` (default ``spec.audio_max_seconds``; 0 lifts it)
    or shorter than two feature frames raises, naming the item and the numbers.
    """
    s = _spec(family)
    target = s.audio_sampling_rate
    if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
        n = int(_samples_array(source, None, target)[0])
        return _make_plan(n, s, item_prefix(index), max_seconds)
    try:
        n_src, rate, _ = probe_audio(source, sampling_rate=target if sampling_rate is None else sampling_rate)
    except InvalidInputError as e:
        raise type(e)(f"{item_prefix(index)}{e}") from None
    prefix = item_prefix(index, _source_name(source))
    if n_src <= 0:
        raise MediaError(f"{prefix}audio is empty (0 samples)")
    try:
        n = int(resampled_length(n_src, rate, target))
    except InvalidInputError as e:
        raise InvalidInputError(f"{prefix}{e}") from None
    return _make_plan(n, s, prefix, max_seconds)


def _header_plan(s, source, prefix: str, max_seconds: float | None) -> AudioPlan:
    """The plan from an audio file's header alone (as :func:`nemotron_plan_audio` makes it)."""
    try:
        n_src, rate, _ = probe_audio(source)
        n = int(resampled_length(n_src, rate, s.audio_sampling_rate))
    except InvalidInputError as e:
        raise type(e)(f"{prefix}{e}") from None
    return _make_plan(n, s, prefix, max_seconds)


# -- features ----------------------------------------------------------------------------------


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    lin = 3.0 * f / 200.0
    log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) * (27.0 / np.log(6.4))
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    lin = 200.0 * m / 3.0
    log = 1000.0 * np.exp(np.log(6.4) / 27.0 * (m - 15.0))
    return np.where(m >= 15.0, log, lin)


def mel_filter_bank(sampling_rate: int, n_fft: int, num_mel_bins: int) -> np.ndarray:
    """Slaney-scale, Slaney-normalized triangles, ``(n_fft // 2 + 1, num_mel_bins)`` float32.

    Triangles in float64 over bin frequencies ``linspace(0, sr // 2, bins)``, cast to float32,
    then scaled by ``2 / (f[i + 2] - f[i])`` (the order transformers/librosa use, so the float32
    values match theirs).
    """
    bins = n_fft // 2 + 1
    fft_hz = np.linspace(0, sampling_rate // 2, bins)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sampling_rate / 2), num_mel_bins + 2))
    width = np.diff(edges)
    rise = (fft_hz[:, None] - edges[None, :-2]) / width[:-1]
    fall = (edges[None, 2:] - fft_hz[:, None]) / width[1:]
    tri = np.maximum(0.0, np.minimum(rise, fall)).astype(np.float32)
    tri *= (2.0 / (edges[2:] - edges[:-2]))[None, :]
    return tri


def _window(win_length: int, dtype=np.float32) -> np.ndarray:
    """Symmetric Hann (``torch.hann_window(periodic=False)``)."""
    n = np.arange(win_length, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / max(win_length - 1, 1))).astype(dtype)


def _preemphasis(x: np.ndarray, coef: float) -> np.ndarray:
    """``y[0] = x[0]``, ``y[i] = x[i] - coef * x[i-1]`` in float32, rounded as torch rounds it."""
    y = np.empty_like(x)
    y[0] = x[0]
    np.subtract(x[1:], np.float32(coef) * x[:-1], out=y[1:])
    return y


def _mel_band(mel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each mel filter's contiguous nonzero bins as ``(bins, weights)`` of shape ``(mels, width)``.

    The product with this band form is BLAS-free: a threaded sgemm on a machine whose cores are
    busy (torch's OpenMP pool, other jobs) ran 5x slower than this single-threaded gather.
    """
    nonzero = mel > 0
    lo = nonzero.argmax(axis=0)
    hi = mel.shape[0] - nonzero[::-1].argmax(axis=0)
    width = max(int((hi - lo).max()), 1)
    bins = lo[:, None] + np.arange(width)[None, :]
    inside = bins < hi[:, None]
    bins = np.minimum(bins, mel.shape[0] - 1)
    weights = np.where(inside, np.take_along_axis(mel.T, bins, axis=1), 0).astype(np.float32)
    return bins, weights


def _log_mel_item(x: np.ndarray, frames: int, s, window: np.ndarray, band, out: np.ndarray) -> None:
    """Normalized log-mel of one utterance into ``out[:frames]`` (its valid frames).

    torch.stft(center=True, constant pad) frame ``t`` sees padded samples ``[t*hop, t*hop+n_fft)``
    with the window at offset ``(n_fft - win) // 2``; only the window's span matters for the
    power spectrum (a shift changes phase, not magnitude), so we FFT that span zero-padded to
    ``n_fft``. Precision: pre-emphasis in float32 (as the reference), window/FFT/power in
    float64, the mel product and log in float32 (a sum of a few positive terms: ~1e-7 relative),
    statistics accumulated in float64. The result is the exact maths to ~1e-5, where the
    reference's float32 STFT is off by up to ~1e-4 on low-power bins (docs/audio.md).
    """
    hop, n_fft, win = s.audio_hop_length, s.audio_n_fft, s.audio_win_length
    band_bins, band_weights = band
    lead = n_fft // 2 - (n_fft - win) // 2  # zeros before sample 0 inside frame 0's window span
    buf = np.zeros(lead + len(x) + win + hop, dtype=np.float64)
    buf[lead:lead + len(x)] = _preemphasis(x, s.audio_preemphasis)
    spans = np.lib.stride_tricks.sliding_window_view(buf, win)[::hop]
    logmel = out[:frames]
    # one workspace per item, reused by every block (fresh MB-sized arrays cost page faults)
    k = min(_CHUNK, frames)
    windowed = np.zeros((k, n_fft), dtype=np.float64)  # columns >= win stay zero: the n_fft pad
    spec = np.empty((k, n_fft // 2 + 1), dtype=np.complex128)
    power = np.empty((k, n_fft // 2 + 1), dtype=np.float32)
    for start in range(0, frames, _CHUNK):
        m = min(_CHUNK, frames - start)
        np.multiply(spans[start:start + m], window, out=windowed[:m, :win])
        np.fft.rfft(windowed[:m], axis=-1, out=spec[:m])
        sq = spec[:m].view(np.float64)  # interleaved (re, im)
        np.multiply(sq, sq, out=sq)
        np.add(sq[:, 0::2], sq[:, 1::2], out=power[:m], casting="same_kind")
        block = logmel[start:start + m]
        np.einsum("fmw,mw->fm", np.take(power[:m], band_bins, axis=1), band_weights, out=block)
        block += np.float32(LOG_GUARD)
        np.log(block, out=block)
    mean = logmel.sum(axis=0, dtype=np.float64) / frames
    logmel -= mean.astype(np.float32)
    # float32 centred values, float64 sums: the variance is good to ~1e-7 relative
    var = np.einsum("ij,ij->j", logmel, logmel, dtype=np.float64) / (frames - 1)
    logmel /= (np.sqrt(var) + NORM_EPS).astype(np.float32)


def _features_numpy(waves: list[np.ndarray], frames: np.ndarray, total: int, s, workers: int) -> tuple:
    """Items are independent, so they run on a thread pool (numpy's FFT releases the GIL);
    the values do not depend on ``workers``."""
    band = _mel_band(mel_filter_bank(s.audio_sampling_rate, s.audio_n_fft, s.audio_num_mel_bins))
    window = _window(s.audio_win_length, np.float64)
    feats = np.zeros((len(waves), total, s.audio_num_mel_bins), dtype=np.float32)

    def one(i: int) -> None:
        _log_mel_item(waves[i], int(frames[i]), s, window, band, feats[i])

    if workers > 1 and len(waves) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(workers, len(waves))) as pool:
            list(pool.map(one, range(len(waves))))
    else:
        for i in range(len(waves)):
            one(i)
    mask = np.arange(total)[None, :] < frames[:, None]
    return feats, mask, frames.astype(np.int64)


def _features_torch(waves: list[np.ndarray], frames: np.ndarray, total: int, s, device) -> tuple:
    """The same pipeline batched in torch float32 on ``device`` (the reference's arithmetic)."""
    import torch

    try:
        dev = torch.device(device or "cpu")
    except (RuntimeError, TypeError) as e:
        raise InvalidInputError(f"device must name a torch device, got {device!r} ({e})") from None
    lengths = torch.as_tensor([len(w) for w in waves], device=dev)
    x = torch.zeros(len(waves), int(lengths.max()), dtype=torch.float32, device=dev)
    for i, w in enumerate(waves):
        x[i, : len(w)] = torch.from_numpy(w).to(dev)
    inside = torch.arange(x.shape[1], device=dev)[None, :] < lengths[:, None]
    x = torch.cat([x[:, :1], x[:, 1:] - s.audio_preemphasis * x[:, :-1]], dim=1).masked_fill(~inside, 0.0)
    window = torch.hann_window(s.audio_win_length, periodic=False, dtype=torch.float32, device=dev)
    spec = torch.stft(x, s.audio_n_fft, hop_length=s.audio_hop_length, win_length=s.audio_win_length,
                      window=window, center=True, pad_mode="constant", return_complex=True)
    power = spec.real.square() + spec.imag.square()  # (B, bins, T)
    mel = torch.from_numpy(mel_filter_bank(s.audio_sampling_rate, s.audio_n_fft, s.audio_num_mel_bins)).to(dev)
    feats = torch.log(torch.matmul(mel.T, power) + LOG_GUARD).transpose(1, 2)  # (B, T, mels)
    n = torch.as_tensor(frames, device=dev)
    mask = torch.arange(total, device=dev)[None, :] < n[:, None]
    m = mask[..., None]
    mean = (feats * m).sum(1, keepdim=True) / n[:, None, None]
    var = (((feats - mean) * m) ** 2).sum(1, keepdim=True) / (n - 1)[:, None, None]
    feats = (feats - mean) / (var.sqrt() + NORM_EPS) * m
    return feats, mask, n.to(torch.int64)


def _sources(audios) -> list:
    if isinstance(audios, (list, tuple)) and not _is_pair(audios):
        if not audios:
            raise InvalidInputError("no audio given (empty list)")
        return list(audios)
    if isinstance(audios, np.ndarray) and audios.ndim > 1:
        raise InvalidInputError(
            f"a {audios.ndim}-D array is ambiguous (a batch or one multichannel clip?): pass a list "
            "of clips, or (array, rate) for one multichannel clip"
        )
    return [audios]


def _is_pair(x) -> bool:
    return (isinstance(x, tuple) and len(x) == 2 and not isinstance(x[0], (str, bytes))
            and isinstance(x[1], (int, float, np.integer, np.floating)) and not isinstance(x[1], bool))


def nemotron_audio_features(
    family: Any, audios, *, sampling_rate: float | None = None, backend: str = "numpy",
    device=None, max_seconds: float | None = None, workers: int = 1, return_tensors: str | None = None,
) -> AudioBatch:
    """Parakeet log-mel features for a batch, padded to the longest item.

    ``audios``: one source or a list (paths, bytes, ``(array, rate)`` pairs, bare arrays at
    ``sampling_rate`` Hz — default the spec's rate). Each is decoded, mixed to mono and resampled
    as :func:`mmprep.read_audio` does. Returns :class:`AudioBatch` with ``features`` ``(B, T,
    mels)`` float32 (``T = 1 + (max_len + n_fft//2*2 - n_fft) // hop``, padded frames zero),
    ``attention_mask`` ``(B, T)`` bool, ``lengths`` ``(B,)`` valid frames and one
    :class:`AudioPlan` per item. ``backend="numpy"`` returns numpy arrays; ``"torch"`` runs
    batched on ``device`` (default CPU) and returns tensors there; ``return_tensors="pt"`` (the
    family API's spelling) picks the torch backend, ``"np"`` the numpy one. ``workers``: numpy threads
    over items (default 1; more help on idle multi-core machines); results do not depend on it.
    """
    s = _spec(family)
    if return_tensors is not None:
        if not isinstance(return_tensors, str) or return_tensors not in ("np", "pt"):
            raise InvalidInputError(f"return_tensors must be 'np' or 'pt', got {return_tensors!r}")
        backend = "torch" if return_tensors == "pt" else "numpy"
    if not isinstance(backend, str) or backend not in ("numpy", "torch"):
        raise InvalidInputError(f"backend must be 'numpy' or 'torch', got {backend!r}")
    workers = check_int(workers, "workers", minimum=1, maximum=256)
    rate = s.audio_sampling_rate if sampling_rate is None else sampling_rate
    waves, plans = [], []
    for i, src in enumerate(_sources(audios)):
        prefix = item_prefix(i, _source_name(src))
        if isinstance(src, (str, os.PathLike, bytes, bytearray, memoryview)):
            # the header's length is checked against the caps before decoding (a 10-hour file is
            # refused without reading it); the decode then checks the data against the header
            _header_plan(s, src, prefix, max_seconds)
        x, src_rate = load_audio(src, sampling_rate=rate, index=i)
        try:  # plan (and refuse) from the resampled length before any resampling work
            n = int(resampled_length(len(x), src_rate, s.audio_sampling_rate))
        except InvalidInputError as e:
            raise InvalidInputError(f"{prefix}{e}") from None
        plans.append(_make_plan(n, s, prefix, max_seconds))
        x = np.ascontiguousarray(resample(x, src_rate, s.audio_sampling_rate), dtype=np.float32)
        if len(x) != n:  # never expected: resample() sizes its output as resampled_length()
            raise MediaError(f"{prefix}resampling gave {len(x)} samples, the plan {n}")
        waves.append(x)
    frames = np.array([p.num_frames for p in plans], dtype=np.int64)
    longest = max(len(w) for w in waves)
    total = 1 + (longest + s.audio_n_fft // 2 * 2 - s.audio_n_fft) // s.audio_hop_length
    if backend == "torch":
        feats, mask, lengths = _features_torch(waves, frames, total, s, device)
    else:
        feats, mask, lengths = _features_numpy(waves, frames, total, s, int(workers))
    return AudioBatch(features=feats, attention_mask=mask, lengths=lengths, plans=tuple(plans))
