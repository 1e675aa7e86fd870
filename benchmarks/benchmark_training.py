"""
Training speed of train_flashspeech.py on this machine: steps/s and audio seconds seen per hour, per precision.

Each setting (model size x precision x threads) runs the training script in a fresh process (so peak RSS and
compilation are per run) on synthetic data in the prepared format, with the size's codec and its training config
(`demo`: training/configs/demo.json, the bundled checkpoint's recipe: batch 8, utterances of 300-480 frames, the
denoising objective). Steps/s is the steady rate after `--warmup_steps` (which include compilation); audio seconds per
hour count the whole utterances of the batches (prompt and target) at the steady rate.

Precisions: `fp32`; `bf16` (`--mixed_precision bf16`: autocast, float32 weights and optimizer); `bf16+compile` and
`fp32+compile` (`--torch_compile_backend inductor`). Sizes: `tiny`, `demo`, `demo-2x` (every trained model twice as
wide), `paper`, `demo-act` (the retrain recipe `demo_v3.json`: the demo sizes with the adversarial loss of the
bundled Whisper tiny.en discriminator). Batching: `random` (shuffled rows) or `grouped` (`--group_by_length`: rows of
similar lengths), overriding the config's; `--pad_to_multiple_of 1 32` runs each setting without padding and with
every batch padded to a multiple of 32 phonemes and frames (default 1: no padding; the demo configs say 32);
`--frames 80 480` draws the utterance lengths as the real corpus spreads (80-480 frames after the demo recipe's
`--max_train_frames 480`) instead of the size's default 300-480.

Examples:

```bash
python benchmarks/benchmark_training.py --sizes demo demo-2x --precisions fp32 bf16 bf16+compile --threads 1 2
python benchmarks/benchmark_training.py --sizes tiny --steps 4 --warmup_steps 1  # seconds
python benchmarks/benchmark_training.py --sizes demo --precisions fp32 --batching random grouped --processes 1 2 \
    --frames 80 480 --rows 1600
python benchmarks/benchmark_training.py --sizes demo demo-act --precisions fp32 bf16 --batching grouped \
    --pad_to_multiple_of 1 32 --threads 2 --frames 80 480 --rows 1600
```
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmark_inference import write_report

ROOT = Path(__file__).resolve().parent.parent
SIZES = {
    # size -> (training config, codec config, --model_overrides, utterance frames)
    "tiny": ("tiny.json", "tiny", None, (150, 250)),
    "demo": ("demo.json", "demo", None, (300, 480)),
    "demo-2x": (
        "demo.json",
        "demo",
        {
            "prior_encoder": {"hidden_size": 256, "ffn_size": 512},
            "prosody_generator": {"predictor_hidden_size": 192, "refine_hidden_size": 64},
            "denoiser": {"hidden_size": 192},
        },
        (300, 480),
    ),
    "paper": ("demo.json", "demo", {"pipeline_config": "paper"}, (300, 480)),
    # the retrain recipe (demo_v3.json): the demo sizes with the adversarial loss of a Whisper tiny.en discriminator
    "demo-act": ("demo_v3.json", "demo", None, (300, 480)),
}
PRECISIONS = {
    "fp32": ["--mixed_precision", "no"],
    "bf16": ["--mixed_precision", "bf16"],
    "fp32+compile": ["--mixed_precision", "no", "--torch_compile_backend", "inductor"],
    "bf16+compile": ["--mixed_precision", "bf16", "--torch_compile_backend", "inductor"],
}

CHILD = r"""
import json, os, resource, sys
sys.path[:0] = [{tests!r}, {training!r}]
from pathlib import Path
import test_training as tt
size, flags, steps, tmp, threads = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]), sys.argv[5]
config, codec, overrides, frames = json.loads(sys.argv[6])
rows, frames = json.loads(sys.argv[8]), json.loads(sys.argv[9]) or frames
rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
# every rank writes the same (seeded) data to its own folder; each takes its share of the global batch
prep = tt.make_prepared_dir(tmp / f"prep{{rank}}", num_rows=rows, frames_per_row=(frames[0], frames[1] + 1),
                            codec_config=codec)
