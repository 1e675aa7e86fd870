"""Batch synthesis: `flashspeech synthesize --input_csv / --dataset`, one process and two (torch.distributed.run)."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from datasets import Audio, Dataset, load_dataset, load_from_disk
from speech_data import make_prompt

from flashspeech_hf.batch_synthesis import REPORT_FILE, rows_from_csv, rows_from_dataset, synthesize_rows
from flashspeech_hf.cli import main


@pytest.fixture(scope="module")
def saved_pipeline(pipe, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny"
    pipe.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prompts")
    for seed in (0, 1):
        sf.write(folder / f"voice{seed}.wav", make_prompt(1.5, 22050, seed=seed), 22050)
    return folder


def write_csv(path, rows, header=("id", "text", "prompt", "seed")):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def good_rows(prompts, count):
    return [
        (f"utt{i}", f"Row number {i} says hello. It has two sentences.", str(prompts / f"voice{i % 2}.wav"), i + 10)
        for i in range(count)
    ]


def audiofolder_texts(folder):
    data = load_dataset("audiofolder", data_dir=str(folder), split="train").cast_column("audio", Audio(decode=False))
    return {os.path.basename(row["audio"]["path"]): row["text"] for row in data}


def mtimes(folder):
    return {name: os.stat(folder / name).st_mtime_ns for name in os.listdir(folder) if name.endswith(".wav")}


def test_csv_errors_name_the_problem(tmp_path, prompts):
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['prompt'\]"):
        rows_from_csv(write_csv(tmp_path / "a.csv", [("x", "Hi.")], header=("id", "text")))
    with pytest.raises(ValueError, match=r"duplicate ids: \['x'\]"):
        rows_from_csv(write_csv(tmp_path / "b.csv", [("x", "Hi.", "p.wav", ""), ("x", "Yo.", "p.wav", "")]))
    with pytest.raises(ValueError, match="cannot name a file"):
        rows_from_csv(write_csv(tmp_path / "c.csv", [("../escape", "Hi.", "p.wav", "")]))
    with pytest.raises(ValueError, match="no rows"):
        rows_from_csv(write_csv(tmp_path / "d.csv", []))
    with pytest.raises(FileNotFoundError, match="--input_csv"):
        rows_from_csv(tmp_path / "missing.csv")
    # without an id column, rows are numbered; prompt paths are relative to the CSV
    rows = rows_from_csv(write_csv(tmp_path / "e.csv", [("Hi.", "voice0.wav")], header=("text", "prompt")))
    assert rows[0].id == "000000"
    with pytest.raises(FileNotFoundError, match=f"prompt file is not found: {tmp_path / 'voice0.wav'}"):
        rows[0].load_prompt()


def test_csv_rows_bad_rows_reported_rest_written_rerun_skips(pipe, saved_pipeline, prompts, tmp_path, capsys):
    rows = good_rows(prompts, 3) + [
        ("no_prompt", "Hello there.", str(prompts / "missing.wav"), ""),
        ("no_text", "  ", str(prompts / "voice0.wav"), ""),
        ("bad_seed", "Hello there.", str(prompts / "voice0.wav"), "minus one"),
    ]
    table = write_csv(tmp_path / "rows.csv", rows)
    out = tmp_path / "out"
    argv = ["synthesize", "--model", saved_pipeline, "--input_csv", table, "--output_dir", str(out)]
    assert main(argv) == 1  # some rows failed
    err = capsys.readouterr().err
    for row_id, message in (("no_prompt", "prompt file is not found"), ("no_text", "empty"), ("bad_seed", "seed")):
        assert f"row {row_id}:" in err and message in err
    assert sorted(os.listdir(out)) == ["metadata.csv", REPORT_FILE, "utt0.wav", "utt1.wav", "utt2.wav"]
    assert audiofolder_texts(out) == {f"utt{i}.wav": rows[i][1] for i in range(3)}
    # each file is the long-form synthesis of its row with its seed
    audio, rate = sf.read(out / "utt1.wav", dtype="float32")
    expected = pipe.long_form(rows[1][1], rows[1][2], generator=11).audios[0]
    assert rate == pipe.sampling_rate
    np.testing.assert_allclose(audio, np.clip(expected, -1, 1), atol=1.5 / 32768)

    before = mtimes(out)
    assert main(argv) == 1
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["written"] == [] and report["skipped"] == ["utt0", "utt1", "utt2"] and len(report["failed"]) == 3
    assert mtimes(out) == before  # nothing rewritten
    # a fixed row is written on the next run, and only it
    write_csv(table, rows[:3] + [("no_prompt", "Hello there.", str(prompts / "voice1.wav"), "")])
    assert main(argv) == 0
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["written"] == ["no_prompt"] and len(audiofolder_texts(out)) == 4
    with open(out / "metadata.csv", newline="") as handle:
        seeds = {r["id"]: r["seed"] for r in csv.DictReader(handle)}
    assert seeds["utt0"] == "10" and seeds["no_prompt"].isdigit()  # the seed actually used


def test_dataset_rows_with_an_audio_prompt_column(saved_pipeline, prompts, tmp_path):
    data = Dataset.from_dict(
        {
            "id": [7, 8],
            "text": ["From a dataset.", "A second row, with a clause."],
            "prompt": [str(prompts / "voice0.wav"), str(prompts / "voice1.wav")],
        }
    ).cast_column("prompt", Audio())
    data.save_to_disk(tmp_path / "data")
    rows = rows_from_dataset(data)  # audio by path
    assert [r.id for r in rows] == ["7", "8"] and rows[0].prompt == "voice0.wav"
    assert rows[0].load_prompt() == (str(prompts / "voice0.wav"), None)
    rows = rows_from_dataset(load_from_disk(tmp_path / "data"))  # audio embedded as bytes
    audio, rate = rows[1].load_prompt()
    assert rows[1].prompt == "voice1.wav" and rate == 22050 and len(audio) == int(1.5 * 22050)
    out = tmp_path / "out"
    argv = ["synthesize", "--model", saved_pipeline, "--dataset", str(tmp_path / "data"), "--output_dir", str(out)]
    assert main(argv) == 0
    assert audiofolder_texts(out) == {"7.wav": "From a dataset.", "8.wav": "A second row, with a clause."}
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['text'\]"):
        rows_from_dataset(data.rename_column("text", "sentence"))


def test_synthesize_rows_in_process_reports_each_row(pipe, prompts, tmp_path):
    rows = rows_from_csv(write_csv(tmp_path / "rows.csv", good_rows(prompts, 2)))
    report = synthesize_rows(pipe, rows, tmp_path / "out", seed=0, progress=False, batch_size=2)
    assert report["written"] == ["utt0", "utt1"] and report["rank_of"] == {"utt0": 0, "utt1": 0}
    assert report["num_listed"] == 2 and not (tmp_path / "out" / ".synthesis_parts").exists()


def test_two_processes_write_every_row_exactly_once(saved_pipeline, prompts, tmp_path):
    ids = [row[0] for row in good_rows(prompts, 6)]
    table = write_csv(tmp_path / "rows.csv", good_rows(prompts, 6))
    out = tmp_path / "out"
    # torch.distributed's launcher, as `accelerate launch --multi_gpu` uses it; CPU processes form a gloo group
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "flashspeech_hf.cli",
           "synthesize", "--model", saved_pipeline, "--input_csv", table, "--output_dir", str(out)]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")

    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / REPORT_FILE).read_text())
    assert sorted(report["written"]) == sorted(ids) and len(report["written"]) == len(ids)  # each row once
    assert set(report["rank_of"].values()) == {0, 1}  # both processes took rows
    assert audiofolder_texts(out).keys() == {f"{i}.wav" for i in ids}
    assert sorted(name for name in os.listdir(out) if not name.endswith(".wav")) == ["metadata.csv", REPORT_FILE]

    before = mtimes(out)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["written"] == [] and sorted(report["skipped"]) == sorted(ids)
    assert mtimes(out) == before and len(audiofolder_texts(out)) == 6


class _KilledAfter:
    """The pipeline, killed (an exception no row handler catches, as SIGKILL) when the `n`-th row starts."""

    def __init__(self, pipe, n):
        self.pipe, self.n = pipe, n

    def __getattr__(self, name):
        return getattr(self.pipe, name)

    def long_form(self, *args, **kwargs):
        self.n -= 1
        if self.n < 0:
            raise KeyboardInterrupt("killed")
        return self.pipe.long_form(*args, **kwargs)


def test_a_run_killed_and_resumed_gives_the_clean_runs_metadata(pipe, prompts, tmp_path):
    # rows without a seed: each gets --seed plus a hash of its id, which metadata.csv must record
    table = [(f"utt{i}", f"Row {i} says hello.", str(prompts / f"voice{i % 2}.wav"), "") for i in range(4)]
    rows = rows_from_csv(write_csv(tmp_path / "rows.csv", table))
    clean, resumed = tmp_path / "clean", tmp_path / "resumed"
    synthesize_rows(pipe, rows, clean, seed=5, progress=False)
    with pytest.raises(KeyboardInterrupt):
        synthesize_rows(_KilledAfter(pipe, 2), rows, resumed, seed=5, progress=False)
    assert sorted(name for name in os.listdir(resumed) if name.endswith(".wav")) == ["utt0.wav", "utt1.wav"]
    report = synthesize_rows(pipe, rows, resumed, seed=5, progress=False)
    assert report["skipped"] == ["utt0", "utt1"] and report["written"] == ["utt2", "utt3"]
    assert (resumed / "metadata.csv").read_text() == (clean / "metadata.csv").read_text()
    for i in range(4):
        assert (resumed / f"utt{i}.wav").read_bytes() == (clean / f"utt{i}.wav").read_bytes()
    assert not (resumed / ".synthesis_parts").exists()
