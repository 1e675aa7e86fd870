#!/usr/bin/env python
# Copyright 2026 The flashspeech-hf Authors. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""
A training sprint on a borrowed accelerator: carry a prepared dataset there, train for a fixed wall-clock budget in
bfloat16, bring the pipeline back in a few small files.

* `export`: a prepared dataset (`training/prepare_dataset.py`'s output) as one `.tar.xz` under a size budget (40 MB by
  default): latents in float16, and only as many rows as fit (the first ones).
* `run`: holds out `--validation_rows` rows, trains `training/train_flashspeech.py` (its `main`, with
  `training/configs/sprint.json` and `--max_train_minutes`) on the rest, computes the training module's loss on the
  held-out rows (fixed seeds, no gradient), and packs the saved pipeline into `pipeline.tar.xz.part-NN` files of at most
  `--max_part_megabytes` each (no more than `--max_parts`). It prints steps/s and the validation loss and writes
  `sprint_report.json`. Flags it does not know go to `train_flashspeech.py` (e.g. `--model_overrides`, a wider model).
* `unpack`: joins the parts and extracts the pipeline.

The machine needs this repository's sources and the packages of `training/sprint_requirements.txt` (the ones a
CUDA machine with torch usually lacks); `pip download -r training/sprint_requirements.txt -d wheels` makes the wheels
to carry.

```bash
python training/gpu_sprint.py export --prepared_dataset_dir ./prepared --output prepared.tar.xz
# on the GPU machine
python training/gpu_sprint.py run --prepared prepared.tar.xz --output_dir sprint --minutes 8
# back here
python training/gpu_sprint.py unpack sprint/pipeline.tar.xz.part-* --output_dir flashspeech-sprint
```
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tarfile
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
import train_flashspeech
from data_utils import PREPARE_CONFIG_NAME, collate_prepared, load_prepared_dataset
from datasets import Array2D, Dataset
from training_module import FlashSpeechTrainingModule, TrainingLossConfig

from flashspeech_hf import FlashSpeechPipeline
from flashspeech_hf.training_utils import ConsistencyTrainingCurriculum

SPRINT_CONFIG = Path(__file__).resolve().parent / "configs" / "sprint.json"
PIPELINE_ARCHIVE = "pipeline.tar.xz"
REPORT_NAME = "sprint_report.json"
# What the training run writes next to the pipeline and the sprint does not bring back.
_NOT_PACKED = ("checkpoint-", ".checkpoint-", ".pipeline-", "logs", "validation", "sample_ids_rank")
_MB = 1024 * 1024


# ----------------------------------------------------------------------------------------------------------------
# Archives
# ----------------------------------------------------------------------------------------------------------------


