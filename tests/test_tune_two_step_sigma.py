"""training/tune_two_step_sigma.py: the two-step intermediate level chosen on a development list, written atomically."""

import json

import numpy as np
import pytest
import soundfile as sf
import tune_two_step_sigma
from tune_two_step_sigma import main, write_two_step_sigma

from flashspeech_hf import FlashSpeechPipeline, FlashSpeechScheduler


@pytest.fixture()
def saved(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "pipeline")
    t = np.arange(32000) / 16000
    sf.write(tmp_path / "prompt.wav", 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)), 16000)
    (tmp_path / "dev.csv").write_text("text,prompt_audio\nHello there.,prompt.wav\nA second line.,prompt.wav\n")
    return tmp_path


def test_the_level_with_the_lowest_word_error_rate_is_chosen_and_written(saved, monkeypatch):
    import flashspeech_hf.metrics

    heard_levels = []

    def judge(audios, sampling_rate=None, backend=None):
        """Understands the outputs only when the script has set two_step_sigma to 5."""
        level = current["value"]
        heard_levels.append(level)
        saved_level = FlashSpeechScheduler.from_pretrained(saved / "pipeline" / "scheduler").config.two_step_sigma
        assert saved_level == 2.0  # the checkpoint is not touched while the levels are tried
        good = level == 5.0
        return ["hello there", "a second line"] if good else ["", "a second"]

    current = {}
    real_validate = tune_two_step_sigma.validate

    def validate(pipe, *args):
        current["value"] = pipe.scheduler.config.two_step_sigma  # the level the pipeline samples with
        return real_validate(pipe, *args)

    monkeypatch.setattr(flashspeech_hf.metrics, "transcribe", judge)
    monkeypatch.setattr(tune_two_step_sigma, "validate", validate)
    summary = main(["--pipeline", str(saved / "pipeline"), "--dev_file", str(saved / "dev.csv"), "--values", "2,5,10",
                    "--output_dir", str(saved / "tuning"), "--write"])  # fmt: skip
    assert heard_levels == [2.0, 5.0, 10.0]
    assert summary["two_step_sigma"] == 5.0 and summary["wer"] == {"2": 0.6, "5": 0.0, "10": 0.6}
    assert json.loads((saved / "tuning" / "two_step_sigma.json").read_text()) == summary
    for level in ("2", "5", "10"):  # each level's audio and transcripts are kept for listening
        assert sorted(p.name for p in (saved / "tuning" / f"two_step_sigma_{level}").iterdir()) == [
            "000.wav", "001.wav", "transcripts.json"
        ]  # fmt: skip
    loaded = FlashSpeechPipeline.from_pretrained(saved / "pipeline")
    assert loaded.scheduler.config.two_step_sigma == 5.0
    for key, value in FlashSpeechScheduler().config.items():  # the other keys are kept
        if not key.startswith("_") and key != "two_step_sigma":
            assert loaded.scheduler.config[key] == value, key
    assert sorted(p.name for p in (saved / "pipeline" / "scheduler").iterdir()) == ["scheduler_config.json"]


def test_levels_outside_the_schedule_and_bad_lists_are_refused(saved):
    with pytest.raises(ValueError, match=r"two_step_sigma=80.0 must lie strictly between sigma_min and sigma_max"):
        main(["--pipeline", str(saved / "pipeline"), "--dev_file", str(saved / "dev.csv"), "--values", "5,80",
              "--output_dir", str(saved / "tuning")])  # fmt: skip
    assert not (saved / "tuning").exists()  # refused before any synthesis
    with pytest.raises(SystemExit, match="comma-separated numbers"):
        main(["--pipeline", str(saved / "pipeline"), "--dev_file", str(saved / "dev.csv"), "--values", "5,x",
              "--output_dir", str(saved / "tuning")])  # fmt: skip
    with pytest.raises(ValueError, match="must lie strictly between"):
        write_two_step_sigma(str(saved / "pipeline"), 100.0)
    assert FlashSpeechScheduler.from_pretrained(saved / "pipeline" / "scheduler").config.two_step_sigma == 2.0
