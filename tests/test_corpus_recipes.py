"""`prepare_dataset.py --corpus NAME` on small local fixtures written in each corpus's schema as the Hub has it (columns,
sampling rate, split names; Emilia as webdataset shards of mp3 + json), from espeak-ng clips: no download."""

import csv
import io
import json
import tarfile

import numpy as np
import pytest
import soundfile as sf
from data_utils import load_prepared_dataset
from datasets import Audio, Dataset, DatasetDict
from prepare_dataset import CORPUS_RECIPES, parse_args, prepare_dataset
from speech_data import make_speech_audiofolder

from flashspeech_hf import load_audio

# the columns of each corpus besides its audio, text and speaker columns, as on the Hub
EXTRA_COLUMNS = {
    "mls_eng": {"original_path": "", "begin_time": 0.0, "end_time": 0.0, "audio_duration": 0.0, "book_id": "10238"},
    "libritts_r": {"path": "", "chapter_id": "129742", "id": "", "text_original": "ORIGINAL"},
    "libritts": {"path": "", "chapter_id": "129742", "id": "", "text_original": "ORIGINAL"},
    "vctk": {
        "file": "",
        "text_id": "001",
        "age": "23",
        "gender": "F",
        "accent": "English",
        "region": "",
        "comment": "",
    },
    "ljspeech": {"id": "LJ001-0001", "file": "", "text": "RAW TEXT 1813"},
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """(waveform, rate, text, speaker) of the 5 good clips of the shared espeak-ng folder."""
    folder = make_speech_audiofolder(tmp_path_factory.getbasetemp() / "speech_audiofolder")
    with open(folder / "metadata.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[:5]
    return [(*load_audio(folder / r["file_name"]), r["text"], r["speaker_id"]) for r in rows]


def encoded(waveform, rate: int, target_rate: int, fmt: str = "WAV") -> bytes:
    resampled, _ = load_audio(waveform, rate, target_rate)
    buffer = io.BytesIO()
    sf.write(buffer, resampled.numpy(), target_rate, format=fmt)
    return buffer.getvalue()


def write_fixture(name: str, clips, root):
    """The corpus's recipe split gets clips 0-2; its other splits clip 3 or 4. Returns the expected texts/speakers."""
    recipe = CORPUS_RECIPES[name]
    rate = recipe["sampling_rate"]
    expected = []
    if name == "emilia":  # webdataset shards laid out as in the repository, in the recipe's --data_files
        shard_dir = root / recipe["data_files"].rsplit("/", 1)[0]
        shard_dir.mkdir(parents=True)
        with tarfile.open(shard_dir / "EN-B000000.tar", "w") as tar:
            for index, (waveform, clip_rate, text, _) in enumerate(clips[:3]):
                key = f"EN_B00000_S0000{index}_W000000"
                meta = {"id": key, "wav": f"EN_B00000/{key}.mp3", "text": f" {text}", "duration": 3.0,
                        "speaker": f"EN_B00000_S0000{index}", "language": "en", "dnsmos": 3.3}  # fmt: skip
                for suffix, data in (("mp3", encoded(waveform, clip_rate, rate, "MP3")), ("json", json.dumps(meta))):
                    data = data.encode() if isinstance(data, str) else data
                    info = tarfile.TarInfo(f"{key}.{suffix}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                expected.append((meta["text"], meta["speaker"]))  # as Emilia has it, with its leading space
        return expected
    splits = {}
    for split in recipe["splits"]:
        chosen = clips[:3] if split == recipe["split"] else clips[3 + len(splits) % 2 : 4 + len(splits) % 2]
        rows = []
        for waveform, clip_rate, text, speaker in chosen:
            text_value = text.lower().rstrip(".?!") if name == "mls_eng" else text  # MLS: lower case, no final mark
            row = {**EXTRA_COLUMNS[name], recipe["text_column"]: text_value}
            if recipe["speaker_column"]:
                row[recipe["speaker_column"]] = speaker
            row[recipe["audio_column"]] = {"bytes": encoded(waveform, clip_rate, rate), "path": f"{speaker}.wav"}
            rows.append(row)
            if split == recipe["split"]:
                expected.append((text_value, speaker if recipe["speaker_column"] else ""))
        dataset = Dataset.from_list(rows).cast_column(recipe["audio_column"], Audio(sampling_rate=rate))
        splits[split] = dataset
    DatasetDict(splits).save_to_disk(str(root))
    return expected


@pytest.mark.parametrize("name", sorted(CORPUS_RECIPES))
def test_corpus_recipe_prepares_a_fixture_in_its_schema(name, clips, tmp_path):
    fixture = tmp_path / "corpus"
    expected = write_fixture(name, clips, fixture)
    argv = ["--corpus", name, "--dataset_name_or_path", str(fixture), "--output_dir", str(tmp_path / "out"),
            "--pipeline_config", "tiny", "--aligner_steps", "2"]  # fmt: skip
    if name in ("mls_eng", "emilia"):  # the README streams the large corpora
        argv.append("--streaming")
    args = parse_args(argv)
    recipe = CORPUS_RECIPES[name]
    assert (args.split, args.text_column, args.audio_column) == (
        recipe["split"],
        recipe["text_column"],
        recipe["audio_column"],
    )
    summary = prepare_dataset(args)
    assert summary["counts"]["examples"] == 3 and summary["counts"]["kept"] == 3, summary["counts"]
    rows = load_prepared_dataset(tmp_path / "out", load_codec_weights=False).dataset
    assert sorted(zip(rows["text"], rows["speaker_id"])) == sorted(expected)
    assert all(np.isfinite(np.asarray(row["log_pitch"])).all() for row in rows)


def test_flags_override_the_recipe_and_bad_columns_are_named(clips, tmp_path):
    fixture = tmp_path / "corpus"
    write_fixture("libritts_r", clips, fixture)
    args = parse_args(["--corpus", "libritts_r", "--dataset_name_or_path", str(fixture), "--output_dir",
                       str(tmp_path / "out"), "--split", "dev.clean", "--text_column", "text_original"])  # fmt: skip
    assert args.split == "dev.clean" and args.text_column == "text_original" and args.speaker_column == "speaker_id"
    with pytest.raises(ValueError, match=r"no column 'json.text' \(--text_column\); its columns are \['path'"):
        prepare_dataset(parse_args(["--corpus", "libritts_r", "--dataset_name_or_path", str(fixture), "--output_dir",
                                    str(tmp_path / "out"), "--text_column", "json.text"]))  # fmt: skip
