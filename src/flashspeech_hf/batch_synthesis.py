"""Batch synthesis over many processes: rows of (text, prompt[, id, seed]) -> an audiofolder of WAV files.

Rows come from a CSV file ([`rows_from_csv`]) or any `datasets.Dataset` ([`rows_from_dataset`]) with the columns
`text` and `prompt` (optional `id` and `seed`). [`synthesize_rows`] splits the rows that are not done yet across the
processes of an `accelerate launch` (`PartialState.split_between_processes`), writes each row's audio atomically
as `<id>.wav`, and has the main process write `metadata.csv` (`file_name,id,text,prompt,seed`), so that the output
folder loads with `datasets.load_dataset("audiofolder", data_dir=...)`. A re-run skips the rows whose file exists.

Errors: a problem of the whole input (a missing column, duplicate or unusable ids) stops before any work; a problem of
one row (empty text, missing or silent prompt, bad seed) is reported with the row's id, and the other rows continue.

Examples:

```bash
accelerate launch --multi_gpu --num_processes 2 -m flashspeech_hf.cli synthesize \\
    --model checkpoints/flashspeech-demo --input_csv rows.csv --output_dir out
```

```python
>>> from datasets import load_dataset
>>> load_dataset("audiofolder", data_dir="out", split="train")[0]["text"]
```
"""

from __future__ import annotations

import collections
import csv
import io
import json
import os
import re
import shutil
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .audio import read_audio_file, write_audio, write_text_atomically

__all__ = ["SynthesisRow", "rows_from_csv", "rows_from_dataset", "synthesize_rows"]

REQUIRED_COLUMNS = ("text", "prompt")
METADATA_COLUMNS = ("file_name", "id", "text", "prompt", "seed")
REPORT_FILE = "synthesis_report.json"
_PARTS_FOLDER = ".synthesis_parts"
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass
class SynthesisRow:
    """
    One row to synthesize.

    Args:
        id (`str`): Names the output file `<id>.wav`.
        text (`str`): What to say (any length: long texts are spoken sentence by sentence).
        prompt (`str`): The prompt as given (a path, or the audio file name for a dataset's audio column).
        seed (`str`): The seed as given (empty: the default seed).
        load_prompt (`Callable[[], tuple]`): Returns `(audio, sampling_rate)` for the pipeline: a path and `None`, or
            a waveform and its rate.
    """

    id: str
    text: str
    prompt: str
    seed: str
    load_prompt: Callable[[], tuple[Any, int | None]]


def _check_columns(columns: Sequence[str], source: str) -> None:
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise ValueError(
            f"{source} lacks the column(s) {missing}; batch synthesis needs `text` and `prompt` (optional `id`, "
            f"`seed`); its columns are {list(columns)}."
        )


def _row_ids(ids: Sequence[Any] | None, num_rows: int, source: str) -> list[str]:
    """The ids as strings (row numbers `000000`, ... when absent); raises for duplicates or unusable file names."""
    if ids is None:
        width = max(6, len(str(num_rows - 1)))
        return [f"{i:0{width}d}" for i in range(num_rows)]
    ids = ["" if value is None else str(value).strip() for value in ids]
    bad = [(i, value) for i, value in enumerate(ids) if not _ID_PATTERN.fullmatch(value)]
    if bad:
        shown = ", ".join(f"row {i}: {value!r}" for i, value in bad[:5])
        raise ValueError(
            f"{source} has {len(bad)} id(s) that cannot name a file ({shown}); ids must be 1-128 letters, digits, "
            "`.`, `_` or `-`, starting with a letter or digit."
        )
    duplicated = sorted(value for value, count in collections.Counter(ids).items() if count > 1)
    if duplicated:
        raise ValueError(f"{source} has duplicate ids: {duplicated[:10]}; every row needs its own id.")
    return ids


