"""Nemotron audio: loading/resampling, token counts, plans and Parakeet log-mel features.

References: transformers' ``ParakeetFeatureExtractor`` (features), ``ParakeetEncoder.
_get_subsampling_output_length`` (the rows the model keeps), the Omni processor's estimate, and
vLLM's ``librosa.resample`` default (soxr HQ + ``fix_length``). All media are written here.
"""

from __future__ import annotations

import io
import math
import subprocess
import sys
import types

import numpy as np
import pytest
import soundfile as sf
import soxr
from hypothesis import given, settings
from hypothesis import strategies as st

import mmprep
from mmprep import InvalidInputError, MediaError, MmprepError
from mmprep.families.nemotron.audio import (
    mel_filter_bank,
    nemotron_audio_features,
    nemotron_count_audio_tokens,
    nemotron_plan_audio,
    subsampled_length,
)
from mmprep.io.audio import probe_audio, read_audio, resampled_length
from mmprep.testing import strategies as mst

HOP, SR = 160, 16_000
HOUR = 3600 * SR
OMNI = mmprep.load("nemotron-3-nano-omni")


@pytest.fixture(scope="module")
def extractor():
    from transformers import ParakeetFeatureExtractor

    s = OMNI.spec
    return ParakeetFeatureExtractor(feature_size=s.audio_num_mel_bins, sampling_rate=s.audio_sampling_rate,
                                    hop_length=s.audio_hop_length, n_fft=s.audio_n_fft,
                                    win_length=s.audio_win_length, preemphasis=s.audio_preemphasis)


@pytest.fixture(scope="module")
def encoder_length():
    """transformers' ParakeetEncoder._get_subsampling_output_length with the Omni sound_config."""
    import torch

    from tests._torchvision import import_torchvision

    import_torchvision()  # transformers' modeling imports reach torchvision
    from transformers import ParakeetEncoderConfig
    from transformers.models.parakeet.modeling_parakeet import ParakeetEncoder

    cfg = ParakeetEncoderConfig(subsampling_factor=8, subsampling_conv_kernel_size=3, subsampling_conv_stride=2,
                                num_mel_bins=128)
    owner = types.SimpleNamespace(config=cfg)
    return lambda frames: ParakeetEncoder._get_subsampling_output_length(
        owner, torch.as_tensor(np.asarray(frames, dtype=np.int64))).numpy()


