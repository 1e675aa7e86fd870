import csv
import json
import math
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch

from flashspeech_hf import FlashSpeechPipeline
from flashspeech_hf.cli import main
from flashspeech_hf.evaluation import (
    build_test_list_from_dataset,
    format_markdown,
    load_test_list,
    plot_pitch_distributions,
    voiced_pitch,
)
from flashspeech_hf.metrics import jensen_shannon_divergence, load_metric, pitch_histogram

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng makes the test speech")

SENTENCES = ["the cat sat on the mat", "good morning to you all", "please call stella"]


def espeak(path, text, voice="en-us"):
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
    return str(path)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    pipe = FlashSpeechPipeline.from_named_config("tiny")
    torch.nn.init.constant_(
        pipe.prosody_generator.duration_predictor.out.bias, 2.5
    )  # ~11 frames per phoneme: > 1 s of audio
    path = tmp_path_factory.mktemp("model") / "tiny"
    pipe.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def test_list(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    espeak(root / "prompt.wav", "this is the voice that every sentence should sound like today")
    rows = []
    for i, text in enumerate(SENTENCES[:2]):
        rows.append(
            {"text": text, "prompt_audio": "prompt.wav", "reference_audio": espeak(root / f"ref{i}.wav", text)}
        )
    rows.append({"text": SENTENCES[2], "prompt_audio": "missing_prompt.wav", "reference_audio": "ref0.wav"})
    path = root / "list.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "prompt_audio", "reference_audio"])
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def test_load_test_list_resolves_paths_and_checks_columns(test_list, tmp_path):
    items = load_test_list(test_list)
    assert [item.text for item in items] == SENTENCES
    assert items[0].prompt_audio.endswith("prompt.wav") and sf.info(items[0].prompt_audio).samplerate > 0
    bad = tmp_path / "bad.csv"
    bad.write_text("text,prompt\nhello,p.wav\n")
    with pytest.raises(ValueError, match="reference_audio"):
        load_test_list(bad)


def test_evaluate_writes_reports_with_all_metrics(model_dir, test_list, tmp_path):
    out = tmp_path / "eval"
    argv = ["evaluate", "--model", model_dir, "--test_list", test_list, "--output_dir", str(out)]
    assert main([*argv, "--asr_backend", "pocketsphinx", "--speaker_backend", "resemblyzer"]) == 0
    report = json.loads((out / "results.json").read_text())
    summary = report["summary"]
    assert summary["num_items"] == 3 and summary["num_failed"] == 1
    generated, truth = summary["generated"], summary["ground_truth"]
    dnsmos_keys = {"dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"}
    assert set(generated) >= {"wer", "sim_o", "sim_r", "pitch_jsd", "rtf", *dnsmos_keys}
    assert set(truth) >= dnsmos_keys
    assert generated["wer"] >= 0 and generated["rtf"] > 0
    # a random tiny model's audio may hold no voice: every unscored metric then carries its reason per utterance
    errors = [e for item in report["items"][:2] for e in item["errors"]]
    assert 0 <= generated["pitch_jsd"] <= math.log(2) or sum("pitch jsd" in e for e in errors) == 2
    # the ground truth is real (espeak) speech in the prompt's voice: transcribed and similar to the prompt
    assert truth["wer"] < 1.0 and truth["sim_o"] > 0.5 and truth["num_scored"] == 3
    # DNSMOS scores every clip with audio: the ground truth (all 3) and the 2 outputs, each on its 1-5 scale
    for key in dnsmos_keys:
        assert 1.0 <= truth[key] <= 5.0 and 1.0 <= generated[key] <= 5.0, key
    assert all(1.0 <= item["ground_truth_dnsmos_ovrl"] <= 5.0 for item in report["items"])
    print("DNSMOS OVRL/SIG/BAK/P.808, generated:", [generated[f"dnsmos_{k}"] for k in ("ovrl", "sig", "bak", "p808")])
    print("DNSMOS OVRL/SIG/BAK/P.808, ground truth:", [truth[f"dnsmos_{k}"] for k in ("ovrl", "sig", "bak", "p808")])
    items = report["items"]
    for item in items[:2]:
        assert sf.info(item["output_audio"]).samplerate == 16000
        assert item["transcript"] is not None and item["audio_seconds"] > 0
        assert not math.isnan(item["sim_o"]) or any("sim-o" in e for e in item["errors"])
    assert items[2]["output_audio"] is None and any("not found" in e for e in items[2]["errors"])
    markdown = (out / "results.md").read_text()
    assert "| FlashSpeech |" in markdown and "| Ground truth |" in markdown and "Sim-R" in markdown
    assert "missing_prompt.wav" in markdown
    assert markdown == format_markdown(report)
    assert "DNSMOS OVRL" in markdown and "P.808" in markdown
    # the pitch figure lies next to results.md, is linked from it, and is a PNG that decodes
    assert report["figures"]["pitch_distributions"] == "pitch_distributions.png"
    assert "](pitch_distributions.png)" in markdown
    figure = out / "pitch_distributions.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(figure) as image:
        image.verify()
    with Image.open(figure) as image:
        assert image.format == "PNG" and image.size[0] >= 400 and image.size[1] >= 200


def test_dataset_protocol_uses_another_utterance_of_the_same_speaker(tmp_path):
    rate = 16000
    t = np.arange(5 * rate) / rate
    rows = [
        {"audio": {"array": np.sin(2 * np.pi * f * t[: n * rate]), "sampling_rate": rate}, "text": f"utt {i}",
         "speaker_id": spk, "id": f"u{i}"}
        for i, (f, n, spk) in enumerate([(200, 5, "a"), (300, 4, "a"), (250, 5, "b"), (220, 2, "a")])
    ]  # fmt: skip
    items, skipped = build_test_list_from_dataset(rows, tmp_path, min_seconds=4, max_seconds=10, seed=0)
    assert [item.id for item in items] == ["u0", "u1"] and [s["id"] for s in skipped] == ["u2"]
    for item in items:
        assert item.speaker_id == "a"
        prompt, prompt_rate = sf.read(item.prompt_audio)
        assert len(prompt) == 3 * prompt_rate  # a 3 s crop of another utterance (u3 is too short to be a prompt)
        assert item.prompt_text != item.text


def test_pitch_figure_shows_the_histograms_behind_the_pitch_jsd(tmp_path):
    low = [espeak(tmp_path / f"low{i}.wav", text, voice="en-us+m3") for i, text in enumerate(SENTENCES[:2])]
    high = [espeak(tmp_path / f"high{i}.wav", text, voice="en-us+f4") for i, text in enumerate(SENTENCES[:2])]
    jsd = load_metric("prosody_jsd").compute(predictions=high, references=low)["pitch_jsd"]
    generated_f0, generated_errors = voiced_pitch(high)
    reference_f0, reference_errors = voiced_pitch([*low, None, str(tmp_path / "missing.wav")])
    assert generated_errors == [None, None] and reference_errors[:3] == [None, None, "no audio"]
    assert "not found" in reference_errors[3]
    # pooling the voiced frames of every clip gives the metric's frame-weighted pooled histograms
    pooled = jensen_shannon_divergence(pitch_histogram(generated_f0), pitch_histogram(reference_f0))
    assert pooled == pytest.approx(jsd, abs=1e-12) and jsd > 0.1
    path = plot_pitch_distributions(generated_f0, reference_f0, tmp_path / "pitch.png")
    assert path == str(tmp_path / "pitch.png")
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (800, 400)