train_config = json.load(open(os.path.join({configs!r}, config)))
batch = json.loads(sys.argv[7]) or train_config["train_batch_size"]
flags += ["--train_batch_size", str(batch // world)]
args = ["--config", os.path.join({configs!r}, config), "--prepared_dataset_dir", str(prep), "--output_dir",
        str(tmp / "out"), "--report_to", "none", "--max_train_steps", str(steps), "--checkpointing_steps", "100000",
        "--validation_steps", "100000", "--num_threads", threads, *flags]
if "slm_model_name_or_path" not in train_config:
    args += ["--slm_config", "tiny"]  # offline: a tiny random WavLM where the config names no discriminator SLM
overrides = dict(overrides or {{}})
if "pipeline_config" in overrides:
    args += ["--pipeline_config", overrides.pop("pipeline_config")]
if overrides:
    args += ["--model_overrides", json.dumps(overrides)]
load = os.getloadavg()[0]
summary = tt.train.main(args)
if rank == 0:
  print("RESULT", json.dumps({{"step_end_seconds": summary["step_end_seconds"], "frames_trained": summary["frames_trained"],
      "step_end_cpu_seconds": summary["step_end_cpu_seconds"], "load_before": load, "load_after": os.getloadavg()[0],
      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "world_size": world}}))
"""


def run(
    size: str,
    precision: str,
    threads: int,
    steps: int,
    processes: int = 1,
    global_batch_size: int | None = None,
    batching: str = "random",
    rows: int = 64,
    frames: tuple[int, int] | None = None,
    pad_to_multiple_of: int = 1,
) -> dict:
    """
    One training run in a fresh process (or `processes` data-parallel processes under torch.distributed.run, gloo,
    each with `threads` threads and `global_batch_size / processes` rows per step; `None`: the training config's batch)
    on `rows` synthetic utterances of `frames` (min, max) latent frames (`None`: the size's), batches padded to a
    multiple of `pad_to_multiple_of`; returns rank 0's step times, frames trained, CPU time and load averages.
    """
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "child.py"
        script.write_text(
            CHILD.format(
                tests=str(ROOT / "tests"), training=str(ROOT / "training"), configs=str(ROOT / "training" / "configs")
            )
        )
        flags = PRECISIONS[precision] + [
            "--group_by_length" if batching == "grouped" else "--no-group_by_length",
            "--pad_to_multiple_of",
            str(pad_to_multiple_of),
        ]
        argv = [size, json.dumps(flags), str(steps), tmp, str(threads), json.dumps(SIZES[size]),
                json.dumps(global_batch_size), str(rows), json.dumps(frames)]  # fmt: skip
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        launcher = [sys.executable]
        if processes > 1:
            launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
            env["ACCELERATE_USE_CPU"] = "true"  # Accelerate forms a gloo group on the CPU
        out = subprocess.run([*launcher, str(script), *argv], capture_output=True, text=True, env=env, check=False)
        lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
        if not lines:
            raise RuntimeError(
                f"{size} {precision} {processes} process(es) x {threads} thread(s) failed:\n{out.stderr[-3000:]}"
            )
        return json.loads(lines[-1][len("RESULT ") :])


def summarize(result: dict, steps: int, warmup_steps: int, seconds_per_frame: float) -> dict:
    """Steady steps/s after the warm-up, warm-up seconds (compilation included), audio seconds seen per hour."""
    ends, cpu = result["step_end_seconds"], result["step_end_cpu_seconds"]
    steady = (steps - warmup_steps) / (ends[-1] - ends[warmup_steps - 1])
    # rank 0 counts its own rows; the other ranks see as many on average
    audio_per_step = result["frames_trained"] * result.get("world_size", 1) / steps * seconds_per_frame
    return {
        "steps_per_second": steady,
        "warmup_seconds": ends[warmup_steps - 1],
        "audio_hours_per_hour": steady * audio_per_step,
        "cpu_seconds_per_step": (cpu[-1] - cpu[warmup_steps - 1]) / (steps - warmup_steps),
        "load": (result["load_before"] + result["load_after"]) / 2,
        "peak_rss_mib": result["peak_rss_mib"],
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["demo", "demo-2x"], choices=sorted(SIZES))
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "bf16+compile"], choices=list(PRECISIONS))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="torch CPU threads of each process.")
    parser.add_argument(
        "--processes",
        nargs="+",
        type=int,
        default=[1],
        choices=[1, 2, 4, 8],
        help="Data-parallel processes of each run (torch.distributed.run, gloo), sharing --global_batch_size.",
    )
    parser.add_argument(
        "--global_batch_size",
        type=int,
        default=None,
        help="Rows per optimizer step over all processes (default: the training config's, demo.json: 8).",
    )
    parser.add_argument(
        "--batching",
        nargs="+",
        default=["random"],
        choices=["random", "grouped"],
        help="Rows per batch: shuffled, or of similar lengths (--group_by_length).",
    )
    parser.add_argument(
        "--pad_to_multiple_of",
        nargs="+",
        type=int,
        default=[1],
        help="Pad each batch's phonemes and frames to a multiple of this (1: no padding).",
    )
    parser.add_argument(
        "--frames",
        nargs=2,
        type=int,
        default=None,
        metavar=("MIN", "MAX"),
        help="Utterance lengths in latent frames, drawn uniformly (default: the size's, demo 300-480).",
    )
    parser.add_argument("--rows", type=int, default=64, help="Synthetic utterances in the prepared dataset.")
    parser.add_argument("--steps", type=int, default=60, help="Optimizer steps per run, warm-up included.")
    parser.add_argument("--warmup_steps", type=int, default=10, help="First steps left out of the steady rate.")
    parser.add_argument("--output", default=None, help="Markdown file for the table (a .json with the data beside).")
    args = parser.parse_args(argv)
    if args.global_batch_size and any(args.global_batch_size % n for n in args.processes):
        raise ValueError(
            f"--global_batch_size {args.global_batch_size} must divide among --processes {args.processes}."
        )
    if args.frames and not 1 <= args.frames[0] <= args.frames[1]:
        raise ValueError(f"--frames needs 1 <= MIN <= MAX, got {args.frames}.")
    if min(args.pad_to_multiple_of) < 1:
        raise ValueError(f"--pad_to_multiple_of needs values >= 1, got {args.pad_to_multiple_of}.")
    if not 1 <= args.warmup_steps < args.steps:
        raise ValueError(f"Need 1 <= --warmup_steps < --steps, got {args.warmup_steps} and {args.steps}.")
    from flashspeech_hf.configs import get_pipeline_config

    rows = []
    lines = [
        "| size | precision | batching | pad to | processes x threads | global batch | steps/s "
        "| vs fp32 random 1 x 1 | audio h seen per hour | warm-up s | CPU s/step | load avg | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size in args.sizes:
        codec = get_pipeline_config(SIZES[size][1])["codec"]
        seconds_per_frame = codec["hop_length"] / codec["sampling_rate"]
        reference = None
        settings = itertools.product(
            args.processes, args.threads, args.batching, args.pad_to_multiple_of, args.precisions
        )
        for processes, threads, batching, multiple, precision in settings:
            result = run(size, precision, threads, args.steps, processes, args.global_batch_size, batching, args.rows,
                         args.frames, multiple)  # fmt: skip
            result = summarize(result, args.steps, args.warmup_steps, seconds_per_frame)
            result.update(size=size, precision=precision, threads=threads, processes=processes, batching=batching,
                          pad_to_multiple_of=multiple, global_batch_size=args.global_batch_size)  # fmt: skip
            if (precision, threads, processes, batching, multiple) == ("fp32", 1, 1, "random", 1):
                reference = result["steps_per_second"]
            ratio = f"{result['steps_per_second'] / reference:.2f}x" if reference else "-"
            rows.append(result)
            lines.append(
                f"| {size} | {precision} | {batching} | {multiple} | {processes} x {threads} | "
                f"{args.global_batch_size or 'config'} | "
                f"{result['steps_per_second']:.2f} | {ratio} | "
                f"{result['audio_hours_per_hour']:.1f} | {result['warmup_seconds']:.0f} | "
                f"{result['cpu_seconds_per_step']:.2f} | {result['load']:.1f} | {result['peak_rss_mib']:.0f} |"
            )
            print(lines[-1], flush=True)
    report = "\n".join(lines) + "\n"
    if args.output:
        write_report(args.output, report, {"args": vars(args), "rows": rows})
    return rows


if __name__ == "__main__":
    main()