def rows_from_csv(path: str | os.PathLike) -> list[SynthesisRow]:
    """
    Reads the rows of a CSV file with a header and the columns `text` and `prompt` (optional `id` and `seed`).

    Args:
        path (`str` or `os.PathLike`): The CSV file (UTF-8). Relative prompt paths are relative to its folder.

    Returns:
        `list[SynthesisRow]`, in file order.

    Raises:
        `FileNotFoundError`: If the file does not exist. `ValueError`: If a required column is missing, the file has
        no rows, or ids are duplicated or cannot name a file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--input_csv file not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        _check_columns([name.strip() for name in reader.fieldnames or []], path)
        records = [{(key or "").strip(): value for key, value in record.items()} for record in reader]
    if not records:
        raise ValueError(f"{path} has a header but no rows.")
    ids = _row_ids([r.get("id") for r in records] if "id" in records[0] else None, len(records), path)
    folder = os.path.dirname(os.path.abspath(path))

    def loader(prompt: str) -> Callable[[], tuple[str, None]]:
        def load() -> tuple[str, None]:
            if not prompt:
                raise ValueError("its `prompt` is empty: give the path of a speech prompt.")
            full = prompt if os.path.isabs(prompt) else os.path.join(folder, prompt)
            if not os.path.isfile(full):
                raise FileNotFoundError(f"its prompt file is not found: {full}")
            return full, None

        return load

    return [
        SynthesisRow(
            id=row_id,
            text=record.get("text") or "",
            prompt=(record.get("prompt") or "").strip(),
            seed=(record.get("seed") or "").strip(),
            load_prompt=loader((record.get("prompt") or "").strip()),
        )
        for row_id, record in zip(ids, records)
    ]


def rows_from_dataset(dataset, source: str = "The dataset") -> list[SynthesisRow]:
    """
    The rows of a `datasets.Dataset` with the columns `text` and `prompt` (optional `id` and `seed`). `prompt` is a
    path or an `Audio` column; audio is read lazily, one row at a time, with `soundfile` (no torchcodec needed).

    Args:
        dataset (`datasets.Dataset`): The rows.
        source (`str`): Its name, for error messages.

    Returns:
        `list[SynthesisRow]`, in dataset order.
    """
    import datasets

    from .pipelines.pipeline_flashspeech_base import MAX_PROMPT_SECONDS

    _check_columns(dataset.column_names, source)
    if len(dataset) == 0:
        raise ValueError(f"{source} has no rows.")
    is_audio = isinstance(dataset.features["prompt"], datasets.Audio)
    if is_audio:
        dataset = dataset.cast_column("prompt", datasets.Audio(decode=False))
    columns = [name for name in ("text", "id", "seed") if name in dataset.column_names]
    table = dataset.select_columns(columns).to_dict()
    ids = _row_ids(table.get("id"), len(dataset), source)
    prompts = dataset["prompt"]  # paths, or {"bytes", "path"} with decode=False

    def loader(index: int) -> Callable[[], tuple[Any, int | None]]:
        def load() -> tuple[Any, int | None]:
            value = prompts[index]
            if is_audio:
                if value is None:
                    raise ValueError("its `prompt` audio is missing.")
                if value.get("bytes"):  # header checked, mixed down as it is decoded (see `read_audio_file`)
                    return read_audio_file(
                        io.BytesIO(value["bytes"]), "prompt", MAX_PROMPT_SECONDS, "max_prompt_seconds"
                    )
                value = value.get("path")
            if not value or not os.path.isfile(str(value)):
                raise FileNotFoundError(f"its prompt file is not found: {value!r}")
            return str(value), None

        return load

    if is_audio:  # the file names, without reading the audio bytes into Python objects
        names = [os.path.basename(path or "") for path in dataset.select_columns(["prompt"]).flatten()["prompt.path"]]
    else:
        names = ["" if value is None else str(value) for value in dataset["prompt"]]
    texts = table["text"]
    seeds = table.get("seed") or [None] * len(ids)
    return [
        SynthesisRow(
            id=ids[i],
            text="" if texts[i] is None else str(texts[i]),
            prompt=names[i],
            seed="" if seeds[i] is None else str(seeds[i]).strip(),
            load_prompt=loader(i),
        )
        for i in range(len(ids))
    ]


def _row_seed(row: SynthesisRow, default_seed: int) -> int:
    """The row's seed, or `default_seed` plus a hash of its id (independent of row order and process count)."""
    if not row.seed:
        return default_seed + zlib.crc32(row.id.encode("utf-8"))
    match = re.fullmatch(r"(\d+)(?:\.0*)?", row.seed)  # "7", or "7.0" from a float column
    if match is None or int(match.group(1)) >= 2**63:
        raise ValueError(f"its seed {row.seed!r} is not an integer in [0, 2**63).")
    return int(match.group(1))


def _record_seed(journal: str, row_id: str, seed: int) -> None:
    """
    Appends the seed of a row to this process's journal before its audio is written, so that a run that is killed
    (and never writes its report part) still leaves the seed of every row it wrote for the next run's `metadata.csv`.
    """
    with open(journal, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"id": row_id, "seed": seed}) + "\n")


def _journaled_seeds(parts: str) -> dict[str, int]:
    """The seeds in the journals of the parts folder (this run's and those of killed runs); torn lines are skipped."""
    seeds: dict[str, int] = {}
    for name in sorted(os.listdir(parts)):
        if name.startswith("seeds-") and name.endswith(".jsonl"):
            with open(os.path.join(parts, name), encoding="utf-8") as handle:
                for line in handle:
                    try:
                        record = json.loads(line)
                        seeds[str(record["id"])] = int(record["seed"])
                    except (ValueError, KeyError, TypeError):  # a line cut short by a kill
                        continue
    return seeds


