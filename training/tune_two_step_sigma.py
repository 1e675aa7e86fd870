"""Chooses a trained pipeline's two-step intermediate noise level (`two_step_sigma`) on a development list.

Two-step consistency sampling denoises from `sigma_max`, re-noises the estimate to `two_step_sigma` and denoises once
more. The best level depends on the trained model; the consistency-models paper (Song et al. 2023) chose it by a search
on the sample metric. Here the metric is the word error rate of an ASR judge (Whisper base offline) on a
development list of `text,prompt_audio` rows (`training/make_eval_list.py` writes `dev.csv`, sentences that are not in
the test list). Every level is spoken with the same seeds (`train_flashspeech.validate`: 2 steps, seed = row index);
the lowest word error rate wins (the first listed on a tie). With `--write`, the pipeline's `scheduler_config.json`
is rewritten with it, atomically; the other scheduler keys are kept.

    python training/tune_two_step_sigma.py --pipeline outputs/stage2 --dev_file outputs/eval/dev.csv \
        --values 2,5,10,20,40 --output_dir outputs/tuning --write
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

from train_flashspeech import load_validation_rows, validate

from flashspeech_hf import FlashSpeechPipeline, FlashSpeechScheduler


def tune_two_step_sigma(
    pipe: FlashSpeechPipeline,
    rows: list[dict[str, str]],
    values: list[float],
    output_dir: str,
    asr_backend: str | None = None,
) -> tuple[float, dict[float, float]]:
    """
    Speaks `rows` at 2 steps with each `two_step_sigma` of `values` and returns `(best value, {value: WER})`.

    The pipeline is left with a scheduler at the best value; audio and transcripts of each level go to
    `output_dir/two_step_sigma_<value>/`.
    """
    if not values:
        raise ValueError("--values needs at least one two_step_sigma.")
    # one scheduler per level, all built before any synthesis: the scheduler refuses a level outside its range
    schedulers = {float(v): FlashSpeechScheduler.from_config(pipe.scheduler.config, two_step_sigma=v) for v in values}
    results = {}
    for value, scheduler in schedulers.items():
        pipe.scheduler = scheduler
        logs, _ = validate(pipe, rows, os.path.join(output_dir, f"two_step_sigma_{value:g}"), asr_backend)
        results[value] = logs["val_wer"]
        print(f"two_step_sigma {value:g}: WER {logs['val_wer']:.3f}", flush=True)
    best = min(results, key=results.get)  # min keeps the first of equal values
    pipe.scheduler = schedulers[best]
    return best, results


def write_two_step_sigma(pipeline_dir: str, value: float) -> str:
    """Rewrites `pipeline_dir/scheduler/scheduler_config.json` with `two_step_sigma=value`, atomically."""
    folder = os.path.join(pipeline_dir, "scheduler")
    scheduler = FlashSpeechScheduler.from_pretrained(folder, two_step_sigma=value)  # the scheduler checks the value
    with tempfile.TemporaryDirectory(dir=folder, prefix=".tmp-") as tmp:
        scheduler.save_config(tmp)
        os.replace(os.path.join(tmp, FlashSpeechScheduler.config_name), os.path.join(folder, scheduler.config_name))
    return os.path.join(folder, scheduler.config_name)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", required=True, help="A saved FlashSpeechPipeline folder.")
    parser.add_argument("--dev_file", required=True, help="CSV with text,prompt_audio (make_eval_list.py dev.csv).")
    parser.add_argument("--values", default="1,2,5,10,20,40", help="Comma-separated two_step_sigma levels to try.")
    parser.add_argument("--asr_backend", default=None, help="ASR judge (default: Whisper base when offline).")
    parser.add_argument("--output_dir", required=True, help="Audio, transcripts and two_step_sigma.json go here.")
    parser.add_argument("--write", action="store_true", help="Write the best level into the pipeline's scheduler.")
    args = parser.parse_args(argv)
    try:
        values = [float(v) for v in args.values.split(",") if v.strip()]
    except ValueError as err:
        raise SystemExit(f"--values must be comma-separated numbers: {err}") from err
    rows = load_validation_rows(args.dev_file)
    pipe = FlashSpeechPipeline.from_pretrained(args.pipeline)
    best, results = tune_two_step_sigma(pipe, rows, values, args.output_dir, args.asr_backend)
    summary = {"two_step_sigma": best, "wer": {f"{k:g}": v for k, v in results.items()}, "rows": len(rows)}
    with open(os.path.join(args.output_dir, "two_step_sigma.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    print(f"Best two_step_sigma: {best:g} (WER {results[best]:.3f} on {len(rows)} rows)")
    if args.write:
        print(f"Wrote {write_two_step_sigma(args.pipeline, best)}")
    return summary


if __name__ == "__main__":
    main()
