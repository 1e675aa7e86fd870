#!/usr/bin/env python
"""
Peak resident memory of `FlashSpeechPipeline.from_pretrained` for a named size (default: the paper config).

Saves a randomly initialised pipeline once (`--folder`, reused when it exists), then loads it in a fresh process and
reports the resident set after the imports, the peak of the load (`ru_maxrss`) and the resident set after it.

    python benchmarks/benchmark_load_memory.py --config paper --folder /tmp/flashspeech-paper
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

LOAD = """
import resource, sys, time
import psutil
from flashspeech_hf import FlashSpeechPipeline
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
pipe = FlashSpeechPipeline.from_pretrained(sys.argv[1])
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
after = psutil.Process().memory_info().rss / 2**20
print(f"| {base:.0f} | {peak:.0f} | {peak - base:.0f} | {after:.0f} | {seconds:.1f} |")
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="paper", help="Named pipeline size.")
    parser.add_argument("--folder", required=True, help="Where the saved pipeline is (written when missing).")
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.folder, "model_index.json")):
        import torch

        from flashspeech_hf import FlashSpeechPipeline

        torch.manual_seed(0)
        FlashSpeechPipeline.from_named_config(args.config).save_pretrained(args.folder)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.folder) for f in fs) / 2**20
    print(f"`{args.config}` pipeline, {size:.0f} MiB on disk")
    print("| RSS after imports (MiB) | peak RSS of the load (MiB) | peak - imports (MiB) | RSS after (MiB) | load s |")
    print("| --- | --- | --- | --- | --- |")
    subprocess.run([sys.executable, "-c", LOAD, args.folder], check=True)


if __name__ == "__main__":
    main()
