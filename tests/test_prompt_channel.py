"""The prompt-only variant of channel augmentation: prepare_dataset.py --prompt_channel_copies_from pairs each
channel-augmented copy with its clean row, and training cuts the prompt from the copy while the target stays clean."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import train_flashspeech as train
from data_utils import PROMPT_CHANNEL_COLUMN, collate_prepared, load_prepared_dataset, split_prompt_from_target
from datasets import Dataset, concatenate_datasets, load_from_disk
from prepare_dataset import (
    DatasetPreparationError,
    align_channel_twin,
    main,
    pair_channel_copies,
    parse_args,
    prepare_dataset,
)
from test_training import base_args, make_prepared_dir


def _copy_row(row: dict, speaker_id: str, latents: np.ndarray, text: str | None = None) -> dict:
    """A channel copy of `row`: other latents (and frames), its speaker, the same text unless given."""
    frames = len(latents)
    durations = list(row["durations"])
    durations[int(np.argmax(durations))] += frames - int(row["num_frames"])  # still sums to the frames
    pitch = np.resize(np.asarray(row["log_pitch"], dtype=np.float32), frames)
    return {
        **row,
        "latents": latents.astype(np.float32),
        "log_pitch": pitch.tolist(),
        "durations": durations,
        "speaker_id": speaker_id,
        "text": row["text"] if text is None else text,
        "num_frames": frames,
    }


def make_channel_prepared_dir(path: Path) -> tuple[Path, list[np.ndarray]]:
    """
    A prepared folder of 6 clean rows (`utterance i` by `spk{i % 3}`) and, between them, 5 channel copies:

    - `spk0_ch0` of row 0: latents + 1, the same frames (paired, offset 0);
    - `spk1_ch1` of row 1: latents + 2 without the first 3 frames (paired, offset 3: a longer lead-in trimmed);
    - `spk2_ch0` of row 2: latents + 3 and 30 frames more (unmatched: length mismatch);
    - `spk9_ch0` with row 1's text (unmatched: no clean row of spk9);
    - `spk1_ch0` of row 4: latents + 4 and its last frame twice more (paired, offset 0, cropped).

    Returns the folder and the clean rows' latents, `(num_frames, latent_dim)` each.
    """
    make_prepared_dir(path, num_rows=6, frames_per_row=(30, 45))
    clean = load_from_disk(str(path / "dataset"))
    rows = list(clean.with_format("numpy"))
    lat = [np.asarray(r["latents"]) for r in rows]
    copies = [
        _copy_row(rows[0], "spk0_ch0", lat[0] + 1.0),
        _copy_row(rows[1], "spk1_ch1", (lat[1] + 2.0)[3:]),
        _copy_row(rows[2], "spk2_ch0", np.concatenate([lat[2] + 3.0, lat[2][:30] + 3.0])),
        _copy_row(rows[3], "spk9_ch0", lat[3] + 5.0, text=rows[1]["text"]),
        _copy_row(rows[4], "spk1_ch0", np.concatenate([lat[4] + 4.0, lat[4][-1:] + 4.0, lat[4][-1:] + 4.0])),
    ]
    copy_set = Dataset.from_list(copies, features=clean.features)
    # interleaved: clean 0-2, copies 0-2, clean 3-5, copies 3-4 (the output keeps the clean rows' order)
    mixed = concatenate_datasets(
        [clean.select(range(3)), copy_set.select(range(3)), clean.select(range(3, 6)), copy_set.select(range(3, 5))]
    )
    mixed = mixed.flatten_indices(keep_in_memory=True)
    shutil.rmtree(path / "dataset")
    mixed.save_to_disk(str(path / "dataset"))
    return path, lat


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


# ---------------------------------------------------------------------------------------------------------- pairing


def test_pairing_by_speaker_and_text_reports_what_it_cannot_pair():
    speakers = ["a", "a", "b", "a_ch0", "a_ch1", "b_ch0", "c_ch3", "b_ch1", "a_ch2"]
    texts = ["hi", "hi", "yo", "hi", "hi", "yo", "hi", "zz", "hi"]
    frames = [50, 60, 40, 59, 52, 70, 50, 40, 50]
    pairs, unmatched = pair_channel_copies(speakers, texts, frames, max_frame_difference=16)
    # two clean "a: hi" rows: each copy takes the unpaired one closest in frames; a third copy finds none left
    assert pairs == [(1, 3), (0, 4)]
    by_index = {record["index"]: record for record in unmatched}
    assert by_index[5]["reason"] == "length_mismatch" and by_index[5]["frame_difference"] == 30
    assert by_index[5]["clean_index"] == 2
    assert by_index[6]["reason"] == "no_clean_row"  # no speaker c
    assert by_index[7]["reason"] == "no_clean_row"  # b, but another text
    assert by_index[8]["reason"] == "no_clean_row"  # both "a: hi" rows already paired
    assert sorted(by_index) == [5, 6, 7, 8]
    # the limit is inclusive; another pattern names the copies differently
    assert pair_channel_copies(speakers, texts, frames, max_frame_difference=30)[0][-1] == (2, 5)
    assert pair_channel_copies(["x", "x-telephone"], ["t", "t"], [9, 9], r"^(.*)-telephone$") == ([(0, 1)], [])
    with pytest.raises(DatasetPreparationError, match="group"):
        pair_channel_copies(speakers, texts, frames, speaker_pattern=r".*_ch\d+$")


def test_alignment_finds_the_trimmed_lead_in_and_pads_with_edge_frames():
    rng = np.random.default_rng(0)
    envelope = np.repeat(rng.normal(size=12), 5)  # 60 frames, piecewise constant loudness
    clean = (envelope[:, None] + 0.05 * rng.normal(size=(60, 4))).astype(np.float32)
    # the same length: taken as it is
    same, offset = align_channel_twin(clean, clean + 1.0)
    assert offset == 0 and np.array_equal(same, clean + 1.0)
    # 4 frames of lead-in and 2 of tail cut: found at offset 4, the missing frames are the copy's edge frames
    copy = clean[4:-2] * 0.5 + 1.0
    aligned, offset = align_channel_twin(clean, copy)
    assert offset == 4 and aligned.shape == clean.shape and aligned.dtype == np.float32
    assert np.array_equal(aligned[4:58], copy) and (aligned[:4] == copy[0]).all() and (aligned[58:] == copy[-1]).all()
    # a longer copy (a reverb tail and 3 frames more lead-in): cropped to the clean frames
    longer = np.concatenate([np.zeros((3, 4)), clean, np.zeros((5, 4))]).astype(np.float32)
    aligned, offset = align_channel_twin(clean, longer)
    assert offset == -3 and np.array_equal(aligned, clean)
    with pytest.raises(ValueError, match="non-empty twin"):
        align_channel_twin(clean, np.zeros((0, 4), np.float32))


# ------------------------------------------------------------------------------------------------- prepared folder


def test_prompt_channel_copies_become_the_clean_rows_prompt_latents(tmp_path, capsys):
    source, clean = make_channel_prepared_dir(tmp_path / "prepared")
    before = _files(source)
    output = tmp_path / "promptch"
    assert main(["--prompt_channel_copies_from", str(source), "--output_dir", str(output)]) == 0
    assert "Paired 3 of 5 channel-copy rows" in capsys.readouterr().out
    assert _files(source) == before  # the input is only read: no cache file next to it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared", "promptch"]  # no staging folder left

    data = load_prepared_dataset(output)
    dataset = data.dataset.with_format("numpy")
    assert dataset.column_names[-1] == PROMPT_CHANNEL_COLUMN and len(dataset) == 6
    assert dataset["speaker_id"] == [f"spk{i % 3}" for i in range(6)]  # every copy removed, the clean rows in order
    original = load_from_disk(str(source / "dataset")).with_format("numpy")
    clean_rows = [i for i, s in enumerate(original["speaker_id"]) if "_ch" not in s]
    for i, row in enumerate(dataset):
        for key in ("input_ids", "latents", "log_pitch", "durations", "text", "num_frames"):
            assert np.array_equal(row[key], original[clean_rows[i]][key]), key
    twins = [row[PROMPT_CHANNEL_COLUMN] for row in dataset]
    assert np.array_equal(twins[0], clean[0] + 1.0)
    # row 1's copy lacked the first 3 frames: aligned at offset 3, its first frame repeated in front
    assert twins[1].shape == clean[1].shape
    assert np.allclose(twins[1][3:], clean[1][3:] + 2.0) and np.allclose(twins[1][:3], clean[1][3] + 2.0)
    assert np.array_equal(twins[4], clean[4] + 4.0)  # 2 frames longer: cropped
    for i in (2, 3, 5):  # length mismatch; not copied; no copy
        assert twins[i].shape == (0, clean[0].shape[1])

    config = json.loads((output / "prepare_config.json").read_text())
    record = config["prompt_channel_copies"]
    assert record["copy_rows"] == 5 and record["pairs"] == 3 and record["rows_with_prompt_channel"] == 3
    assert record["unmatched"] == {"length_mismatch": 1, "no_clean_row": 1}
    assert {r["speaker_id"] for r in record["unmatched_rows"]} == {"spk2_ch0", "spk9_ch0"}
    assert record["frame_difference_counts"] == {"-3": 1, "0": 1, "2": 1} and record["offset_counts"] == {
        "0": 2,
        "3": 1,
    }
    assert config["counts"]["kept"] == 6 and config["counts"]["frames"] == sum(len(x) for x in clean)
    assert record["source_rows"] == 11
    for sub in ("tokenizer", "codec", "aligner"):  # carried over as they are
        assert {p: s for p, (s, _) in _files(source / sub).items()} == {
            p: s for p, (s, _) in _files(output / sub).items()
        }
        for name in _files(source / sub):
            assert (source / sub / name).is_dir() or (source / sub / name).read_bytes() == (
                output / sub / name
            ).read_bytes()

    # the output is a finished prepared folder: deriving again is refused, as is an input without copies
    with pytest.raises(DatasetPreparationError, match="already has"):
        prepare_dataset(parse_args(["--prompt_channel_copies_from", str(output), "--output_dir", str(tmp_path / "x")]))
    plain = make_prepared_dir(tmp_path / "plain", num_rows=3, frames_per_row=(30, 40))
    with pytest.raises(DatasetPreparationError, match="no channel copy"):
        prepare_dataset(parse_args(["--prompt_channel_copies_from", str(plain), "--output_dir", str(tmp_path / "y")]))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_prompt_channel_output_is_written_atomically(tmp_path, monkeypatch):
    source, _ = make_channel_prepared_dir(tmp_path / "prepared")
    output = tmp_path / "promptch"
    argv = ["--prompt_channel_copies_from", str(source), "--output_dir", str(output)]
    prepare_dataset(parse_args(argv))
    finished = _files(output)

    # a failure after the rows are written (while copying the codec) leaves the previous output as it was
    def broken_copytree(src, dst, *args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(shutil, "copytree", broken_copytree)
    with pytest.raises(OSError, match="No space"):
        prepare_dataset(parse_args(argv))
    assert _files(output) == finished
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared", "promptch"]
    monkeypatch.undo()
    # arguments that cannot work fail before anything is written
    for extra, message in (
        (["--output_dir", str(source / "inside")], "outside"),
        (["--output_dir", str(tmp_path / "z"), "--dataset_name_or_path", str(source)], "reads no audio"),
        (["--output_dir", str(tmp_path / "z"), "--prompt_channel_max_frame_difference", "-1"], ">= 0"),
    ):
        with pytest.raises(DatasetPreparationError, match=message):
            prepare_dataset(parse_args(["--prompt_channel_copies_from", str(source), *extra]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared", "promptch"]


# -------------------------------------------------------------------------------------------------------- training


def _rows(path: Path) -> list[dict]:
    dataset = load_from_disk(str(path / "dataset")).with_format("torch")
    return [dataset[i] for i in range(len(dataset))]


def test_rows_without_a_copy_give_the_same_batches_as_without_the_column(tmp_path):
    rows = _rows(make_prepared_dir(tmp_path / "prep", num_rows=5, frames_per_row=(30, 45)))
    plain = collate_prepared(rows)
    assert set(plain) == {
        "input_ids", "attention_mask", "durations", "latents", "latent_mask", "log_pitch", "text", "speaker_id",
    }  # fmt: skip
    empty = [{**row, PROMPT_CHANNEL_COLUMN: torch.zeros(0, row["latents"].shape[1])} for row in rows]
    with_column = collate_prepared(empty)
    assert not with_column["has_prompt_channel"].any()
    assert torch.equal(with_column[PROMPT_CHANNEL_COLUMN], plain["latents"])
    a = split_prompt_from_target(plain, 0.2, 0.4, torch.Generator().manual_seed(7))
    b = split_prompt_from_target(with_column, 0.2, 0.4, torch.Generator().manual_seed(7))
    assert PROMPT_CHANNEL_COLUMN not in b and set(b) == set(a) | {"has_prompt_channel"}
    for key, value in a.items():
        assert torch.equal(value, b[key]) if isinstance(value, torch.Tensor) else value == b[key], key


def test_the_prompt_comes_from_the_channel_copy_and_the_target_stays_clean(tmp_path):
    rows = _rows(make_prepared_dir(tmp_path / "prep", num_rows=6, frames_per_row=(30, 45)))
    # rows 0, 2, 4 have a copy (latents + 10), the others none
    twins = [
        row["latents"] + 10.0 if i % 2 == 0 else torch.zeros(0, row["latents"].shape[1]) for i, row in enumerate(rows)
    ]
    batch = collate_prepared([{**row, PROMPT_CHANNEL_COLUMN: twin} for row, twin in zip(rows, twins)])
    assert batch["has_prompt_channel"].tolist() == [True, False] * 3
    plain = split_prompt_from_target(collate_prepared(rows), 0.2, 0.4, torch.Generator().manual_seed(3))
    split = split_prompt_from_target(batch, 0.2, 0.4, torch.Generator().manual_seed(3))
    # the same cuts and the same clean target
    for key in ("input_ids", "attention_mask", "durations", "latents", "latent_mask", "log_pitch", "prompt_mask",
                "prompt_frame_start", "prompt_num_frames", "prompt_phoneme_start", "prompt_num_phonemes"):  # fmt: skip
        assert torch.equal(split[key], plain[key]), key
    full = collate_prepared(rows)
    for b in range(len(rows)):
        f0, fn = int(split["prompt_frame_start"][b]), int(split["prompt_num_frames"][b])
        expected = full["latents"][b, :, f0 : f0 + fn] + (10.0 if b % 2 == 0 else 0.0)
        assert torch.equal(split["prompt_latents"][b, :, :fn], expected), b
    # a copy of another length than its row is refused
    bad = [{**rows[0], PROMPT_CHANNEL_COLUMN: rows[0]["latents"][1:]}]
    with pytest.raises(ValueError, match="shape of its `latents`"):
        collate_prepared(bad)


def test_training_reads_a_prompt_channel_dataset(tmp_path, caplog):
    source, _ = make_channel_prepared_dir(tmp_path / "prepared")
    output = tmp_path / "promptch"
    prepare_dataset(parse_args(["--prompt_channel_copies_from", str(source), "--output_dir", str(output)]))
    with caplog.at_level(logging.INFO):
        summary = train.main(
            base_args(output, tmp_path / "out", "--max_train_steps", "2", "--train_batch_size", "6",
                      "--checkpointing_steps", "100", "--adversarial_start_step", "1000")
        )  # fmt: skip
    assert summary["global_step"] == 2
    assert any("3 of 6 rows cut their prompt from another channel" in r.getMessage() for r in caplog.records)
