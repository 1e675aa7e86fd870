"""Generates the demo training corpus: short English sentences spoken by Debian's flite voices.

The sentences come from a small template grammar (no downloaded text); each is synthesized by one of the flite voices
(CMU, BSD-like licence, see `/usr/share/doc/flite/copyright`), resampled to 16 kHz mono and written as an audiofolder
(`metadata.csv` with `file_name,text,speaker_id`) that `training/prepare_dataset.py` reads. A held-out list of unseen
sentences (`heldout.csv`) is written for evaluation.

Example:

```bash
python training/make_demo_corpus.py --output_dir outputs/demo_corpus --num_sentences 640
```
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from flashspeech_hf.audio import load_audio

VOICES = ("kal", "kal16", "awb", "rms", "slt")

SUBJECTS = (
    "the old man",
    "my sister",
    "a young girl",
    "the teacher",
    "our neighbor",
    "the doctor",
    "his father",
    "the little boy",
    "her mother",
    "the farmer",
    "a tall woman",
    "the driver",
    "my friend",
    "the captain",
    "the baker",
    "your brother",
    "the children",
    "the students",
    "a small dog",
    "the black cat",
    "the king",
    "the nurse",
    "a quiet man",
    "the cook",
    "my uncle",
    "the girls",
    "the soldiers",
    "her husband",
    "the pilot",
)
VERBS_T = (
    "found",
    "bought",
    "painted",
    "opened",
    "closed",
    "carried",
    "cleaned",
    "washed",
    "lost",
    "sold",
    "fixed",
    "brought",
    "wanted",
    "liked",
    "moved",
    "saw",
    "took",
    "made",
    "kept",
    "held",
    "picked up",
    "dropped",
    "read",
)
OBJECTS = (
    "the red box",
    "a green apple",
    "the heavy door",
    "an old book",
    "the yellow car",
    "a warm coat",
    "the wooden chair",
    "a blue cup",
    "the small boat",
    "the white house",
    "a long letter",
    "the new phone",
    "a fresh loaf of bread",
    "the broken window",
    "some water",
    "a bag of rice",
    "the big map",
    "a silver key",
    "the morning paper",
    "a pair of shoes",
    "the brown horse",
    "a cold drink",
    "the garden gate",
    "a bright lamp",
)
PLACES = (
    "in the kitchen",
    "at the station",
    "near the river",
    "on the hill",
    "in the garden",
    "at school",
    "by the window",
    "in the city",
    "at the market",
    "on the bridge",
    "in the park",
    "at home",
    "on the farm",
    "in the morning",
    "after dinner",
    "before noon",
    "last night",
    "on monday",
    "every day",
    "at the beach",
)
ADJECTIVES = (
    "happy",
    "tired",
    "cold",
    "hungry",
    "late",
    "ready",
    "quiet",
    "angry",
    "busy",
    "sick",
    "glad",
    "early",
    "strong",
    "calm",
    "proud",
    "afraid",
    "warm",
    "sorry",
    "free",
    "young",
)
INTRANSITIVE = (
    "slept",
    "waited",
    "smiled",
    "laughed",
    "walked home",
    "sat down",
    "stood up",
    "left early",
    "came back",
    "ran away",
    "looked around",
    "stayed inside",
    "sang softly",
    "worked hard",
    "went outside",
)
NUMBERS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve", "twenty")
THINGS = ("apples", "books", "chairs", "birds", "boats", "cups", "letters", "horses", "keys", "trees", "coins")
TEMPLATES = (
    "{S} {V} {O} {P}.",
    "{S} {V} {O}.",
    "{S} was {A} {P}.",
    "{S} {I} {P}.",
    "Why did {s} {v0} {o}?",
    "I think {s} is {a}.",
    "There are {n} {t} {p}.",
    "{S} {I}, and {s2} was {a}.",
    "Please give {o} to {s}.",
    "We saw {n} {t} {p}.",
    "Did {s} see {o} {p}?",
    "{S} never {V} {o}.",
)
BASE_FORMS = {
    "found": "find",
    "bought": "buy",
    "painted": "paint",
    "opened": "open",
    "closed": "close",
    "carried": "carry",
    "cleaned": "clean",
    "washed": "wash",
    "lost": "lose",
    "sold": "sell",
    "fixed": "fix",
    "brought": "bring",
    "wanted": "want",
    "liked": "like",
    "moved": "move",
    "saw": "see",
    "took": "take",
    "made": "make",
    "kept": "keep",
    "held": "hold",
    "picked up": "pick up",
    "dropped": "drop",
    "read": "read",
}


def make_sentence(rng: random.Random) -> str:
    """One sentence from a random template."""
    verb = rng.choice(VERBS_T)
    fields = {
        "s": rng.choice(SUBJECTS),
        "s2": rng.choice(SUBJECTS),
        "v0": BASE_FORMS[verb],
        "o": rng.choice(OBJECTS),
        "a": rng.choice(ADJECTIVES),
        "p": rng.choice(PLACES),
        "n": rng.choice(NUMBERS),
        "t": rng.choice(THINGS),
        "i": rng.choice(INTRANSITIVE),
    }
    fields.update(
        {"S": fields["s"], "V": verb, "O": fields["o"], "P": fields["p"], "A": fields["a"], "I": fields["i"]}
    )
    sentence = rng.choice(TEMPLATES).format(**fields)
    return sentence[0].upper() + sentence[1:]


def make_sentences(num: int, rng: random.Random, exclude: set[str] = frozenset()) -> list[str]:
    """`num` distinct sentences, none in `exclude`."""
    sentences: list[str] = []
    seen = set(exclude)
    for _ in range(num * 50):
        if len(sentences) == num:
            break
        sentence = make_sentence(rng)
        if sentence not in seen:
            seen.add(sentence)
            sentences.append(sentence)
    return sentences


def synthesize(text: str, voice: str, sampling_rate: int = 16000) -> np.ndarray:
    """Speaks `text` with flite `voice`; returns float32 mono audio at `sampling_rate`, silence trimmed to 0.1 s."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.wav"
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(path)], check=True, capture_output=True)
        wave, _ = load_audio(str(path), target_sampling_rate=sampling_rate)
    wave = wave.numpy()
    loud = np.flatnonzero(np.abs(wave) > 0.01 * np.abs(wave).max())
    pad = int(0.1 * sampling_rate)
    return wave[max(0, loud[0] - pad) : loud[-1] + pad] if loud.size else wave


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default="outputs/demo_corpus")
    parser.add_argument("--num_sentences", type=int, default=640, help="Training utterances (over all voices).")
    parser.add_argument("--num_heldout", type=int, default=20, help="Unseen sentences for evaluation.")
    parser.add_argument("--voices", default=",".join(VOICES), help="Comma list of flite voices (`flite -lv`).")
    parser.add_argument("--min_seconds", type=float, default=1.5)
    parser.add_argument("--max_seconds", type=float, default=4.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if shutil.which("flite") is None:
        raise SystemExit("flite is not installed: `apt-get install flite`.")
    voices = [v for v in args.voices.split(",") if v]
    rng = random.Random(args.seed)
    out = Path(args.output_dir)
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    sentences = make_sentences(args.num_sentences + args.num_heldout, rng)
    train, heldout = sentences[: args.num_sentences], sentences[args.num_sentences :]
    rows, seconds, skipped = [], 0.0, 0
    for index, text in enumerate(train):
        voice = voices[index % len(voices)]
        wave = synthesize(text, voice)
        duration = len(wave) / 16000
        if not args.min_seconds <= duration <= args.max_seconds:
            skipped += 1
            continue
        name = f"wavs/{voice}_{index:04d}.wav"
        sf.write(out / name, wave, 16000, subtype="PCM_16")
        rows.append({"file_name": name, "text": text, "speaker_id": voice})
        seconds += duration
    with open(out / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["file_name", "text", "speaker_id"])
        writer.writeheader()
        writer.writerows(rows)
    with open(out / "heldout.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text"])
        writer.writerows([[t] for t in heldout])
    info = {"voices": voices, "utterances": len(rows), "skipped": skipped, "hours": seconds / 3600}
    (out / "corpus_info.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info))


if __name__ == "__main__":
    main()