def spec_formula(n: int, hop: int = HOP, factor: int = 8, kernel: int = 3, stride: int = 2) -> int:
    """SPEC §7 written out with floats, one audio at a time (the obviously-reference version)."""
    length = float(n // hop)
    add_pad = (kernel - 1) // 2 * 2 - kernel
    for _ in range(int(math.log2(factor))):
        length = math.floor((length + add_pad) / stride + 1.0)
    return max(1, int(length))


def clip_split_reference(n: int, hop: int = HOP, rate: int = SR) -> int:
    """Later vLLM's ParakeetExtractor: 30 s clips, tail padded to >= 0.1 s, raw per-clip encoder
    lengths summed, then at least 1."""
    clip, tail = int(round(30 * rate)), int(round(0.1 * rate))
    n = max(n, tail)
    full, rem = divmod(n, clip)
    sizes = [clip] * full + ([max(rem, tail)] if rem > 0 else [])
    total = 0
    for size in sizes:
        length = float(size // hop)
        for _ in range(3):
            length = math.floor((length - 1) / 2 + 1.0)
        total += int(length)
    return max(1, total)


lengths = st.one_of(
    st.integers(1, HOP - 1),  # under one hop
    st.integers(1, 20_000).map(lambda k: k * HOP),  # exact hop multiples
    st.integers(1, 10 * 60 * SR),  # up to 10 minutes
    st.integers(HOUR - 10 * HOP, HOUR + 10 * HOP),  # hour-long
    mst.audio_lengths(OMNI, "boundary", valid=False),  # around the hop and subsampling steps
)


# -- token counts ------------------------------------------------------------------------------


@given(st.lists(lengths, min_size=1, max_size=20))
def test_counts_equal_spec_formula_and_encoder_subsampling(encoder_length, ns):
    got = nemotron_count_audio_tokens(OMNI, np.array(ns))
    assert got.tolist() == [spec_formula(n) for n in ns]
    assert [nemotron_count_audio_tokens(OMNI, n) for n in ns] == got.tolist()  # scalar == vectorized
    # the model keeps _get_subsampling_output_length(valid extractor frames) rows
    valid = (np.array(ns) + 512 // 2 * 2 - 512) // HOP
    kept = np.maximum(1, encoder_length(valid))
    assert got.tolist() == kept.tolist()


def test_counts_known_values():
    assert nemotron_count_audio_tokens(OMNI, [1, 159, 160, 1280, 1281, 16_000, 30 * SR]).tolist() == [
        1, 1, 1, 1, 1, 13, 375]
    assert nemotron_count_audio_tokens(OMNI, HOUR) == 45_000


def test_extractor_valid_frames_are_the_counted_frames(extractor):
    rng = np.random.default_rng(1)
    ns = [320, 321, 479, 480, 1600, 16_001]
    out = extractor([rng.standard_normal(n).astype(np.float32) for n in ns], sampling_rate=SR,
                    return_tensors="np")
    assert out["attention_mask"].sum(1).tolist() == [n // HOP for n in ns]


@given(st.lists(lengths, min_size=1, max_size=10))
def test_transformers_estimate_variant(ns):
    got = nemotron_count_audio_tokens(OMNI, ns, variant="transformers").tolist()
    want = []
    for n in ns:  # NemotronH Omni processor: 1 + n // hop frames, then 3 stride-2 convs
        length = 1 + n // HOP
        for _ in range(3):
            length = (length - 1) // 2 + 1
        want.append(length)
    assert got == want


@given(st.lists(lengths, min_size=1, max_size=10))
def test_clip_split_variant(ns):
    got = nemotron_count_audio_tokens(OMNI, ns, variant="vllm-clips").tolist()
    assert got == [clip_split_reference(n) for n in ns]


def test_variants_differ_where_documented():
    n = 45 * SR  # 45 s: two clips in later vLLM
    assert nemotron_count_audio_tokens(OMNI, n) == 563
    assert nemotron_count_audio_tokens(OMNI, n, variant="vllm-clips") == 375 + 188
    assert nemotron_count_audio_tokens(OMNI, 16_000, variant="transformers") == 13
    assert nemotron_count_audio_tokens(OMNI, 16_159, variant="transformers") == 13
    # 96 frames -> 12 tokens in the seed; the estimate's 97 frames -> 13
    assert nemotron_count_audio_tokens(OMNI, 96 * HOP) == 12
    assert nemotron_count_audio_tokens(OMNI, 96 * HOP, variant="transformers") == 13


def test_seconds_convert_at_spec_rate():
    assert nemotron_count_audio_tokens(OMNI, seconds=30.0) == nemotron_count_audio_tokens(OMNI, 30 * SR)
    secs = np.array([0.01, 1.0, 2.5, 3600.0])
    assert (nemotron_count_audio_tokens(OMNI, seconds=secs)
            == nemotron_count_audio_tokens(OMNI, (secs * SR).astype(int))).all()
    # a duration measured at 44.1 kHz maps to the resampled length (ceil)
    n44 = 44_101
    assert nemotron_count_audio_tokens(OMNI, seconds=n44 / 44_100) == nemotron_count_audio_tokens(
        OMNI, resampled_length(n44, 44_100, SR))


@given(st.integers(0, 30), st.sampled_from([2, 4, 8, 16]))
def test_subsampled_length_matches_float_formula(frames, factor):
    length = float(frames)
    for _ in range(int(math.log2(factor))):
        length = math.floor((length - 1) / 2 + 1.0)
    assert int(subsampled_length(frames, factor)) == length


@pytest.mark.parametrize("bad", [0, -5, 1.5, float("nan")])
def test_count_rejects_bad_lengths(bad):
    with pytest.raises(InvalidInputError):
        nemotron_count_audio_tokens(OMNI, bad)
    with pytest.raises(InvalidInputError, match="item 1"):
        nemotron_count_audio_tokens(OMNI, [16_000, bad])


def test_count_argument_errors():
    with pytest.raises(InvalidInputError):
        nemotron_count_audio_tokens(OMNI)
    with pytest.raises(InvalidInputError):
        nemotron_count_audio_tokens(OMNI, 100, seconds=1.0)
    with pytest.raises(InvalidInputError, match="variant"):
        nemotron_count_audio_tokens(OMNI, 100, variant="nemo")
    with pytest.raises(InvalidInputError, match="item 0"):
        nemotron_count_audio_tokens(OMNI, seconds=[-1.0])


def test_model_without_audio_encoder_raises():
    tiles = mmprep.load("nemotron-nano-vl")
    assert not tiles.spec.has_audio
    for call in (lambda: tiles.count_audio_tokens(16_000), lambda: tiles.plan_audio(16_000),
                 lambda: tiles.audio_features([np.zeros(16_000, np.float32)])):
        with pytest.raises(InvalidInputError, match="no audio encoder"):
            call()


def test_family_methods_delegate():
    assert OMNI.count_audio_tokens(16_000) == 13
    assert OMNI.plan_audio(16_000) == mmprep.AudioPlan(16_000, SR, 100, 13)
    batch = OMNI.audio_features([np.ones(800, np.float32)])
    assert batch.features.shape == (1, 6, 128)


# -- features ----------------------------------------------------------------------------------


def float64_reference(clip: np.ndarray) -> np.ndarray:
    """transformers' maths in float64 (after its float32 pre-emphasis): the exact values that both
    implementations round. Uses transformers' own mel matrix."""
    import torch
    from transformers import ParakeetFeatureExtractor

    fe = ParakeetFeatureExtractor(feature_size=128)
    x = torch.from_numpy(clip)[None]
    x = torch.cat([x[:, :1], x[:, 1:] - 0.97 * x[:, :-1]], 1).double()
    window = torch.hann_window(400, periodic=False, dtype=torch.float64)
    spec = torch.stft(x, 512, 160, 400, window=window, return_complex=True, pad_mode="constant")
    power = spec.real**2 + spec.imag**2
    logmel = torch.log(fe.mel_filters.double() @ power + 2.0**-24)[0].T
    n = len(clip) // HOP
    mean, std = logmel[:n].mean(0), logmel[:n].std(0)
    out = ((logmel - mean) / (std + 1e-5)).numpy()
    out[n:] = 0
    return out


def waveform(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    if kind == "noise":
        x = 0.3 * rng.standard_normal(n)
    elif kind == "tone":
        x = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(n)
    else:  # brown noise: energy piled at low frequencies
        x = np.cumsum(rng.standard_normal(n)) * 0.01
        x -= x.mean()
    return x.astype(np.float32)


@pytest.mark.parametrize("kind", ["noise", "tone", "brown"])
def test_features_match_transformers(extractor, kind):
    ns = [16_000, 4_321, 48_000, 800]
    clips = [waveform(kind, n, i) for i, n in enumerate(ns)]
    want = extractor(clips, sampling_rate=SR, return_tensors="np")
    got = nemotron_audio_features(OMNI, clips)
    assert got.features.shape == want["input_features"].shape
    assert got.features.dtype == np.float32
    assert (got.attention_mask == want["attention_mask"]).all()
    assert got.lengths.tolist() == want["attention_mask"].sum(1).tolist()
    diff = np.abs(got.features - want["input_features"])
    assert np.quantile(diff, 0.999) <= 1e-4 and diff.mean() <= 5e-6
    for i, clip in enumerate(clips):
        exact = float64_reference(clip)  # this item alone: 1 + n // hop frames
        ours, ref = got.features[i, : len(exact)], want["input_features"][i, : len(exact)]
        assert not got.features[i, len(exact):].any()
        # we are the exact maths to float32 precision ...
        assert np.abs(ours - exact).max() <= 2e-5
        # ... so every difference from transformers is its own float32 rounding
        assert np.abs(ours - ref).max() <= np.abs(ref - exact).max() + 5e-6


def test_torch_backend_matches_transformers(extractor):
    import torch

    clips = [waveform("noise", n, n) for n in (16_000, 3_333, 321)]
    want = extractor(clips, sampling_rate=SR, return_tensors="np")
    got = nemotron_audio_features(OMNI, clips, backend="torch")
    assert isinstance(got.features, torch.Tensor) and got.features.dtype == torch.float32
    assert (got.attention_mask.numpy() == want["attention_mask"]).all()
    assert np.abs(got.features.numpy() - want["input_features"]).max() <= 5e-5
    assert got.lengths.tolist() == [n // HOP for n in (16_000, 3_333, 321)]


@settings(max_examples=25)
@given(st.lists(st.integers(10 * HOP, 6_000), min_size=1, max_size=4), st.integers(0, 2**16))
def test_numpy_and_torch_backends_agree(ns, seed):
    # from 10 frames: with 2-3 frames the per-bin std can be ~eps and float32 rounding of either
    # implementation moves a value by ~1e-3 (ill-conditioned, the reference included)
    clips = [waveform("noise", n, seed + i) for i, n in enumerate(ns)]
    a = nemotron_audio_features(OMNI, clips)
    b = nemotron_audio_features(OMNI, clips, backend="torch")
    assert np.abs(a.features - b.features.numpy()).max() <= 1e-3
    assert (a.attention_mask == b.attention_mask.numpy()).all()
    assert a.lengths.tolist() == [p.num_frames for p in a.plans] == [n // HOP for n in ns]
    assert [p.num_tokens for p in a.plans] == [spec_formula(n) for n in ns]


@settings(max_examples=20)
@given(st.integers(10 * HOP, 40_000), st.integers(0, 2**16), st.sampled_from(["noise", "tone", "brown"]))
def test_numpy_features_are_the_exact_maths(n, seed, kind):
    clip = waveform(kind, n, seed)
    got = nemotron_audio_features(OMNI, clip).features[0]
    assert np.abs(got - float64_reference(clip)).max() <= 2e-5


def test_batch_items_equal_single_items_and_padding_is_zero():
    clips = [waveform("tone", 9_000, 0), waveform("noise", 20_000, 1)]
    batch = nemotron_audio_features(OMNI, clips)
    for i, clip in enumerate(clips):
        alone = nemotron_audio_features(OMNI, clip)
        n = len(clip) // HOP  # 56 and 125 valid frames
        assert batch.lengths[i] == n
        np.testing.assert_array_equal(batch.features[i, :n], alone.features[0, :n])
        assert not batch.features[i, n:].any()


def test_mel_filter_bank_matches_transformers():
    from transformers.audio_utils import mel_filter_bank as hf_mel

    for sr, n_fft, mels in [(16_000, 512, 128), (16_000, 512, 80), (22_050, 1024, 64)]:
        want = hf_mel(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=mels, min_frequency=0.0,
                      max_frequency=sr / 2, sampling_rate=sr, norm="slaney", mel_scale="slaney",
                      dtype=np.float32)
        np.testing.assert_array_equal(mel_filter_bank(sr, n_fft, mels), want)


def test_features_reject_bad_audio():
    with pytest.raises(MediaError, match=r"item 1.*320"):
        nemotron_audio_features(OMNI, [np.ones(1000, np.float32), np.ones(319, np.float32)])
    with pytest.raises(InvalidInputError, match="item 0.*non-finite"):
        nemotron_audio_features(OMNI, [np.array([0.0, np.nan] * 400, np.float32)])
    with pytest.raises(MediaError, match="empty"):
        nemotron_audio_features(OMNI, [np.zeros(0, np.float32)])
    with pytest.raises(InvalidInputError, match="ambiguous"):
        nemotron_audio_features(OMNI, np.zeros((2, 16_000), np.float32))
    with pytest.raises(InvalidInputError, match="backend"):
        nemotron_audio_features(OMNI, [np.ones(1000, np.float32)], backend="jax")


def test_too_long_audio_raises_unless_lifted():
    short = mmprep.load("nemotron-3-nano-omni", audio_max_seconds=1.0)
    with pytest.raises(InvalidInputError, match=r"item 0.*1\.500 s.*maximum 1\.0 s"):
        nemotron_plan_audio(short, 24_000, index=0)
    with pytest.raises(InvalidInputError, match="maximum"):
        short.audio_features([np.ones(24_000, np.float32)])
    assert nemotron_plan_audio(short, 24_000, max_seconds=0).num_tokens == 19
    assert nemotron_plan_audio(OMNI, 600 * SR).num_tokens == 7500
    with pytest.raises(InvalidInputError):
        nemotron_plan_audio(OMNI, 600 * SR + 1)


# -- loading -----------------------------------------------------------------------------------


def write(path, data, rate, **kw):
    sf.write(path, data, rate, **kw)
    return path


def test_read_wav_and_flac(tmp_path):
    rng = np.random.default_rng(0)
    x = (0.5 * rng.standard_normal(12_345)).clip(-1, 1)
    for name, kw in [("a.wav", {"subtype": "PCM_16"}), ("a.flac", {}), ("f.wav", {"subtype": "FLOAT"})]:
        path = write(tmp_path / name, x, SR, **kw)
        want, _ = sf.read(path, dtype="float32")
        got = read_audio(path)
        assert got.dtype == np.float32 and got.ndim == 1
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(read_audio(path.read_bytes()), want)
        np.testing.assert_array_equal(read_audio(str(path)), want)
        assert probe_audio(path) == (12_345, 16_000.0, 12_345 / 16_000)
        assert mmprep.read_audio is read_audio and mmprep.probe_audio is probe_audio


def test_multichannel_is_the_channel_mean(tmp_path):
    rng = np.random.default_rng(1)
    stereo = (0.4 * rng.standard_normal((5_000, 2))).astype(np.float32)
    path = write(tmp_path / "s.wav", stereo, SR, subtype="FLOAT")
    want = stereo.mean(axis=1, dtype=np.float32)
    np.testing.assert_array_equal(read_audio(path), want)
    np.testing.assert_array_equal(read_audio((stereo, SR)), want)  # (time, channels)
    np.testing.assert_array_equal(read_audio((stereo.T.copy(), SR)), want)  # (channels, time)
    assert probe_audio(path)[0] == 5_000


@pytest.mark.parametrize("rate", [44_100, 8_000, 22_050, 48_000])
def test_resampling_is_soxr_hq_sized_like_librosa(tmp_path, rate):
    n = rate * 2 + 37
    t = np.arange(n) / rate
    x = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    path = write(tmp_path / "r.wav", x, rate, subtype="FLOAT")
    got = read_audio(path)
    size = math.ceil(n * SR / rate)
    assert len(got) == size == resampled_length(n, rate, SR)
    raw = soxr.resample(x, rate, SR, quality="HQ")  # vLLM default: librosa soxr_hq + fix_length
    m = min(len(raw), size)
    np.testing.assert_array_equal(got[:m], raw[:m])
    assert not got[m:].any()
    # and it is a good resampler: a 1 kHz tone stays a 1 kHz tone (away from the edges)
    ideal = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(size) / SR)
    assert np.abs(got[500:-500] - ideal[500:-500]).max() < 2e-3
    plan = nemotron_plan_audio(OMNI, path)  # header only, sized as the resampler sizes
    assert plan.num_samples == len(got) and plan.sampling_rate == SR


def test_resampling_matches_librosa_when_installed():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(2)
    for rate in (44_100, 8_000):
        x = (0.3 * rng.standard_normal(rate + 11)).astype(np.float32)
        np.testing.assert_array_equal(read_audio((x, rate)), librosa.resample(x, orig_sr=rate, target_sr=SR))


@settings(max_examples=40)
@given(st.integers(1, 30_000), st.sampled_from([8_000, 11_025, 22_050, 44_100, 48_000, 96_000, 16_000]))
def test_resampled_length_predicts_read_length(n, rate):
    x = np.full(n, 0.1, np.float32)
    size = resampled_length(n, rate, SR)
    assert len(read_audio((x, rate))) == size
    if size >= 2 * HOP:  # shorter audio has no plan (fewer than two feature frames)
        assert nemotron_plan_audio(OMNI, (x, rate)).num_samples == size


def test_plan_from_header_does_not_decode(tmp_path, monkeypatch):
    path = write(tmp_path / "p.flac", np.zeros(44_100 * 3, np.float32), 44_100)

    def no_decode(*a, **k):
        raise AssertionError("decoded")

    monkeypatch.setattr(sf, "read", no_decode)
    plan = nemotron_plan_audio(OMNI, path)
    assert plan == mmprep.AudioPlan(48_000, SR, 300, nemotron_count_audio_tokens(OMNI, 48_000))


def test_bad_sources(tmp_path):
    with pytest.raises(MediaError, match="cannot decode"):
        read_audio(b"definitely not audio", index=3)
    with pytest.raises(MediaError, match="nope.wav"):
        read_audio(tmp_path / "nope.wav")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(MediaError):
        nemotron_plan_audio(OMNI, tmp_path / "x.txt")
    empty = write(tmp_path / "e.wav", np.zeros(0, np.float32), SR)
    with pytest.raises(MediaError, match="empty"):
        read_audio(empty)
    with pytest.raises(MediaError, match="empty"):
        nemotron_plan_audio(OMNI, empty)
    for rate in (0, -16_000, float("nan")):
        with pytest.raises(InvalidInputError, match="sampling rate"):
            read_audio((np.ones(100, np.float32), rate))
    with pytest.raises(InvalidInputError, match="int16"):
        read_audio((np.ones(100, np.int16), SR))
    with pytest.raises(InvalidInputError, match="non-finite"):
        read_audio(np.array([0.0, np.inf], np.float32))
    with pytest.raises(InvalidInputError):
        read_audio(np.ones(100, np.float32), sampling_rate=0)
    with pytest.raises(InvalidInputError, match="rate"):
        probe_audio(np.ones(100, np.float32))
    assert issubclass(MediaError, MmprepError)


def test_bytes_buffers_and_file_objects(tmp_path):
    buf = io.BytesIO()
    x = np.linspace(-0.5, 0.5, 4_000).astype(np.float32)
    sf.write(buf, x, SR, format="WAV", subtype="FLOAT")
    data = buf.getvalue()
    np.testing.assert_array_equal(read_audio(data), x)
    np.testing.assert_array_equal(read_audio(io.BytesIO(data)), x)
    assert probe_audio(data)[:2] == (4_000, 16_000.0)


def test_import_stays_light():
    code = "import sys, mmprep.families.nemotron.audio, mmprep.io.audio; assert 'torch' not in sys.modules; " \
           "assert 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.gpu
def test_torch_backend_on_cuda_matches_numpy():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    clips = [waveform("noise", n, n) for n in (16_000, 48_000, 3_333)]
    a = nemotron_audio_features(OMNI, clips)
    b = nemotron_audio_features(OMNI, clips, backend="torch", device="cuda")
    assert b.features.device.type == "cuda"
    assert np.abs(a.features - b.features.cpu().numpy()).max() <= 1e-3
    assert (a.attention_mask == b.attention_mask.cpu().numpy()).all()


def test_path_items_are_named_in_errors(tmp_path):
    path = write(tmp_path / "tiny.wav", np.zeros(100, np.float32), SR)
    with pytest.raises(MediaError, match=r"item 1 \(.*tiny\.wav\).*100 samples"):
        nemotron_audio_features(OMNI, [np.ones(1000, np.float32), path])
    with pytest.raises(MediaError, match=r"item 4 \(.*tiny\.wav\)"):
        nemotron_plan_audio(OMNI, path, index=4)


def test_numpy_threads_do_not_change_values():
    clips = [waveform("noise", n, n) for n in (16_000, 7_777, 30_000)]
    one = nemotron_audio_features(OMNI, clips, workers=1)
    many = nemotron_audio_features(OMNI, clips, workers=3)
    np.testing.assert_array_equal(one.features, many.features)
    np.testing.assert_array_equal(one.attention_mask, many.attention_mask)
