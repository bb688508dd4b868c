"""Audio in: decode (soundfile), mix to mono, resample (soxr) the way vLLM's audio path does.

vLLM's route for Nemotron's sound input (S2 ``get_data_parser``: ``target_sr`` = the extractor's
rate, ``target_channels = 1``):

* files / bytes: ``librosa.load(f, sr=None)`` = soundfile decode to float32, then the mean over
  channels; the data parser then resamples with ``librosa.resample`` (default
  ``res_type="soxr_hq"``, ``fix=True``), i.e. ``soxr.resample(..., quality="HQ")`` followed by
  zero-padding / trimming to ``ceil(n * (target / orig))`` samples (float arithmetic).
* ``(array, rate)`` items: resampled the same way, then reduced to mono by the channel mean.
* bare arrays: taken to be at the target rate already (no resampling).

We do exactly these steps with soundfile and python-soxr (no librosa), so on float32 input our
samples are bit-identical to vLLM's default resampler. One deliberate difference: we always mix
to mono *before* resampling (vLLM mixes after; both are linear, so they agree to float rounding,
~1e-7). vLLM's librosa call resamples the *last* axis, which for a soundfile-style
``(time, channels)`` array would be the channel axis; we resample time, as intended.
"""

from __future__ import annotations

import io
import math
import os
from typing import Any

import numpy as np

from ..errors import InvalidInputError, MediaError, item_prefix
from ..types import AudioMetadata
from . import check_path

RESAMPLE_QUALITY = "HQ"  # python-soxr quality; librosa's default res_type "soxr_hq"
MAX_RATE = 1e8  # Hz: above any audio format (DSD is 2.8-11.3 MHz); soxr would hang on 1e300
MAX_SAMPLES = 2**40  # samples one resample may produce (before any model's own length cap)
MAX_ABS_SAMPLE = 2.0**20  # |sample|: audio is [-1, 1]; above this the features overflow float32


def _name(source: Any) -> str | None:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return None


def _file_like(source: Any) -> Any:
    """What soundfile can open: a path, or a binary buffer for bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    return source


def _is_file_source(source: Any) -> bool:
    return isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(source, "read")


def _check_rate(rate: Any, what: str, prefix: str) -> float:
    """The rate itself (int stays int) once known to be a finite positive number."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"{prefix}{what} must be a positive number (Hz), got {rate!r}")
    if not math.isfinite(float(rate)) or rate <= 0 or rate > MAX_RATE:
        raise InvalidInputError(f"{prefix}{what} must be in (0, {MAX_RATE:g}] Hz, got {rate}")
    return rate