def _write_metadata(rows: Sequence[SynthesisRow], output_dir: str, seeds: dict[str, int]) -> int:
    """Writes `metadata.csv` for every row whose audio exists, in row order; returns the number of rows listed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(METADATA_COLUMNS)
    count = 0
    for row in rows:
        file_name = f"{row.id}.wav"
        if os.path.isfile(os.path.join(output_dir, file_name)):
            writer.writerow([file_name, row.id, row.text, row.prompt, seeds.get(row.id, row.seed)])
            count += 1
    write_text_atomically(os.path.join(output_dir, "metadata.csv"), buffer.getvalue())
    return count


def synthesize_rows(
    pipe,
    rows: Sequence[SynthesisRow],
    output_dir: str | os.PathLike,
    state=None,
    seed: int = 0,
    progress: bool = True,
    **generation_kwargs,
) -> dict:
    """
    Synthesizes every row not done yet into `output_dir/<id>.wav`, split across the processes of `state`, and writes
    `metadata.csv` and `synthesis_report.json` from the main process.

    Each process writes its rows atomically (a hidden temporary file renamed into place), then a part of the report;
    after `wait_for_everyone`, the main process merges the parts and writes `metadata.csv` (every row whose audio
    exists, this run's or a previous one's) and the report, each atomically.

    Args:
        pipe ([`FlashSpeechPipeline`]): The pipeline, on this process's device.
        rows (`Sequence[SynthesisRow]`): The same rows, in the same order, on every process.
        output_dir (`str` or `os.PathLike`): The audiofolder to fill.
        state (`accelerate.PartialState`, *optional*): The processes; a single process when omitted.
        seed (`int`, defaults to 0): Default seed: a row without `seed` uses `seed + crc32(id)`.
        progress (`bool`, defaults to `True`): A progress bar over this process's rows (on the local main process).
        **generation_kwargs: Passed to [`~FlashSpeechLongFormMixin.long_form`] (`num_inference_steps`,
            `prosody_alpha`, `speed`, `batch_size`, ...).

    Returns:
        `dict`: The report: `written`, `skipped` and `failed` (`{"id", "error"}`) rows, and `rank_of` (the process that
        wrote each row); on processes other than the main one, only this process's part.
    """
    from accelerate import PartialState
    from tqdm.auto import tqdm

    state = state if state is not None else PartialState()
    output_dir = os.path.abspath(os.fspath(output_dir))
    parts = os.path.join(output_dir, _PARTS_FOLDER)
    os.makedirs(parts, exist_ok=True)
    done = {row.id for row in rows if os.path.isfile(os.path.join(output_dir, f"{row.id}.wav"))}
    todo = [row for row in rows if row.id not in done]
    state.wait_for_everyone()  # every process has listed the finished rows before any process writes one

    part: dict[str, Any] = {"rank": state.process_index, "written": [], "failed": [], "seeds": {}}
    journal = os.path.join(parts, f"seeds-{state.process_index}-{os.getpid()}.jsonl")
    with state.split_between_processes(todo) as mine:
        bar = tqdm(mine, desc="rows", unit="row", disable=not (progress and state.is_local_main_process))
        for row in bar:
            try:
                if not row.text.strip():
                    raise ValueError("its `text` is empty.")
                row_seed = _row_seed(row, seed)
                audio, rate = row.load_prompt()
                out = pipe.long_form(
                    row.text, audio, prompt_sampling_rate=rate, generator=row_seed, **generation_kwargs
                )
                _record_seed(journal, row.id, row_seed)
                write_audio(os.path.join(output_dir, f"{row.id}.wav"), out.audios[0], pipe.sampling_rate)
                part["written"].append(row.id)
                part["seeds"][row.id] = row_seed
            except Exception as err:  # one bad row is reported; the others continue
                part["failed"].append({"id": row.id, "error": f"{type(err).__name__}: {err}"})
    write_text_atomically(os.path.join(parts, f"part-{state.process_index}.json"), json.dumps(part))
    state.wait_for_everyone()
    if not state.is_main_process:
        state.wait_for_everyone()
        return part

    report: dict[str, Any] = {"written": [], "skipped": sorted(done), "failed": [], "rank_of": {}}
    seeds: dict[str, int] = {}
    for rank in range(state.num_processes):
        with open(os.path.join(parts, f"part-{rank}.json"), encoding="utf-8") as handle:
            piece = json.load(handle)
        report["written"] += piece["written"]
        report["failed"] += piece["failed"]
        report["rank_of"].update(dict.fromkeys(piece["written"], rank))
        seeds.update(piece["seeds"])
    for row_id, row_seed in _journaled_seeds(parts).items():  # rows written by runs that were killed
        seeds.setdefault(row_id, row_seed)
    if os.path.isfile(os.path.join(output_dir, "metadata.csv")):  # keep the seeds that earlier runs resolved
        with open(os.path.join(output_dir, "metadata.csv"), newline="", encoding="utf-8") as handle:
            for record in csv.DictReader(handle):
                seeds.setdefault(record["id"], record["seed"])
    report["num_listed"] = _write_metadata(rows, output_dir, seeds)
    write_text_atomically(os.path.join(output_dir, REPORT_FILE), json.dumps(report, indent=2) + "\n")
    shutil.rmtree(parts, ignore_errors=True)
    state.wait_for_everyone()
    return report
