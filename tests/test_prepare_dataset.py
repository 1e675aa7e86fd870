"""training/prepare_dataset.py on a small espeak-ng audiofolder (5 good clips, one corrupt, one silent, one clip whose
transcript is far too long)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from data_utils import PREPARED_COLUMNS, collate_prepared, frame_budget_batches, load_prepared_dataset
from datasets import Audio, Dataset
from prepare_dataset import (
    DatasetPreparationError,
    main,
    parse_args,
    prepare_dataset,
    silent_token_ids,
)
from speech_data import CORRUPT_FILE, SILENT_FILE, make_speech_audiofolder, speaker_voices

from flashspeech_hf import load_audio
from flashspeech_hf.models.modeling_aligner import FlashSpeechAligner

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "training" / "prepare_dataset.py"

# tiny sizes; a high learning rate so that 30 full-batch steps visibly train the aligner
BASE_ARGS = ["--pipeline_config", "tiny", "--aligner_steps", "30", "--aligner_learning_rate", "1e-2"]


@pytest.fixture(scope="session")
def speech_folder(tmp_path_factory):
    return make_speech_audiofolder(tmp_path_factory.getbasetemp() / "speech_audiofolder")


def run(folder, output_dir, *extra):
    argv = ["--dataset_name_or_path", str(folder), "--output_dir", str(output_dir), *BASE_ARGS, *extra]
    return prepare_dataset(parse_args(argv))


@pytest.fixture(scope="module")
def prepared(speech_folder, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("prepared") / "out"
    summary = run(speech_folder, output_dir, "--speaker_column", "speaker_id")
    return output_dir, summary


def test_output_follows_the_format(prepared, speech_folder, capsys):
    output_dir, summary = prepared
    data = load_prepared_dataset(output_dir)
    dataset = data.dataset
    assert tuple(dataset.column_names) == PREPARED_COLUMNS
    assert data.aligner_path is not None and summary["durations_source"] == "aligner"
    assert summary["counts"]["examples"] == 8 and len(dataset) == 5
    assert summary["counts"]["skipped"] == {"unreadable_audio": 1, "silent": 1, "text_mismatch": 1}
    assert json.loads((output_dir / "prepare_config.json").read_text())["counts"] == summary["counts"]
    # nothing left next to the output
    assert sorted(p.name for p in output_dir.parent.iterdir()) == ["out"]

    rows = list(dataset.with_format("numpy"))
    latent_dim = data.codec.latent_dim
    for row in rows:
        frames = int(row["num_frames"])
        assert row["latents"].shape == (frames, latent_dim)
        assert row["log_pitch"].shape == (frames,) and np.isfinite(row["log_pitch"]).all()
        assert len(row["durations"]) == len(row["input_ids"]) > 0
        # word boundaries and stress marks have no sound: 0 frames; every phoneme has at least one
        silent = np.isin(row["input_ids"], silent_token_ids(data.tokenizer))
        assert silent.any() and (row["durations"][silent] == 0).all() and row["durations"][~silent].min() >= 1
        assert int(row["durations"].sum()) == frames
        assert row["text"] and row["speaker_id"] in speaker_voices()
    assert summary["counts"]["frames"] == sum(int(r["num_frames"]) for r in rows)

    # normalized latents have std sigma_data = 0.5 per channel, and the saved codec reproduces them from the audio
    latents = np.concatenate([row["latents"] for row in rows])
    np.testing.assert_allclose(latents.std(0), 0.5, atol=1e-3)
    np.testing.assert_allclose(latents.mean(0), 0.0, atol=1e-3)
    waveform, rate = load_audio(speech_folder / "clip_000.wav")
    with torch.no_grad():
        again = data.codec.encode(waveform[None], rate)[0].T.numpy()
    np.testing.assert_allclose(again, rows[0]["latents"], atol=1e-3)

    # the aligner learned something: its forward-sum loss went down
    assert summary["aligner"]["forward_sum_loss_last"] < summary["aligner"]["forward_sum_loss_first"]


def test_pitch_is_plausible_for_the_voices(prepared):
    output_dir, _ = prepared
    dataset = load_prepared_dataset(output_dir, load_codec_weights=False).dataset
    median_f0 = {}
    for row in dataset.with_format("numpy"):
        median_f0.setdefault(row["speaker_id"], []).append(float(np.exp(np.median(row["log_pitch"]))))
    for speaker, values in median_f0.items():
        if speaker.startswith("male"):
            assert all(70 < f0 < 140 for f0 in values), (speaker, values)
        else:
            assert all(150 < f0 < 300 for f0 in values), (speaker, values)
    assert min(median_f0["female_f2"]) > 1.5 * max(median_f0["male_m3"])


def test_skipped_examples_are_reported(prepared, speech_folder, capsys):
    output_dir, summary = prepared
    by_reason = {e["reason"]: e for e in summary["skipped_examples"]}
    assert CORRUPT_FILE in by_reason["unreadable_audio"]["detail"]
    assert "silent" in by_reason["silent"]["detail"]
    assert "phonemes" in by_reason["text_mismatch"]["detail"]
    # a re-run with the same arguments reuses every step and prints the same summary
    features_file = next((output_dir / "cache").glob("features-*/shard-*.arrow"))
    mtime = features_file.stat().st_mtime_ns
    capsys.readouterr()
    again = run(speech_folder, output_dir, "--speaker_column", "speaker_id")
    printed = capsys.readouterr().out
    assert "Prepared 5 of 8 examples" in printed
    assert "Skipped 3: silent 1, text_mismatch 1, unreadable_audio 1." in printed
    assert again["reused"] == {"features": True, "aligner": True, "final": True}
    assert features_file.stat().st_mtime_ns == mtime
    assert again["counts"] == summary["counts"] and again["aligner"] == summary["aligner"]


def test_failed_run_keeps_the_previous_output(prepared, speech_folder):
    output_dir, _ = prepared
    before = (output_dir / "prepare_config.json").read_text()
    with pytest.raises(DatasetPreparationError, match="No usable example"):
        run(speech_folder, output_dir, "--min_seconds", "20", "--max_seconds", "30")
    assert (output_dir / "prepare_config.json").read_text() == before
    assert len(load_prepared_dataset(output_dir, load_codec_weights=False).dataset) == 5
    assert [p.name for p in output_dir.parent.iterdir()] == ["out"]


def test_streaming_gives_the_same_rows(prepared, speech_folder, tmp_path):
    output_dir, _ = prepared
    summary = run(speech_folder, tmp_path / "streamed", "--streaming", "--max_samples", "7", "--aligner_steps", "2")
    assert summary["counts"]["examples"] == 7
    assert summary["counts"]["skipped"] == {"unreadable_audio": 1, "silent": 1}
    streamed = load_prepared_dataset(tmp_path / "streamed", load_codec_weights=False).dataset.with_format("numpy")
    reference = load_prepared_dataset(output_dir, load_codec_weights=False).dataset.with_format("numpy")
    assert len(streamed) == len(reference)
    for a, b in zip(streamed, reference):
        assert a["text"] == b["text"] and a["speaker_id"] == ""  # no --speaker_column this time
        np.testing.assert_array_equal(a["input_ids"], b["input_ids"])
        np.testing.assert_allclose(a["latents"], b["latents"], atol=1e-5)
        np.testing.assert_allclose(a["log_pitch"], b["log_pitch"], atol=1e-6)
        assert int(a["durations"].sum()) == int(a["num_frames"])


def test_user_durations_are_used(prepared, speech_folder, tmp_path):
    output_dir, _ = prepared
    reference = {row["text"]: row for row in load_prepared_dataset(output_dir, load_codec_weights=False).dataset}
    metadata = [line.split(",", 2) for line in (speech_folder / "metadata.csv").read_text().splitlines()[1:]]
    records = {"audio": [], "text": [], "durations": []}
    for file_name, text, _ in metadata:
        if text not in reference or file_name in (CORRUPT_FILE, SILENT_FILE):
            continue
        row = reference[text]
        edges = np.linspace(0, row["num_frames"], len(row["input_ids"]) + 1).round().astype(int)
        records["audio"].append({"bytes": (speech_folder / file_name).read_bytes(), "path": file_name})
        records["text"].append(text)
        records["durations"].append(np.diff(edges).tolist())
    records["durations"][-1][0] += 1  # no longer sums to the frames: skipped
    parquet = tmp_path / "with_durations.parquet"
    Dataset.from_dict(records).cast_column("audio", Audio(decode=False)).to_parquet(str(parquet))

    summary = run(parquet, tmp_path / "out", "--durations_column", "durations")
    assert summary["durations_source"] == "column 'durations'" and summary["aligner"] is None
    assert summary["counts"]["skipped"] == {"invalid_durations": 1}
    assert not (tmp_path / "out" / "aligner").exists()
    given = dict(zip(records["text"], records["durations"]))
    dataset = load_prepared_dataset(tmp_path / "out", load_codec_weights=False).dataset
    assert len(dataset) == len(records["text"]) - 1
    for row in dataset:
        assert row["durations"] == given[row["text"]]


def test_pretrained_aligner_is_used_as_is_or_trained_further(prepared, speech_folder, tmp_path):
    output_dir, _ = prepared
    reference = {row["text"]: row["durations"] for row in load_prepared_dataset(output_dir).dataset}
    reuse = ["--codec_name_or_path", str(output_dir / "codec"), "--reuse_latent_statistics"]

    summary = run(
        speech_folder, tmp_path / "as_is", *reuse, "--aligner_name_or_path", str(output_dir), "--aligner_steps", "0"
    )
    assert summary["aligner"]["steps"] == 0 and summary["aligner"]["pretrained"] == str(output_dir)
    rows = load_prepared_dataset(tmp_path / "as_is").dataset
    assert {row["text"]: row["durations"] for row in rows} == reference  # the same aligner on the same latents

    summary = run(speech_folder, tmp_path / "further", *reuse, "--aligner_name_or_path", str(output_dir / "aligner"))
    assert summary["aligner"]["steps"] == 30 and summary["aligner"]["binarization_start"] == 0
    further = load_prepared_dataset(tmp_path / "further")
    assert further.aligner_path is not None
    trained = dict(FlashSpeechAligner.from_pretrained(further.aligner_path).state_dict())
    start = dict(FlashSpeechAligner.from_pretrained(str(output_dir / "aligner")).state_dict())
    assert any(not torch.equal(trained[k], start[k]) for k in start)

    with pytest.raises(DatasetPreparationError, match="needs --reuse_latent_statistics"):
        run(speech_folder, tmp_path / "x", "--aligner_name_or_path", str(output_dir))
    with pytest.raises(DatasetPreparationError, match="silent tokens .*--aligner_keep_silent_tokens"):
        run(
            speech_folder,
            tmp_path / "x",
            *reuse,
            "--aligner_name_or_path",
            str(output_dir),
            "--aligner_keep_silent_tokens",
        )
    with pytest.raises(DatasetPreparationError, match="Could not load --aligner_name_or_path"):
        run(speech_folder, tmp_path / "x", *reuse, "--aligner_name_or_path", str(tmp_path))
    with pytest.raises(DatasetPreparationError, match="trains no aligner"):
        run(speech_folder, tmp_path / "x", "--aligner_steps", "0")
    assert not (tmp_path / "x").exists()


def test_user_errors_are_clear_and_leave_nothing(speech_folder, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(DatasetPreparationError, match=r"no column 'transcript' \(--text_column\).*'text'"):
        run(speech_folder, out, "--text_column", "transcript")
    assert not out.exists()
    assert (
        main(["--dataset_name_or_path", str(speech_folder), "--output_dir", str(out), "--speaker_column", "who"]) == 2
    )
    assert "no column 'who'" in capsys.readouterr().err
    assert not out.exists()

    empty = tmp_path / "empty.csv"
    empty.write_text("audio,text\n")
    with pytest.raises(DatasetPreparationError, match="is empty"):
        run(empty, out)
    assert not out.exists()

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetPreparationError, match="overwrite_output_dir"):
        run(speech_folder, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_collate_and_frame_budget_batches():
    rows = [
        {
            "input_ids": [5, 6, 7],
            "latents": np.ones((9, 4), np.float32),
            "log_pitch": np.zeros(9),
            "durations": [3, 3, 3],
        },
        {"input_ids": [5, 6], "latents": np.ones((5, 4), np.float32), "log_pitch": np.zeros(5), "durations": [2, 3]},
    ]
    batch = collate_prepared(rows, pad_token_id=0)
    assert batch["latents"].shape == (2, 4, 9) and batch["latents"][1, :, 5:].abs().sum() == 0
    assert batch["latent_mask"].sum(1).tolist() == [9, 5] and batch["attention_mask"].sum(1).tolist() == [3, 2]
    assert batch["durations"].sum(1).tolist() == batch["latent_mask"].sum(1).tolist()
    with pytest.raises(ValueError, match="log_pitch"):
        collate_prepared([{**rows[0], "log_pitch": np.zeros(3)}])

    lengths = [100, 20, 30, 90, 10, 500, 25]
    batches = frame_budget_batches(lengths, 200, generator=torch.Generator().manual_seed(0))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 200 for b in batches)
    assert [5] in batches  # longer than the budget: alone


def assert_same_rows(path_a, path_b):
    a = load_prepared_dataset(path_a, load_codec_weights=False).dataset.with_format("numpy")
    b = load_prepared_dataset(path_b, load_codec_weights=False).dataset.with_format("numpy")
    assert len(a) == len(b) > 0
    for row_a, row_b in zip(a, b):
        for column in PREPARED_COLUMNS:
            np.testing.assert_array_equal(row_a[column], row_b[column], err_msg=column)


def test_num_proc_gives_the_same_rows(prepared, speech_folder, tmp_path):
    """`--num_proc 2`: shards featurized by two spawned workers (a forked one used to hang) give the same rows."""
    output_dir, _ = prepared
    summary = run(
        speech_folder, tmp_path / "out", "--speaker_column", "speaker_id", "--num_proc", "2", "--shard_size", "3"
    )
    assert summary["counts"] == prepared[1]["counts"]
    assert len(list((tmp_path / "out" / "cache").glob("features-*-3/shard-*.arrow"))) == 3  # 8 examples
    assert_same_rows(tmp_path / "out", output_dir)


def test_two_processes_resume_a_killed_run(speech_folder, tmp_path):
    """
    A run killed in the middle of its shards keeps the finished ones; `torchrun` with 2 processes resumes it (each
    featurizes its share of the rest, the main process merges) and gives the rows of one uninterrupted process.
    """
    out = tmp_path / "out"
    # PyWorld's harvest takes ~0.5 s a clip: the run is still featurizing when the test sees its first shard
    argv = ["--dataset_name_or_path", str(speech_folder), "--output_dir", str(out), "--speaker_column", "speaker_id",
            "--shard_size", "1", "--pitch_algorithm", "harvest", *BASE_ARGS]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    killed = subprocess.Popen([sys.executable, str(SCRIPT), *argv], env=env, stderr=subprocess.PIPE)
    shards = out / "cache"
    deadline = time.monotonic() + 300
    while not list(shards.glob("features-*/shard-*.arrow")):
        assert killed.poll() is None and time.monotonic() < deadline, killed.stderr.read().decode()[-3000:]
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    kept = {path: path.stat().st_mtime_ns for path in shards.glob("features-*/shard-*.arrow")}
    assert 1 <= len(kept) < 8 and not (out / "dataset").exists()

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(SCRIPT), *argv]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Process 1 of 2 featurized its shards" in result.stdout
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in kept.items())
    assert len(list(shards.glob("features-*/shard-*.arrow"))) == 8
    assert not list(shards.glob("features-*/.shard-*"))  # a killed writer's temporary file is gone
    config = json.loads((out / "prepare_config.json").read_text())
    assert config["counts"]["examples"] == 8 and config["reused"]["features"] is False

    reference = run(
        speech_folder, tmp_path / "reference", "--speaker_column", "speaker_id", "--pitch_algorithm", "harvest"
    )
    assert reference["counts"] == config["counts"]
    assert_same_rows(out, tmp_path / "reference")
