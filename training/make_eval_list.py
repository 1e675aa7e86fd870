"""Builds the held-out evaluation lists of a corpus made by `training/make_demo_corpus.py`.

For each speaker of `heldout_prompts/prompts.csv` (the held-out speakers, and joe), `--num_sentences` IEEE Harvard
sentences (never in training) are spoken by that speaker's synthesizer as the ground-truth reference; the prompt is one
of the speaker's held-out prompt clips. Writes into `--output_dir`:

- `test_list.csv` (`id,speaker_id,text,prompt_audio,reference_audio`) for `flashspeech evaluate --test_list`;
- `validation.csv` (`text,prompt_audio`), the first `--num_validation` rows, for `train_flashspeech.py
  --validation_file`;
- `dev.csv` (`text,prompt_audio`): `--num_dev_sentences` other Harvard sentences for every speaker, for tuning
  (`training/tune_two_step_sigma.py`) without looking at the test list. No references are synthesized for it.

Example:

```bash
python training/make_eval_list.py --corpus_dir outputs/corpus --output_dir outputs/eval --num_sentences 20
```
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import tempfile
from pathlib import Path

import soundfile as sf
from make_demo_corpus import ALL_SPEAKERS, load_harvard, make_clip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus_dir", required=True, help="Output folder of make_demo_corpus.py.")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--num_sentences", type=int, default=20, help="Harvard sentences per speaker.")
    parser.add_argument("--num_validation", type=int, default=8, help="Rows of validation.csv (mixed speakers).")
    parser.add_argument(
        "--num_dev_sentences",
        type=int,
        default=20,
        help="Harvard sentences per speaker in dev.csv (none in the test).",
    )
    parser.add_argument("--min_prompt_seconds", type=float, default=2.0, help="Shorter prompt clips are not used.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.num_sentences < 1 or args.num_validation < 1 or args.num_dev_sentences < 1:
        raise SystemExit("--num_sentences, --num_validation and --num_dev_sentences must be >= 1.")
    return args


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    corpus = Path(args.corpus_dir)
    prompts_csv = corpus / "heldout_prompts" / "prompts.csv"
    if not prompts_csv.is_file():
        raise SystemExit(f"{prompts_csv} is missing: --corpus_dir must be an output folder of make_demo_corpus.py.")
    with open(prompts_csv, newline="", encoding="utf-8") as f:
        prompts = list(csv.DictReader(f))
    by_speaker: dict[str, list[dict]] = {}
    for row in prompts:
        if sf.info(str(corpus / "heldout_prompts" / row["file_name"])).duration >= args.min_prompt_seconds:
            by_speaker.setdefault(row["speaker_id"], []).append(row)
    rng = random.Random(args.seed)
    sentences = load_harvard(corpus / "heldout.csv") if (corpus / "heldout.csv").is_file() else load_harvard()
    sentences = [s for s in sentences if s.lower() != "text"]
    chosen = rng.sample(sentences, args.num_sentences)
    rest = [s for s in sentences if s not in chosen]
    if len(rest) < args.num_dev_sentences:
        raise SystemExit(
            f"Only {len(rest)} Harvard sentences are left for --num_dev_sentences {args.num_dev_sentences}."
        )
    dev = rng.sample(rest, args.num_dev_sentences)
    output = Path(args.output_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".eval-", dir=output.parent))
    try:
        rows = []
        for speaker_id, clips in sorted(by_speaker.items()):
            speaker = ALL_SPEAKERS[speaker_id]
            for i, text in enumerate(chosen):
                prompt = clips[i % len(clips)]
                name = f"{speaker_id}_{i:02d}.wav"
                make_clip(speaker, text, staging / "references" / name, seed=args.seed * 1000 + i)
                prompt_path = os.path.relpath(corpus / "heldout_prompts" / prompt["file_name"], output)
                rows.append([f"{speaker_id}_{i:02d}", speaker_id, text, prompt_path, f"references/{name}"])
        with open(staging / "test_list.csv", "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([["id", "speaker_id", "text", "prompt_audio", "reference_audio"], *rows])
        # validation rows alternate speakers so that each is heard
        order = sorted(range(len(rows)), key=lambda k: (k % args.num_sentences, rows[k][1]))[: args.num_validation]
        with open(staging / "validation.csv", "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([["text", "prompt_audio"], *[[rows[k][2], rows[k][3]] for k in order]])
        prompt_of: dict[str, str] = {}
        for row in rows:
            prompt_of.setdefault(row[1], row[3])  # each speaker's first prompt clip
        with open(staging / "dev.csv", "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([["text", "prompt_audio"], *[[t, prompt_of[s]] for s in prompt_of for t in dev]])
        if output.exists():
            shutil.rmtree(output)
        os.replace(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"Wrote {len(rows)} test rows ({len(by_speaker)} speakers) to {output / 'test_list.csv'}")
    return output


if __name__ == "__main__":
    main()