def pack_folder(
    folder: str | os.PathLike,
    archive: str | os.PathLike,
    max_part_bytes: int | None = None,
    max_parts: int | None = None,
    exclude: tuple[str, ...] = (),
) -> list[Path]:
    """
    Writes the files of `folder` (not those whose top-level name starts with one of `exclude`) to an xz-compressed tar,
    as one file `archive` or, with `max_part_bytes`, as `archive.part-00`, `archive.part-01`, ... of at most that size.

    The parts are written under temporary names and renamed once all are complete; parts of an earlier pack with the
    same name are removed.

    Returns:
        `list[Path]`: The written files, in order.

    Raises:
        `ValueError`: When the archive needs more than `max_parts` parts (nothing is left behind).
    """
    folder, archive = Path(folder), Path(archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    whole = archive.parent / f".{archive.name}.tmp-{tag}"
    written: list[Path] = []
    try:
        with tarfile.open(whole, "w:xz") as tar:
            for entry in sorted(folder.iterdir()):
                if not entry.name.startswith(exclude):
                    tar.add(entry, arcname=entry.name)
        size = whole.stat().st_size
        if max_part_bytes is None:
            os.replace(whole, archive)
            return [archive]
        count = max(1, math.ceil(size / max_part_bytes))
        if max_parts is not None and count > max_parts:
            raise ValueError(
                f"{folder} packs into {size / _MB:.1f} MB: {count} parts of {max_part_bytes / _MB:.1f} MB, more than "
                f"the {max_parts} allowed. Train a smaller model or allow more parts."
            )
        with open(whole, "rb") as source:
            for index in range(count):
                part = archive.parent / f".{archive.name}.part-{index:02d}.tmp-{tag}"
                part.write_bytes(source.read(max_part_bytes))
                written.append(part)
        for old in archive.parent.glob(f"{archive.name}.part-*"):
            old.unlink()
        final = [archive.parent / f"{archive.name}.part-{index:02d}" for index in range(count)]
        for part, target in zip(written, final):
            os.replace(part, target)
        written = []
        return final
    finally:
        for leftover in [whole, *written]:
            leftover.unlink(missing_ok=True)


def unpack(parts: list[str | os.PathLike], output_dir: str | os.PathLike) -> Path:
    """
    Extracts an archive of [`pack_folder`] (one file, or its parts in order) into `output_dir`, via a temporary
    folder that replaces `output_dir` only when complete.
    """
    output_dir = Path(output_dir)
    if not parts:
        raise ValueError("No archive given.")
    missing = [str(p) for p in parts if not Path(p).is_file()]
    if missing:
        raise ValueError(f"Not files: {missing}.")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    try:
        joined = staging / "archive.tar.xz"
        with open(joined, "wb") as handle:
            for part in sorted(map(str, parts)):
                with open(part, "rb") as source:
                    shutil.copyfileobj(source, handle)
        content = staging / "content"
        with tarfile.open(joined) as tar:
            tar.extractall(content, filter="data")
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(content, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir


def _write_prepared(dataset: Dataset, source_dir: Path, target: Path, note: dict[str, Any]) -> None:
    """
    A prepared-dataset folder: `dataset`, with the tokenizer, codec, aligner and config of `source_dir`; `note` (what
    was selected) is added to the config under `"subset"`.
    """
    target.mkdir(parents=True)
    dataset.save_to_disk(str(target / "dataset"))
    for sub in ("tokenizer", "codec", "aligner"):
        if (source_dir / sub).is_dir():
            shutil.copytree(source_dir / sub, target / sub)
    config = json.loads((source_dir / PREPARE_CONFIG_NAME).read_text(encoding="utf-8"))
    config["subset"] = {**note, "rows": len(dataset), "source": str(source_dir)}
    (target / PREPARE_CONFIG_NAME).write_text(json.dumps(config, indent=2), encoding="utf-8")  # last: complete


# int8 latents: the normalized latents (std `sigma_data`, 0.5) in steps of 3/127, clipped to +-3 (six standard
# deviations); the rounding error (std 0.007) is far below what a listener or the model's lowest noise levels notice
INT8_LATENT_STEP = 3.0 / 127


def _quantize_latents(batch: dict[str, list]) -> dict[str, list]:
    return {
        "latents": [
            np.clip(np.round(np.asarray(x, dtype=np.float32) / INT8_LATENT_STEP), -127, 127).astype(np.int8)
            for x in batch["latents"]
        ]
    }


def _dequantize_latents(batch: dict[str, list]) -> dict[str, list]:
    return {
        "latents": [(np.asarray(x, dtype=np.float32) * INT8_LATENT_STEP).astype(np.float16) for x in batch["latents"]]
    }


def export_prepared(
    prepared_dataset_dir: str | os.PathLike,
    output: str | os.PathLike,
    max_megabytes: float = 40.0,
    max_rows: int | None = None,
    latents_dtype: str = "float16",
) -> dict[str, Any]:
    """
    Packs a prepared dataset into one `.tar.xz` of at most `max_megabytes`, for a machine the data must be copied to.

    The latents are stored as `latents_dtype`: float16 halves them; int8 quarters them (steps of `INT8_LATENT_STEP`,
    and xz packs them three times smaller than float16), and `run` turns them back into float16. When all the
    rows (or `max_rows`) do not fit, the first rows that do are kept: the count is estimated from the sizes of the
    earlier tries (up to five).

    Returns:
        `dict` with `rows` (kept), `total_rows`, `megabytes` and `output`.
    """
    source = Path(prepared_dataset_dir)
    dataset = load_prepared_dataset(source, load_codec_weights=False).dataset
    total = len(dataset)
    features = dataset.features.copy()
    features["latents"] = Array2D(shape=features["latents"].shape, dtype=latents_dtype)
    rows = min(total, max_rows or total)
    tried: list[tuple[int, int]] = []  # (rows, bytes)
    for _ in range(5):
        with tempfile.TemporaryDirectory(dir=Path(output).absolute().parent) as tmp:
            # in memory: nothing is written next to the source dataset
            subset = dataset.select(range(rows))
            note = {"kind": "export", "total_rows": total, "latents_dtype": latents_dtype}
            if latents_dtype == "int8":
                subset = subset.map(_quantize_latents, batched=True, features=features, keep_in_memory=True)
                note["latents_int8_step"] = INT8_LATENT_STEP
            else:
                subset = subset.cast(features, keep_in_memory=True)
            _write_prepared(subset, source, Path(tmp) / "prepared", note)
            archive = Path(tmp) / "prepared.tar.xz"
            pack_folder(Path(tmp) / "prepared", archive)
            size = archive.stat().st_size
            if size <= max_megabytes * _MB:
                os.replace(archive, output)
                return {"rows": rows, "total_rows": total, "megabytes": size / _MB, "output": str(output)}
        tried.append((rows, size))
        if len(tried) == 1:  # proportional guess, then a line through the last two tries (fixed files + per row)
            rows = int(rows * max_megabytes * _MB / size * 0.95)
        else:
            (rows_a, size_a), (rows_b, size_b) = tried[-2:]
            per_row = (size_a - size_b) / (rows_a - rows_b) if rows_a != rows_b else size_b / max(rows_b, 1)
            rows = int((max_megabytes * _MB - (size_b - per_row * rows_b)) / max(per_row, 1e-9) * 0.98)
        rows = min(rows, tried[-1][0] - 1)
        if rows < 1:
            break
    raise ValueError(f"Could not fit the prepared dataset {source} into {max_megabytes} MB (even a few rows).")


# ----------------------------------------------------------------------------------------------------------------
# The sprint
# ----------------------------------------------------------------------------------------------------------------


def hold_out(prepared_dir: Path, output_dir: Path, num_rows: int, seed: int = 0) -> tuple[Path, Dataset]:
    """Splits `num_rows` random rows off a prepared dataset: a prepared folder of the rest, and the held-out rows."""
    data = load_prepared_dataset(prepared_dir, load_codec_weights=False)
    dataset = data.dataset
    subset = data.config.get("subset", {})
    if subset.get("latents_dtype") == "int8":  # an int8 export: back to float16 latents before training reads them
        features = dataset.features.copy()
        features["latents"] = Array2D(shape=features["latents"].shape, dtype="float16")
        step = subset.get("latents_int8_step")
        if step != INT8_LATENT_STEP:
            raise ValueError(
                f"{prepared_dir}: int8 latents in steps of {step}, this version reads {INT8_LATENT_STEP}."
            )
        dataset = dataset.map(_dequantize_latents, batched=True, features=features, keep_in_memory=True)
    if len(dataset) < 2:
        raise ValueError(f"{prepared_dir} has {len(dataset)} row(s): the sprint needs at least 2 (train, validation).")
    num_rows = min(num_rows, len(dataset) // 2)
    order = np.random.default_rng(seed).permutation(len(dataset))
    # in memory: no cache file is written beside the source dataset
    split = {
        "train": dataset.select(sorted(order[num_rows:]), keep_in_memory=True),
        "test": dataset.select(sorted(order[:num_rows]), keep_in_memory=True),
    }
    train_dir = output_dir / "train_data"
    if train_dir.exists():
        shutil.rmtree(train_dir)
    staging = output_dir / f".train_data.tmp-{uuid.uuid4().hex[:8]}"
    try:
        _write_prepared(split["train"], prepared_dir, staging, {"kind": "sprint training rows", "held_out": num_rows})
        os.replace(staging, train_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return train_dir, split["test"]


@torch.no_grad()
def validation_loss(
    pipe: FlashSpeechPipeline, rows: Dataset, train_args: argparse.Namespace, device: torch.device
) -> dict[str, float]:
    """
    The training module's losses on `rows` (eval mode, no gradient), in batches of `--train_batch_size`, batch `i`
    drawing its prompt cuts and noise levels from seed `i`: the same numbers for the same model and rows.

    Returns:
        `dict`: `loss` and each loss term, averaged over the rows.
    """
    module = FlashSpeechTrainingModule(
        pipe.prior_encoder,
        pipe.prosody_generator,
        pipe.denoiser,
        pipe.codec,
        ConsistencyTrainingCurriculum.from_scheduler(
            pipe.scheduler, total_training_steps=train_args.curriculum_total_steps or train_args.max_train_steps
        ),
        TrainingLossConfig.from_args(train_args),
        train_components=train_args.train_components,
        pad_token_id=pipe.tokenizer.pad_token_id,
        scheduler=pipe.scheduler,
    )
    module.to(device).eval()
    rows = rows.with_format("numpy")
    totals: dict[str, float] = {}
    size = train_args.train_batch_size
    for index, start in enumerate(range(0, len(rows), size)):
        batch = collate_prepared(
            [rows[i] for i in range(start, min(start + size, len(rows)))], pipe.tokenizer.pad_token_id
        )
        batch = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        output = module(batch, step=0, generator=torch.Generator().manual_seed(index))
        items = batch["latents"].shape[0]
        for name, value in {**output.losses, "loss": output.loss}.items():
            totals[name] = totals.get(name, 0.0) + float(value) * items
    return {name: value / len(rows) for name, value in sorted(totals.items())}


def run_sprint(args: argparse.Namespace, train_flags: list[str]) -> dict[str, Any]:
    """Runs `run` (see the module docstring); returns the report it writes."""
    output_dir = Path(args.output_dir).absolute()
    output_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda":
        print("No CUDA device: the sprint runs on the CPU.")
    prepared = Path(args.prepared)
    if prepared.is_file():
        prepared = unpack([prepared], output_dir / "prepared")
    train_dir, held_out = hold_out(prepared, output_dir, args.validation_rows, seed=args.seed)
    train_output = output_dir / "train"
    argv = [
        "--config", str(args.config), "--prepared_dataset_dir", str(train_dir), "--output_dir", str(train_output),
        "--max_train_minutes", str(args.minutes), "--seed", str(args.seed), "--report_to", "none", *train_flags,
    ]  # fmt: skip
    summary = train_flashspeech.main(argv)
    steps = len(summary["loss_history"])
    steps_per_second = steps / max(summary["train_seconds"], 1e-9)

    pipe = FlashSpeechPipeline.from_pretrained(str(train_output))
    losses = validation_loss(pipe, held_out, train_flashspeech.parse_args(argv), device)
    parts = pack_folder(
        train_output,
        output_dir / PIPELINE_ARCHIVE,
        max_part_bytes=int(args.max_part_megabytes * _MB),
        max_parts=args.max_parts,
        exclude=_NOT_PACKED,
    )
    report = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "steps": steps,
        "train_seconds": round(summary["train_seconds"], 2),
        "steps_per_second": round(steps_per_second, 3),
        "frames_per_second": round(summary["frames_per_second"], 1),
        "train_rows": summary["num_rows"],
        "validation_rows": len(held_out),
        "validation_loss": losses,
        "final_train_losses": summary["final_losses"],
        "parts": {part.name: part.stat().st_size for part in parts},
        "train_args": argv,
    }
    tmp = output_dir / f".{REPORT_NAME}.tmp"
    tmp.write_text(json.dumps(report, indent=2), encoding="utf-8")
    os.replace(tmp, output_dir / REPORT_NAME)
    print(f"steps: {steps} in {report['train_seconds']} s, steps/s: {report['steps_per_second']}")
    print(f"validation loss ({len(held_out)} held-out rows): {losses['loss']:.4f} {losses}")
    print(f"pipeline: {len(parts)} part(s), largest {max(report['parts'].values()) / _MB:.2f} MB, in {output_dir}")
    return report


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="Pack a prepared dataset into one .tar.xz under a size budget.")
    export.add_argument("--prepared_dataset_dir", required=True)
    export.add_argument("--output", required=True, help="The .tar.xz file to write.")
    export.add_argument("--max_megabytes", type=float, default=40.0)
    export.add_argument("--max_rows", type=int, default=None)
    export.add_argument("--latents_dtype", choices=("int8", "float16", "float32"), default="float16")

    run = commands.add_parser("run", help="Train for a wall-clock budget; other flags go to train_flashspeech.py.")
    run.add_argument("--prepared", required=True, help="A prepared-dataset folder or an `export` archive.")
    run.add_argument("--output_dir", required=True)
    run.add_argument("--minutes", type=float, default=8.0, help="Training budget (wall clock of the steps).")
    run.add_argument("--config", default=str(SPRINT_CONFIG), help="train_flashspeech.py config JSON.")
    run.add_argument("--validation_rows", type=int, default=64, help="Rows held out for the validation loss.")
    run.add_argument("--max_part_megabytes", type=float, default=15.0)
    run.add_argument("--max_parts", type=int, default=8)
    run.add_argument("--seed", type=int, default=0)

    unpack_parser = commands.add_parser("unpack", help="Join the parts of a packed pipeline and extract it.")
    unpack_parser.add_argument("parts", nargs="+")
    unpack_parser.add_argument("--output_dir", required=True)
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args, rest = build_parser().parse_known_args(argv)
    if args.command != "run" and rest:
        raise SystemExit(f"error: unknown arguments {rest}")
    if args.command == "export":
        result = export_prepared(
            args.prepared_dataset_dir, args.output, args.max_megabytes, args.max_rows, args.latents_dtype
        )
        print(
            f"Wrote {result['output']}: {result['rows']} of {result['total_rows']} rows, {result['megabytes']:.1f} MB."
        )
        return result
    if args.command == "unpack":
        return {"output_dir": str(unpack(args.parts, args.output_dir))}
    if not 0 < args.minutes <= 24 * 60 or args.validation_rows < 1 or args.max_parts < 1:
        raise SystemExit("error: need 0 < --minutes <= 1440, --validation_rows >= 1 and --max_parts >= 1.")
    return run_sprint(args, rest)


if __name__ == "__main__":
    main(sys.argv[1:])
