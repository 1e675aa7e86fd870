"""Small spoken test corpora made offline with espeak-ng: an `audiofolder` with `metadata.csv`.

espeak-ng (GPL-3.0, Debian main) speaks each sentence with one of a few voice variants; each variant is a speaker.
Besides the good clips, the folder can hold the three kinds of bad example a data preparation step must survive: a
file that is not audio, a silent clip, and a clip whose transcript is far longer than its speech.

The folder is written once per directory: a later call with the same arguments returns the existing folder, so a
session-scoped pytest fixture (or several test files pointing at the same directory) share one copy.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

# (speaker_id, espeak-ng voice, pitch 0-99): two female and one male variant of the American English voice.
DEFAULT_SPEAKERS: tuple[tuple[str, str, int], ...] = (
    ("female_f2", "en-us+f2", 60),
    ("male_m3", "en-us+m3", 40),
    ("female_f4", "en-us+f4", 55),
)

DEFAULT_SENTENCES: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore.",
    "A journey of a thousand miles begins with one step.",
    "Please call me back when you get home.",
    "The weather is lovely today, isn't it?",
    "We will meet at noon near the old bridge.",
    "Reading books is a wonderful way to learn.",
    "Turn left at the second traffic light.",
)

CORRUPT_FILE = "corrupt.wav"
SILENT_FILE = "silent.wav"
MISMATCHED_FILE = "mismatched.wav"
_MISMATCHED_SPOKEN = "Yes."
_MISMATCHED_TEXT = " ".join(DEFAULT_SENTENCES)
_DONE_MARKER = ".speech_data.json"


def speak(text: str, path: str | os.PathLike, voice: str = "en-us", speed: int = 170, pitch: int = 50) -> None:
    """Writes `text` spoken by espeak-ng to the WAV file `path` (mono, 22.05 kHz, 16-bit).

    Args:
        text (`str`): What to say.
        path (`str` or `os.PathLike`): Output WAV file.
        voice (`str`): An espeak-ng voice, optionally with a variant (`"en-us+f2"`).
        speed (`int`): Words per minute.
        pitch (`int`): Base pitch, 0 to 99.
    """
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", os.fspath(path), text],
        check=True,
        capture_output=True,
    )


def make_speech_audiofolder(
    directory: str | os.PathLike,
    num_clips: int = 5,
    speakers: tuple[tuple[str, str, int], ...] = DEFAULT_SPEAKERS,
    sentences: tuple[str, ...] = DEFAULT_SENTENCES,
    bad_examples: bool = True,
    speed: int = 170,
) -> Path:
    """Writes an `audiofolder` of spoken sentences with `metadata.csv` (`file_name,text,speaker_id`).

    Clip `i` says `sentences[i % len(sentences)]` in the voice of `speakers[i % len(speakers)]`. With `bad_examples`,
    three more rows are added: `corrupt.wav` (random bytes, not audio), `silent.wav` (1.5 s of very faint noise) and
    `mismatched.wav` (the word "Yes." transcribed as a whole paragraph). The folder is written atomically and only
    once: when `directory` already holds a folder made with the same arguments it is returned as is.

    Args:
        directory (`str` or `os.PathLike`): Where the audiofolder goes (created).
        num_clips (`int`): Number of good clips.
        speakers (`tuple` of `(speaker_id, voice, pitch)`): espeak-ng voices used as speakers, in turn.
        sentences (`tuple[str]`): Sentences, used in turn.
        bad_examples (`bool`): Whether to add the corrupt, silent and mismatched rows.
        speed (`int`): Speaking rate in words per minute.

    Returns:
        `pathlib.Path`: The audiofolder, loadable with `datasets.load_dataset("audiofolder", data_dir=...)`.
    """
    directory = Path(directory)
    if num_clips < 1:
        raise ValueError(f"`num_clips` must be at least 1, got {num_clips}.")
    settings = {
        "num_clips": num_clips,
        "speakers": [list(s) for s in speakers],
        "sentences": list(sentences),
        "bad_examples": bad_examples,
        "speed": speed,
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    marker = directory / _DONE_MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("key") == key:
        return directory
    if directory.exists() and any(directory.iterdir()):
        raise FileExistsError(f"{directory} exists and holds something else than a speech folder made here.")

    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    rows = []
    for index in range(num_clips):
        speaker_id, voice, pitch = speakers[index % len(speakers)]
        text = sentences[index % len(sentences)]
        file_name = f"clip_{index:03d}.wav"
        speak(text, staging / file_name, voice=voice, speed=speed, pitch=pitch)
        rows.append((file_name, text, speaker_id))
    if bad_examples:
        rng = np.random.default_rng(0)
        (staging / CORRUPT_FILE).write_bytes(b"RIFF\x00\x00" + rng.bytes(4000))
        sf.write(staging / SILENT_FILE, (1e-5 * rng.standard_normal(24000)).astype(np.float32), 16000)
        speaker_id, voice, pitch = speakers[0]
        speak(_MISMATCHED_SPOKEN, staging / MISMATCHED_FILE, voice=voice, speed=speed, pitch=pitch)
        rows += [
            (CORRUPT_FILE, sentences[0], speaker_id),
            (SILENT_FILE, sentences[1], speaker_id),
            (MISMATCHED_FILE, _MISMATCHED_TEXT, speaker_id),
        ]
    with open(staging / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "text", "speaker_id"])
        writer.writerows(rows)
    (staging / _DONE_MARKER).write_text(json.dumps({"key": key, "settings": settings}))
    if directory.exists():
        directory.rmdir()  # empty, checked above
    os.replace(staging, directory)
    return directory


def speaker_voices(speakers: tuple[tuple[str, str, int], ...] = DEFAULT_SPEAKERS) -> dict[str, str]:
    """Maps each speaker id of a folder made with `speakers` to its espeak-ng voice."""
    return {speaker_id: voice for speaker_id, voice, _ in speakers}


def make_prompt(seconds: float = 1.5, sampling_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A voiced-speech-like test signal: harmonics of a gliding pitch under a syllable-rate envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t) + 10 * seed
    phase = 2 * np.pi * np.cumsum(f0) / sampling_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.3 * voiced * envelope + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def gen(seed: int) -> torch.Generator:
    """A CPU generator seeded with `seed`."""
    return torch.Generator().manual_seed(seed)


def flite_word_boundaries(text: str, voice: str, path: str | os.PathLike) -> list[float]:
    """
    Speaks `text` with Debian's flite `voice` into `path` and returns the times (s) of its internal word boundaries
    from flite's own segment timings (`-psdur`): the end of each word's last phone, but the last word's.

    The phones of each word are found by speaking the word alone (`-ps`); a `ValueError` is raised when the sentence's
    phones are not those of its words in order (post-lexical changes), so the caller can skip the sentence.
    """

    def segments(flag: str, words: str, out: str) -> list[str]:
        result = subprocess.run(["flite", "-voice", voice, flag, "-t", words, "-o", out], check=True, text=True,
                                capture_output=True)  # fmt: skip
        return result.stdout.split()

    timed = [s.rsplit(":", 1) for s in segments("-psdur", text, str(path)) if not s.startswith("pau:")]
    words = [w for w in text.replace(",", " ").replace(".", " ").replace("?", " ").replace("!", " ").split()]
    boundaries, index = [], 0
    for word in words:
        phones = [p for p in segments("-ps", word, "none") if p != "pau"]
        if [p for p, _ in timed[index : index + len(phones)]] != phones:
            raise ValueError(f"flite's phones of {text!r} are not those of its words in order (at {word!r}).")
        index += len(phones)
        boundaries.append(float(timed[index - 1][1]))
    if index != len(timed):
        raise ValueError(f"flite's phones of {text!r} are more than those of its words.")
    return boundaries[:-1]


def aligned_word_boundaries(pipe, path: str | os.PathLike, text: str) -> tuple[list[float], list[float]]:
    """
    Times (s) of the word-boundary tokens of `text` in the pipeline aligner's alignment of the recording `path`, and,
    as a baseline, where uniform durations (every token the same share of the frames) would put them.
    """
    alignment = pipe.align(str(path), text)
    frame_seconds = pipe.codec.hop_length / pipe.codec.sampling_rate
    starts = torch.cumsum(alignment.durations, 0) - alignment.durations
    share = float(alignment.durations.sum()) / len(alignment.phonemes)
    positions = [i for i, p in enumerate(alignment.phonemes) if p == pipe.tokenizer.word_boundary]
    return [float(starts[i]) * frame_seconds for i in positions], [i * share * frame_seconds for i in positions]


def convert(pipe, *args, **kwargs):
    """Voice conversion with the components of `pipe` (a `FlashSpeechVoiceConversionPipeline` sharing them)."""
    from flashspeech_hf import FlashSpeechVoiceConversionPipeline

    return FlashSpeechVoiceConversionPipeline(**pipe.components)(*args, **kwargs)


def edit(pipe, *args, **kwargs):
    """Speech editing with the components of `pipe` (a `FlashSpeechEditPipeline` sharing them)."""
    from flashspeech_hf import FlashSpeechEditPipeline

    return FlashSpeechEditPipeline(**pipe.components)(*args, **kwargs)