def _as_array(x: Any, prefix: str) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype.kind in "iub":
        raise InvalidInputError(
            f"{prefix}integer/bool samples ({arr.dtype}) are not accepted: vLLM's resampler rejects "
            "them and its extractor would use the raw integers; convert to float in [-1, 1] "
            "(e.g. x / 32768 for int16)"
        )
    if arr.dtype.kind != "f":
        raise InvalidInputError(f"{prefix}audio samples must be real floats, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2):
        raise InvalidInputError(f"{prefix}audio must be 1-D (time) or 2-D (time/channels), got shape {arr.shape}")
    return arr


def to_mono(arr: np.ndarray) -> np.ndarray:
    """Channel mean as vLLM's ``normalize_audio``: a 2-D array is ``(time, channels)`` when
    ``shape[0] > shape[1]``, else ``(channels, time)``. Keeps the dtype."""
    if arr.ndim == 1:
        return arr
    if arr.shape[0] > arr.shape[1]:
        arr = arr.T
    return arr[0] if arr.shape[0] == 1 else arr.mean(axis=0, dtype=arr.dtype)


def resampled_length(num_samples, orig_rate: float, target_rate: float):
    """Samples after resampling, as librosa's ``fix=True`` sizes them: ``ceil(n * (t / o))`` in
    float64 (equal rates: unchanged). Vectorized over ``num_samples``."""
    if math.isclose(float(orig_rate), float(target_rate), rel_tol=0.0, abs_tol=1e-6):
        return num_samples
    ratio = float(target_rate) / float(orig_rate)
    out = np.ceil(np.asarray(num_samples, dtype=np.float64) * ratio)
    if (out > MAX_SAMPLES).any():
        big = float(np.max(out))
        raise InvalidInputError(
            f"resampling {orig_rate} Hz -> {target_rate} Hz would give {big:.6g} samples, above the "
            f"limit of {MAX_SAMPLES}"
        )
    out = out.astype(np.int64)
    return int(out) if out.ndim == 0 else out


def resample(x: np.ndarray, orig_rate: float, target_rate: float) -> np.ndarray:
    """soxr HQ, then zero-pad / trim to :func:`resampled_length` (vLLM's default path)."""
    if math.isclose(float(orig_rate), float(target_rate), rel_tol=0.0, abs_tol=1e-6):
        return x
    import soxr

    n = resampled_length(len(x), orig_rate, target_rate)  # refuses absurd lengths before soxr runs
    y = soxr.resample(x, orig_rate, target_rate, quality=RESAMPLE_QUALITY)
    if len(y) >= n:
        return y[:n]
    return np.concatenate([y, np.zeros(n - len(y), dtype=y.dtype)])


def _decode(source: Any, prefix: str) -> tuple[np.ndarray, float]:
    """soundfile decode to float32 ``(time, channels)``; every failure becomes a MediaError."""
    import soundfile as sf

    check_path(source, "audio", prefix)
    try:
        with sf.SoundFile(_file_like(source)) as f:
            header, rate = f.frames, f.samplerate
            data = f.read(dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, OSError, TypeError, ValueError) as e:
        raise MediaError(f"{prefix}cannot decode audio ({e}); readable formats: "
                         f"{', '.join(sorted(sf.available_formats()))}") from None
    if len(data) != header:  # a plan from the header (probe_audio) would count other samples
        raise MediaError(
            f"{prefix}the audio is truncated or its header disagrees with its data: the header says "
            f"{header} samples, decoding gives {len(data)}"
        )
    return data, int(rate)


def load_audio(
    source: Any, *, sampling_rate: float | None = None, index: int | None = None
) -> tuple[np.ndarray, float]:
    """Decode any accepted source to ``(mono samples, rate)`` without resampling.

    ``source``: a path, bytes, a binary file object, an ``(array, rate)`` pair, or a bare array
    (1-D, or 2-D with channels) whose rate is ``sampling_rate``. Raises :class:`MediaError` /
    :class:`InvalidInputError` naming the item for unreadable, empty or non-finite audio and
    non-positive rates.
    """
    prefix = item_prefix(index, _name(source))
    if _is_file_source(source):
        data, rate = _decode(source, prefix)
        samples = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    else:
        if isinstance(source, tuple):
            if len(source) != 2:
                raise InvalidInputError(f"{prefix}expected (array, sampling_rate), got a {len(source)}-tuple")
            source, rate = source
            rate = _check_rate(rate, "sampling rate", prefix)
        elif sampling_rate is None:
            raise InvalidInputError(f"{prefix}a bare array needs its rate: pass (array, rate) or sampling_rate=")
        else:
            rate = _check_rate(sampling_rate, "sampling rate", prefix)
        samples = to_mono(_as_array(source, prefix))
    check_samples(samples, prefix)
    return samples, rate


def check_samples(samples: np.ndarray, prefix: str = "") -> None:
    """Empty or non-finite audio is an error (the extractor would yield NaN features)."""
    if samples.size == 0:
        raise MediaError(f"{prefix}audio is empty (0 samples)")
    bad = ~(np.abs(samples) <= MAX_ABS_SAMPLE)
    if bad.any() and np.isfinite(samples).all():
        first = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(
            f"{prefix}audio sample {first} is {samples[first]!r}, beyond +-{MAX_ABS_SAMPLE:g} (audio is "
            f"expected in [-1, 1]; the features would overflow to NaN)"
        )
    bad = ~np.isfinite(samples)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(
            f"{prefix}audio has {int(bad.sum())} non-finite samples (NaN/inf) of {samples.size}; "
            f"first at sample {first}"
        )


def read_audio(source: Any, *, sampling_rate: int = 16_000, index: int | None = None) -> np.ndarray:
    """Mono float32 samples at ``sampling_rate`` Hz, decoded, mixed and resampled like vLLM.

    ``source``: path, bytes, binary file object, ``(array, rate)``, or a bare array taken to be at
    ``sampling_rate`` already (vLLM does not resample rate-less arrays). ``index`` names the item
    in error messages.
    """
    prefix = item_prefix(index, _name(source))
    target = _check_rate(sampling_rate, "target sampling_rate", prefix)
    samples, rate = load_audio(source, sampling_rate=target, index=index)
    return np.ascontiguousarray(resample(samples, rate, target), dtype=np.float32)


def probe_audio(source: Any, *, sampling_rate: float | None = None) -> AudioMetadata:
    """``(num_samples, sampling_rate, seconds)`` at the source's own rate, from the header only.

    Files and bytes: ``soundfile.info`` (no decode). Arrays: their length; a bare array needs
    ``sampling_rate``.
    """
    prefix = item_prefix(None, _name(source))
    if _is_file_source(source):
        import soundfile as sf

        check_path(source, "audio", prefix)
        try:
            info = sf.info(_file_like(source))
        except (sf.SoundFileError, RuntimeError, OSError, TypeError, ValueError) as e:
            raise MediaError(f"{prefix}cannot read the audio header ({e})") from None
        n, rate = int(info.frames), int(info.samplerate)
        if rate <= 0:
            raise MediaError(f"{prefix}header sampling rate is {rate}")
        return AudioMetadata(n, rate, n / rate)
    if isinstance(source, tuple) and len(source) == 2:
        arr, rate = source
        rate = _check_rate(rate, "sampling rate", prefix)
    elif sampling_rate is None:
        raise InvalidInputError(f"{prefix}a bare array needs its rate: pass (array, rate) or sampling_rate=")
    else:
        arr, rate = source, _check_rate(sampling_rate, "sampling rate", prefix)
    arr = _as_array(arr, prefix)
    n = int(len(to_mono(arr)))
    return AudioMetadata(n, rate, n / rate)
