"""Plots real-time factor against the number of function evaluations from `benchmark_inference.py` JSON results.

Each JSON file (written beside the markdown of `benchmark_inference.py --output X.md`) adds one line per FlashSpeech
system it holds (config + precision, batch 1, the chosen output length) and the flow-matching peer's points.

Usage:

```bash
python benchmarks/plot_rtf_vs_nfe.py benchmarks/results/paper_fp32.json benchmarks/results/paper_bf16.json \
    --seconds 5 --output benchmarks/rtf_vs_nfe.png
```
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def collect(paths: list[str], seconds: float, batch_size: int) -> dict[str, list[tuple[int, float]]]:
    """`{system: [(nfe, rtf), ...]}` for the rows of `batch_size` whose target length is `seconds`."""
    lines: dict[str, dict[int, float]] = defaultdict(dict)
    for path in paths:
        with open(path, encoding="utf-8") as f:
            rows = json.load(f)["rows"]
        for row in rows:
            if row["batch_size"] == batch_size and abs(row["target_seconds"] - seconds) < 1e-6:
                lines[row["system"]][row["nfe"]] = row["rtf"]
    if not lines:
        raise SystemExit(f"No rows of batch {batch_size} and {seconds} s in {paths}.")
    return {system: sorted(points.items()) for system, points in lines.items()}


def plot(lines: dict[str, list[tuple[int, float]]], output: str, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (system, points) in enumerate(sorted(lines.items())):
        nfe, rtf = zip(*points)
        peer = "peer" in system
        line = ax.plot(nfe, rtf, marker="s" if peer else "o", linestyle="--" if peer else "-", label=system)[0]
        for x, y in points:  # labels of close lines staggered vertically
            ax.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(4, 4 - 9 * (i % 3)), fontsize=7,
                        color=line.get_color())  # fmt: skip
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xscale("log", base=2)
    ticks = sorted({x for points in lines.values() for x, _ in points})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_yscale("log")
    ax.set_xlabel("network function evaluations (NFE)")
    ax.set_ylabel("real-time factor (lower is faster)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="JSON files written by benchmark_inference.py --output")
    parser.add_argument("--seconds", type=float, default=5.0, help="target output length of the rows to plot")
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--title", default=None)
    parser.add_argument("--output", default="benchmarks/rtf_vs_nfe.png")
    args = parser.parse_args(argv)
    lines = collect(args.results, args.seconds, args.batch_size)
    title = args.title or f"RTF vs NFE, batch {args.batch_size}, {args.seconds:g} s output"
    plot(lines, args.output, title)
    print(f"wrote {args.output} ({len(lines)} systems)")


if __name__ == "__main__":
    main()
