"""
Training throughput (latent frames per second) and peak memory of train_flashspeech.py on this machine.

Runs the script in a fresh process per setting (so peak RSS is per run) on synthetic data in the prepared format, for
consistency-only and with the adversarial loss from step 0, and prints a markdown table.

Examples:

```bash
python benchmarks/benchmark_training.py --configs tiny --steps 20
python benchmarks/benchmark_training.py --configs tiny paper --steps 3   # paper sizes: slow on a CPU
```
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from flashspeech_hf.training_utils import idle_cpu_count

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time
sys.path[:0] = [{tests!r}, {training!r}]
from pathlib import Path
import test_training as tt
cfg, steps, adv, tmp, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", Path(sys.argv[4]), sys.argv[5]
prep = tt.make_prepared_dir(tmp / "prep", num_rows=16, frames_per_row=(150, 250))
args = tt.base_args(prep, tmp / "out", "--max_train_steps", str(steps), "--checkpointing_steps", "100000",
                    "--train_batch_size", "4", "--adversarial_start_step", "0" if adv else "100000000",
                    "--slm_config", "tiny", "--num_threads", threads)
if cfg == "paper":
    args += ["--pipeline_config", "paper", "--train_batch_size", "1"]  # paper sizes over the 16-d mel latents
summary = tt.train.main(args)
print("RESULT", json.dumps({{"frames_per_second": summary["frames_per_second"],
      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def run(config: str, steps: int, adversarial: bool, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        code = CHILD.format(tests=str(ROOT / "tests"), training=str(ROOT / "training"))
        out = subprocess.run(
            [sys.executable, "-c", code, config, str(steps), "1" if adversarial else "0", tmp, str(threads)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
        if not lines:
            raise RuntimeError(out.stderr[-3000:])
        return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["tiny"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--num_threads", type=int, default=None, help="torch CPU threads (default: the idle cores).")
    args = parser.parse_args()
    threads = args.num_threads or idle_cpu_count()
    print("| config | loss | latent frames/s | peak RSS (MiB) |")
    print("|---|---|---|---|")
    for config in args.configs:
        for adversarial in (False, True):
            result = run(config, args.steps, adversarial, threads)
            name = "consistency + adversarial" if adversarial else "consistency only"
            print(f"| {config} | {name} | {result['frames_per_second']:.0f} | {result['peak_rss_mib']:.0f} |")


if __name__ == "__main__":
    main()
