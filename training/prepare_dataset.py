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
"""Prepares a speech dataset for FlashSpeech training: phoneme ids, normalized codec latents, pitch and durations.

Any `datasets` dataset with an audio column and a text column works: a local audiofolder, a parquet/CSV/JSON file (a
CSV's audio column may hold paths, relative to the file), a folder saved with `save_to_disk`, or a Hub id. The steps:

1. every example is decoded with soundfile (`Audio(decode=False)`, so one unreadable file is skipped rather than
   crashing the run), resampled to the codec's rate, checked (length, silence), phonemized by the tokenizer, encoded
   to raw codec latents, and given a frame-level `ln F0` from PyWorld (unvoiced frames interpolated), in shards of
   `--shard_size` examples written atomically to `OUT/cache`; the shards are split across the processes of a
   `torchrun` / `accelerate launch` and the `--num_proc` spawned workers of each, and a killed run keeps its finished
   shards; the main process waits for all of them and does the steps below alone;
2. the per-channel latent statistics of the kept examples are stored in the codec, scaled so that normalized latents
   have the standard deviation `sigma_data`;
3. phoneme durations come from a `--durations_column` (checked: they must sum to the latent frames) or from a
   `FlashSpeechAligner` trained here with the forward-sum loss (plus the binarization loss in the second half) and
   hardened by monotonic alignment search;
4. the final rows are written with `save_to_disk`, next to the tokenizer, the codec and the aligner, into a temporary
   folder that replaces `OUT` only at the end.

A re-run with the same arguments reuses every finished step (featurized shards, aligner, durations) from `OUT/cache`.
Examples that cannot be used are skipped and counted by reason in the printed summary and in `prepare_config.json`.

`--prompt_channel_copies_from PREPARED` does not prepare audio: it derives the prompt-only variant of channel
augmentation from a prepared folder whose corpus holds channel-augmented copies of clips filed under speaker
`<speaker>_ch<k>` with the same text (`training/make_real_corpus.py --channel_fraction`). Each copy is paired with its
clean row, its latents (frame-aligned) go into the clean row's `prompt_channel_latents` column, from which training
cuts the prompt while the target stays clean, and the copy is no longer a training row of its own (see
[`add_prompt_channel_copies`]).

Example:

```bash
python training/prepare_dataset.py \
    --dataset_name_or_path ./my_audiofolder --speaker_column speaker_id \
    --codec mel --pipeline_config tiny --aligner_steps 2000 \
    --output_dir ./prepared
# a known corpus, streamed, featurized by 8 processes (resumable: finished shards are kept)
torchrun --nproc_per_node 8 training/prepare_dataset.py --corpus libritts_r --streaming --output_dir ./prepared
# the prompt-only channel variant of a prepared folder
python training/prepare_dataset.py --prompt_channel_copies_from ./prepared --output_dir ./prepared_promptch
```
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import itertools
import json
import logging
import math
import multiprocessing
import os
import re
import shutil
import sys
import time
import uuid
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import soundfile as sf
import torch
from data_utils import (
    PREPARE_CONFIG_NAME,
    PREPARED_COLUMNS,
    PROMPT_CHANNEL_COLUMN,
    FrameBudgetBatchSampler,
    collate_prepared,
    load_codec,
    load_prepared_dataset,
    prepared_features,
)
from datasets import (
    Array2D,
    Audio,
    Dataset,
    Features,
    IterableDataset,
    List,
    Value,
    concatenate_datasets,
    load_dataset,
    load_from_disk,
)
from datasets.arrow_writer import ArrowWriter
from datasets.fingerprint import Hasher

import flashspeech_hf
from flashspeech_hf import FlashSpeechTokenizer, MelCodec, check_speech, load_audio
from flashspeech_hf.codecs import compute_latent_statistics
from flashspeech_hf.configs import PIPELINE_CONFIGS, get_pipeline_config
from flashspeech_hf.losses import binarization_loss, forward_sum_loss
from flashspeech_hf.models.modeling_aligner import FlashSpeechAligner, monotonic_alignment_search
from flashspeech_hf.text.tokenization_flashspeech import STRESS_MARKS

logger = logging.getLogger(__name__)

# Bump when the per-example processing changes, so that caches of older versions are not reused.
FORMAT_VERSION = 1

SKIP_REASONS = (
    "unreadable_audio",  # missing file, not audio, NaN samples
    "too_short",  # shorter than --min_seconds
    "too_long",  # longer than --max_seconds
    "silent",  # RMS under --silence_rms
    "unvoiced",  # PyWorld found no voiced frame
    "empty_text",  # missing, empty or unpronounceable transcript
    "text_mismatch",  # more phonemes than latent frames, or more than --max_seconds_per_phoneme per phoneme
    "invalid_durations",  # a --durations_column value that does not fit the phonemes and frames
    "processing_error",  # any other error while processing the example (the message is recorded)
)

# `--corpus NAME`: where the corpora users train on are on the Hub and which columns hold what (README, "Train on your
# corpus"). Each fills the flags that are not given; `sampling_rate` and `splits` document the corpus (clips are
# resampled to the codec's rate whatever theirs). Dotted columns name a field of a dict column (Emilia's `json`).
CORPUS_RECIPES: dict[str, dict[str, Any]] = {
    "mls_eng": {
        "dataset_name_or_path": "parler-tts/mls_eng",  # English Multilingual LibriSpeech, 44.5k h: the paper's data
        "split": "train",
        "splits": ("train", "dev", "test"),
        "audio_column": "audio",
        "text_column": "transcript",
        "speaker_column": "speaker_id",
        "sampling_rate": 16000,
    },
    "libritts_r": {
        "dataset_name_or_path": "mythicinfinity/libritts_r",
        "dataset_config_name": "clean",
        "split": "train.clean.360",
        "splits": ("train.clean.100", "train.clean.360", "dev.clean", "test.clean"),
        "audio_column": "audio",
        "text_column": "text_normalized",
        "speaker_column": "speaker_id",
        "sampling_rate": 24000,
    },
    "libritts": {
        "dataset_name_or_path": "mythicinfinity/libritts",
        "dataset_config_name": "clean",
        "split": "train.clean.360",
        "splits": ("train.clean.100", "train.clean.360", "dev.clean", "test.clean"),
        "audio_column": "audio",
        "text_column": "text_normalized",
        "speaker_column": "speaker_id",
        "sampling_rate": 24000,
    },
    "vctk": {
        "dataset_name_or_path": "CSTR-Edinburgh/vctk",
        "split": "train",
        "splits": ("train",),
        "audio_column": "audio",
        "text_column": "text",
        "speaker_column": "speaker_id",
        "sampling_rate": 48000,
    },
    "ljspeech": {
        "dataset_name_or_path": "keithito/lj_speech",
        "split": "train",
        "splits": ("train",),
        "audio_column": "audio",
        "text_column": "normalized_text",  # numbers and abbreviations spelled out
        "speaker_column": None,  # one speaker
        "sampling_rate": 22050,
    },
    "emilia": {
        "dataset_name_or_path": "amphion/Emilia-Dataset",  # webdataset shards: `mp3` audio, `json` metadata
        "data_files": "Emilia/EN/*.tar",  # the English part; other languages: Emilia/DE/*.tar, ... (and --language)
        "split": "train",
        "splits": ("train",),
        "audio_column": "mp3",
        "text_column": "json.text",
        "speaker_column": "json.speaker",
        "sampling_rate": 24000,
    },
}
_GENERIC_DEFAULTS = {"split": "train", "audio_column": "audio", "text_column": "text"}

# What an existing --output_dir may hold without --overwrite_output_dir: the files of an earlier run.
_OUTPUT_ENTRIES = {"cache", "dataset", "tokenizer", "codec", "aligner", PREPARE_CONFIG_NAME}
_HELPER_COLUMNS = ("index", "raw_latents", "skip_reason", "skip_detail")

# Speaker ids of channel-augmented copies (`training/make_real_corpus.py`): group 1 is the clean clip's speaker.
CHANNEL_SPEAKER_PATTERN = r"^(.*)_ch\d+$"


class DatasetPreparationError(ValueError):
    """A problem with the user's input (arguments or dataset), raised before any work starts."""


class _Skip(Exception):
    def __init__(self, reason: str, detail: str = ""):
        if reason not in SKIP_REASONS:
            raise ValueError(f"Unknown skip reason {reason!r}.")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# ----------------------------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_argument_group("dataset")
    group.add_argument(
        "--corpus",
        choices=sorted(CORPUS_RECIPES),
        default=None,
        help="A known corpus: fills the dataset, split and column flags that are not given (README, 'Train on your "
        "corpus'); --dataset_name_or_path may then point at a local copy.",
    )
    group.add_argument(
        "--dataset_name_or_path",
        default=None,
        help="A local audiofolder, a parquet/CSV/JSON file or folder, a save_to_disk folder, or a Hub dataset id.",
    )
    group.add_argument("--dataset_config_name", default=None, help="The dataset's configuration (Hub datasets).")
    group.add_argument("--data_files", default=None, help="Files of a Hub dataset to read (a glob in the repository).")
    group.add_argument("--split", default=None, help="Split to prepare (default train; 'train[:1%%]' works).")
    group.add_argument(
        "--audio_column", default=None, help="Column with the audio (Audio feature or file paths; default audio)."
    )
    group.add_argument(
        "--text_column", default=None, help="Column with the transcripts (default text; `a.b`: field b of column a)."
    )
    group.add_argument("--speaker_column", default=None, help="Optional column with speaker ids.")
    group.add_argument(
        "--durations_column",
        default=None,
        help="Optional column of phoneme durations in latent frames (one per phoneme id, summing to the frames); "
        "used as is instead of training an aligner.",
    )
    group.add_argument("--streaming", action="store_true", help="Stream the dataset instead of downloading it.")
    group.add_argument("--max_samples", type=int, default=None, help="Prepare only the first N examples.")

    group = parser.add_argument_group("output")
    group.add_argument("--output_dir", required=True, help="Where the prepared dataset goes.")
    group.add_argument("--cache_dir", default=None, help="Cache of datasets' files (default: OUTPUT_DIR/cache).")
    group.add_argument(
        "--overwrite_output_dir",
        action="store_true",
        help="Allow an output_dir that holds other files than an earlier run's (it is replaced).",
    )

    group = parser.add_argument_group("codec and tokenizer")
    group.add_argument(
        "--codec",
        choices=["mel"],
        default=None,
        help="Build a MelCodec of --pipeline_config (the default when --codec_name_or_path is not given).",
    )
    group.add_argument(
        "--codec_name_or_path",
        default=None,
        help="A saved codec folder (or a pipeline/prepared folder with codec/), or a transformers EnCodec/DAC id.",
    )
    group.add_argument(
        "--pipeline_config",
        default="paper",
        choices=sorted(PIPELINE_CONFIGS),
        help="Named sizes of the codec (a MelCodec) and the aligner, flags below override them.",
    )
    group.add_argument("--tokenizer_name_or_path", default=None, help="A saved FlashSpeechTokenizer.")
    group.add_argument("--language", default="en-us", help="espeak-ng language of the default tokenizer.")
    group.add_argument("--sigma_data", type=float, default=0.5, help="Target std of the normalized latents.")
    group.add_argument(
        "--reuse_latent_statistics",
        action="store_true",
        help="Keep the latent statistics stored in the given codec (e.g. to fine-tune a trained pipeline) instead "
        "of computing them on this dataset.",
    )

    group = parser.add_argument_group("filtering and pitch")
    group.add_argument("--min_seconds", type=float, default=0.5, help="Skip shorter clips.")
    group.add_argument("--max_seconds", type=float, default=30.0, help="Skip longer clips.")
    group.add_argument("--silence_rms", type=float, default=1e-4, help="Clips under this RMS level are silent.")
    group.add_argument(
        "--max_seconds_per_phoneme",
        type=float,
        default=1.0,
        help="Skip clips with more audio per phoneme token than this (a transcript that misses most of the speech).",
    )
    group.add_argument("--pitch_algorithm", default="dio", choices=["dio", "harvest"], help="PyWorld F0 estimator.")
    group.add_argument("--f0_min", type=float, default=50.0, help="Lowest F0 in Hz.")
    group.add_argument("--f0_max", type=float, default=1100.0, help="Highest F0 in Hz.")

    group = parser.add_argument_group("aligner")
    group.add_argument(
        "--aligner_name_or_path",
        default=None,
        help="A trained FlashSpeechAligner (its folder, or a pipeline folder with an `aligner/` subfolder) to start "
        "from instead of a new one; with --aligner_steps 0 it is used as is. Its latents must be normalized like "
        "this run's: pass the same pipeline's codec with --codec_name_or_path and --reuse_latent_statistics.",
    )
    group.add_argument(
        "--aligner_steps", type=int, default=2000, help="Training steps of the aligner (more, from a pretrained one)."
    )
    group.add_argument("--aligner_learning_rate", type=float, default=3e-3)
    group.add_argument("--aligner_max_frames_per_batch", type=int, default=8000, help="Padded frames per batch.")
    group.add_argument("--aligner_hidden_size", type=int, default=None, help="Default: from --pipeline_config.")
    group.add_argument("--aligner_attention_dim", type=int, default=None, help="Default: from --pipeline_config.")
    group.add_argument("--aligner_num_text_layers", type=int, default=None, help="Default: from --pipeline_config.")
    group.add_argument("--aligner_kernel_size", type=int, default=None, help="Default: from --pipeline_config.")
    group.add_argument(
        "--aligner_keep_silent_tokens",
        action="store_true",
        help="Align word boundaries and stress marks like phonemes (by default they get 0 frames: they have no sound).",
    )
    group.add_argument(
        "--aligner_binarization_start",
        type=int,
        default=None,
        help="Step at which the binarization loss is added (default: half of --aligner_steps).",
    )
    group.add_argument("--aligner_binarization_weight", type=float, default=1.0)

    group = parser.add_argument_group("run")
    group.add_argument("--batch_size", type=int, default=16, help="Examples per map batch.")
    group.add_argument(
        "--num_proc",
        type=int,
        default=None,
        help="Worker processes (spawned, on the CPU) that featurize shards, in each process of the launch.",
    )
    group.add_argument(
        "--shard_size",
        type=int,
        default=1000,
        help="Examples per featurized shard: the unit of work split across processes and kept by a killed run.",
    )
    group.add_argument("--device", default=None, help="Device of the codec and aligner (default: cuda if there).")
    group.add_argument("--seed", type=int, default=0)

    group = parser.add_argument_group("prompt-only channel augmentation (derives from a prepared folder)")
    group.add_argument(
        "--prompt_channel_copies_from",
        default=None,
        metavar="PREPARED_DIR",
        help="Instead of preparing audio, write into --output_dir a copy of this prepared folder where each "
        "channel-augmented row (speaker matching --prompt_channel_speaker_pattern) becomes the prompt-channel "
        "latents of its clean row (same base speaker and text) and is no longer a training row itself.",
    )
    group.add_argument(
        "--prompt_channel_speaker_pattern",
        default=CHANNEL_SPEAKER_PATTERN,
        help="Regular expression of the channel copies' speaker ids; its group 1 is the clean speaker's id.",
    )
    group.add_argument(
        "--prompt_channel_max_frame_difference",
        type=int,
        default=16,
        help="Pair a copy only when its frame count is within this many frames of the clean row's (the rest of the "
        "clean frames get the copy's edge frames); farther copies are reported as unmatched.",
    )
    args = parser.parse_args(argv)
    _check_args(args)
    return args


def _aligner_size_flags(args: argparse.Namespace) -> dict[str, int]:
    """The aligner sizes given on the command line (`--aligner_hidden_size` ...), by config name."""
    names = ("hidden_size", "attention_dim", "num_text_layers", "kernel_size")
    return {name: getattr(args, f"aligner_{name}") for name in names if getattr(args, f"aligner_{name}") is not None}


def _check_args(args: argparse.Namespace) -> None:
    if getattr(args, "prompt_channel_copies_from", None) is not None:
        given = [f"--{name}" for name in ("corpus", "dataset_name_or_path") if getattr(args, name, None) is not None]
        if given:
            raise DatasetPreparationError(
                f"--prompt_channel_copies_from derives from a prepared folder and reads no audio: drop {given}."
            )
        _check_channel_options(args.prompt_channel_speaker_pattern, args.prompt_channel_max_frame_difference)
        return
    recipe = CORPUS_RECIPES.get(args.corpus, {}) if getattr(args, "corpus", None) else {}
    for name in ("dataset_name_or_path", "dataset_config_name", "data_files", "split", "audio_column", "text_column"):
        if getattr(args, name, None) is None:
            setattr(args, name, recipe.get(name, _GENERIC_DEFAULTS.get(name)))
    if args.speaker_column is None:
        args.speaker_column = recipe.get("speaker_column")
    if args.dataset_name_or_path is None:
        raise DatasetPreparationError("Give --dataset_name_or_path (or --corpus).")
    if args.codec is not None and args.codec_name_or_path is not None:
        raise DatasetPreparationError("Give either --codec or --codec_name_or_path, not both.")
    if args.reuse_latent_statistics and args.codec_name_or_path is None:
        raise DatasetPreparationError("--reuse_latent_statistics needs a trained codec from --codec_name_or_path.")
    for name in ("sigma_data", "min_seconds", "max_seconds", "silence_rms", "max_seconds_per_phoneme", "f0_min"):
        if getattr(args, name) <= 0:
            raise DatasetPreparationError(f"--{name} must be positive, got {getattr(args, name)}.")
    if args.min_seconds >= args.max_seconds:
        raise DatasetPreparationError("--min_seconds must be smaller than --max_seconds.")
    if args.f0_min >= args.f0_max:
        raise DatasetPreparationError("--f0_min must be smaller than --f0_max.")
    if args.max_samples is not None and args.max_samples < 1:
        raise DatasetPreparationError(f"--max_samples must be positive, got {args.max_samples}.")
    if args.num_proc is not None and args.num_proc < 1:
        raise DatasetPreparationError(f"--num_proc must be positive, got {args.num_proc}.")
    if args.num_proc is not None and args.num_proc > 1 and args.device is not None and args.device.startswith("cuda"):
        raise DatasetPreparationError(
            "--num_proc > 1 featurizes in CPU worker processes: use it with --device cpu (on GPUs, launch one "
            "process per GPU with torchrun or accelerate launch instead)."
        )
    if args.aligner_steps < 0 or args.batch_size < 1 or args.shard_size < 1:
        raise DatasetPreparationError("--aligner_steps must be >= 0, --batch_size and --shard_size >= 1.")
    if args.aligner_name_or_path is not None:
        if args.durations_column is not None:
            raise DatasetPreparationError("--aligner_name_or_path and --durations_column exclude each other.")
        if not args.reuse_latent_statistics:
            raise DatasetPreparationError(
                "--aligner_name_or_path needs --reuse_latent_statistics (and that pipeline's codec as "
                "--codec_name_or_path): the pretrained aligner reads latents normalized with its codec's statistics."
            )
        given = [f"--aligner_{k}" for k in _aligner_size_flags(args)]
        if given:
            raise DatasetPreparationError(f"{', '.join(given)} cannot resize the aligner of --aligner_name_or_path.")
    elif args.aligner_steps == 0 and args.durations_column is None:
        raise DatasetPreparationError(
            "--aligner_steps 0 trains no aligner: pass --aligner_name_or_path or --durations_column for the durations."
        )


# ----------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------

_FILE_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json"}


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def load_source_dataset(args: argparse.Namespace, cache_dir: str) -> tuple[Dataset | IterableDataset, str | None]:
    """
    Loads the split to prepare, limited to `--max_samples`.

    Returns:
        `(dataset, base_dir)`: a `Dataset` (or an `IterableDataset` with `--streaming`), and the folder that relative
        audio paths are resolved against (`None` for Hub datasets).
    """
    try:
        return _load_source_dataset(args, cache_dir)
    except DatasetPreparationError:
        raise
    except (OSError, ValueError) as err:  # datasets' "not found" errors are OSErrors
        if "corresponds to no data" in str(err):  # datasets' words for a split without rows
            raise DatasetPreparationError(
                f"The dataset {args.dataset_name_or_path} ({args.split}) is empty: {err}"
            ) from err
        raise DatasetPreparationError(
            f"Could not load --dataset_name_or_path {args.dataset_name_or_path!r} (split {args.split!r}): {err}"
        ) from err


def _load_source_dataset(args: argparse.Namespace, cache_dir: str) -> tuple[Dataset | IterableDataset, str | None]:
    name = args.dataset_name_or_path
    path = Path(name)
    base_dir = None
    if path.exists():
        base_dir = str(path if path.is_dir() else path.parent)
        if path.is_dir() and _is_saved_dataset(path):
            dataset = load_from_disk(str(path))
            if isinstance(dataset, datasets.DatasetDict):
                if args.split not in dataset:
                    raise DatasetPreparationError(
                        f"{name} has no split {args.split!r}; it has {sorted(dataset)}. Pass --split."
                    )
                dataset = dataset[args.split]
            if args.streaming:
                dataset = dataset.to_iterable_dataset()
        else:
            kwargs: dict[str, Any] = {"split": args.split, "streaming": args.streaming}
            if not args.streaming:
                kwargs["cache_dir"] = cache_dir
            if path.is_dir():
                if args.data_files is not None:  # a local copy of a Hub repository: its files, as on the Hub
                    kwargs["data_files"] = args.data_files
                dataset = load_dataset(str(path), **kwargs)  # the builder (audiofolder, csv, ...) is inferred
            else:
                builder = _FILE_BUILDERS.get(path.suffix.lower())
                if builder is None:
                    raise DatasetPreparationError(
                        f"Cannot read {name}: expected a folder or a file ending in {sorted(_FILE_BUILDERS)}."
                    )
                if path.suffix.lower() == ".tsv":
                    kwargs["sep"] = "\t"
                dataset = load_dataset(builder, data_files={args.split.split("[")[0]: str(path)}, **kwargs)
    else:
        kwargs = {"split": args.split, "streaming": args.streaming}
        if not args.streaming:
            kwargs["cache_dir"] = cache_dir
        if args.data_files is not None:
            kwargs["data_files"] = args.data_files
        dataset = load_dataset(name, args.dataset_config_name, **kwargs)

    if args.max_samples is not None:
        if isinstance(dataset, IterableDataset):
            dataset = dataset.take(args.max_samples)
        else:
            dataset = dataset.select(range(min(args.max_samples, len(dataset))))
    return dataset, base_dir


def check_source_dataset(dataset: Dataset | IterableDataset, args: argparse.Namespace) -> Dataset | IterableDataset:
    """
    Checks that the dataset is not empty and has the named columns; switches its audio column to `decode=False`.
    """
    if isinstance(dataset, IterableDataset):
        try:
            first = next(iter(dataset))
        except StopIteration:
            raise DatasetPreparationError(
                f"The dataset {args.dataset_name_or_path} ({args.split}) is empty."
            ) from None
        columns = list(dataset.column_names or first.keys())
    else:
        if len(dataset) == 0:
            raise DatasetPreparationError(f"The dataset {args.dataset_name_or_path} ({args.split}) is empty.")
        columns = dataset.column_names
    for option in ("audio_column", "text_column", "speaker_column", "durations_column"):
        column = getattr(args, option)
        if column is not None and column not in columns and column.split(".")[0] not in columns:
            raise DatasetPreparationError(
                f"The dataset has no column {column!r} (--{option}); its columns are {columns}."
            )
    features = dataset.features
    if features is not None and isinstance(features.get(args.audio_column), Audio):
        dataset = dataset.cast_column(args.audio_column, Audio(decode=False))
    return dataset


# ----------------------------------------------------------------------------------------------------------------
# Components
# ----------------------------------------------------------------------------------------------------------------


def build_codec(args: argparse.Namespace):
    """The codec of `--codec_name_or_path`, or a MelCodec of `--pipeline_config` (seeded, so re-runs agree)."""
    if args.codec_name_or_path is not None:
        try:
            return load_codec(args.codec_name_or_path)
        except (OSError, ValueError) as err:
            raise DatasetPreparationError(f"Could not load --codec_name_or_path: {err}") from err
    config = get_pipeline_config(args.pipeline_config)["codec"]
    class_name = config.pop("class_name")
    if class_name != MelCodec.__name__:
        logger.info(
            f"The {args.pipeline_config!r} config's codec ({class_name}) needs trained weights: using a MelCodec "
            "with its default sizes. Pass --codec_name_or_path for a trained EnCodec or DAC."
        )
        config = {}
    torch.manual_seed(args.seed)  # the vocoder's initial weights: same seed, same codec (and cache fingerprint)
    return MelCodec(**config).eval()


def build_tokenizer(args: argparse.Namespace) -> FlashSpeechTokenizer:
    if args.tokenizer_name_or_path is not None:
        try:
            return FlashSpeechTokenizer.from_pretrained(args.tokenizer_name_or_path)
        except (OSError, ValueError) as err:
            raise DatasetPreparationError(f"Could not load --tokenizer_name_or_path: {err}") from err
    try:
        return FlashSpeechTokenizer(language=args.language)
    except ValueError as err:
        raise DatasetPreparationError(f"Bad --language: {err}") from err


def _module_digest(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _tokenizer_digest(tokenizer: FlashSpeechTokenizer) -> str:
    state = {
        "vocab": sorted(tokenizer.get_vocab().items()),
        "language": tokenizer.language,
        "with_stress": tokenizer.with_stress,
        "normalize": tokenizer.normalize,
        "word_boundary": tokenizer.word_boundary,
    }
    return Hasher.hash(json.dumps(state, ensure_ascii=False))


def _fingerprint(*parts: Any) -> str:
    return Hasher.hash(json.dumps([FORMAT_VERSION, *parts], sort_keys=True, default=str))


def _local_files_digest(path: Path) -> list:
    """Names, sizes and modification times of the files under `path` (a streamed local dataset's identity)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [
        (str(p.relative_to(path) if path.is_dir() else p.name), p.stat().st_size, p.stat().st_mtime_ns) for p in files
    ]


# ----------------------------------------------------------------------------------------------------------------
# Per-example processing
# ----------------------------------------------------------------------------------------------------------------


def interpolate_unvoiced(f0: np.ndarray) -> np.ndarray | None:
    """
    `ln F0` with unvoiced frames (F0 = 0) filled by linear interpolation of the voiced `ln F0`, held constant before
    the first and after the last voiced frame.

    Args:
        f0 (`np.ndarray` of shape `(num_frames,)`): F0 in Hz, 0 on unvoiced frames.

    Returns:
        `np.ndarray` of shape `(num_frames,)` (float32), or `None` when no frame is voiced.
    """
    f0 = np.asarray(f0, dtype=np.float64)
    voiced = np.flatnonzero(f0 > 0)
    if voiced.size == 0:
        return None
    return np.interp(np.arange(len(f0)), voiced, np.log(f0[voiced])).astype(np.float32)


def extract_log_pitch(
    waveform: np.ndarray,
    sampling_rate: int,
    hop_length: int,
    num_frames: int,
    algorithm: str = "dio",
    f0_min: float = 50.0,
    f0_max: float = 1100.0,
) -> np.ndarray | None:
    """
    Frame-level `ln F0` with PyWorld, one value per latent frame (frame `i` is measured at sample `i * hop_length`).

    Args:
        waveform (`np.ndarray` of shape `(num_samples,)`): Mono audio at `sampling_rate`.
        sampling_rate (`int`): Its sample rate in Hz.
        hop_length (`int`): Samples per latent frame.
        num_frames (`int`): Number of latent frames.
        algorithm (`str`): `"dio"` (with StoneMask refinement; fast) or `"harvest"` (slower, fewer voicing errors).
        f0_min (`float`): Lowest F0 in Hz.
        f0_max (`float`): Highest F0 in Hz.

    Returns:
        `np.ndarray` of shape `(num_frames,)` (float32) with unvoiced frames interpolated, or `None` when no frame is
        voiced.
    """
    with warnings.catch_warnings():  # pyworld imports pkg_resources, which warns
        warnings.simplefilter("ignore")
        import pyworld

    audio = np.zeros(num_frames * hop_length, dtype=np.float64)
    length = min(len(waveform), len(audio))
    audio[:length] = waveform[:length]
    frame_period = 1000.0 * hop_length / sampling_rate
    if algorithm == "dio":
        f0, times = pyworld.dio(audio, sampling_rate, f0_floor=f0_min, f0_ceil=f0_max, frame_period=frame_period)
        f0 = pyworld.stonemask(audio, f0, times, sampling_rate)
    elif algorithm == "harvest":
        f0, _ = pyworld.harvest(audio, sampling_rate, f0_floor=f0_min, f0_ceil=f0_max, frame_period=frame_period)
    else:
        raise ValueError(f"Unknown pitch algorithm {algorithm!r}; use 'dio' or 'harvest'.")
    f0 = np.pad(f0[:num_frames], (0, max(0, num_frames - len(f0))))
    return interpolate_unvoiced(f0)


def decode_audio(value: Any, target_sampling_rate: int, base_dir: str | None = None) -> torch.Tensor:
    """
    Decodes one audio value of a dataset with soundfile, as mono float32 at `target_sampling_rate`.

    Args:
        value: An undecoded `Audio` value (`{"bytes", "path"}`), a decoded one (`{"array", "sampling_rate"}`) or a
            file path (relative paths are resolved against `base_dir`).
        target_sampling_rate (`int`): Output sample rate.
        base_dir (`str`, *optional*): Folder of relative paths.

    Returns:
        `torch.Tensor` of shape `(num_samples,)`.
    """
    if value is None:
        raise ValueError("the audio value is missing")
    if isinstance(value, (str, os.PathLike)):
        value = {"path": os.fspath(value), "bytes": None}
    if isinstance(value, dict) and value.get("bytes") is not None:
        array, rate = sf.read(io.BytesIO(value["bytes"]), dtype="float32", always_2d=True)
        waveform, _ = load_audio(array.mean(axis=1), rate, target_sampling_rate)
        return waveform
    if isinstance(value, dict) and value.get("path"):
        path = value["path"]
        if base_dir is not None and not os.path.isabs(path) and not os.path.exists(path):
            path = os.path.join(base_dir, path)
        waveform, _ = load_audio(path, target_sampling_rate=target_sampling_rate)
        return waveform
    try:  # a decoded value (dict or torchcodec AudioDecoder)
        array, rate = value["array"], value["sampling_rate"]
    except (KeyError, TypeError, IndexError):
        raise ValueError(f"cannot read an audio value of type {type(value).__name__}") from None
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 2:
        array = array.mean(axis=0 if array.shape[0] < array.shape[1] else 1)
    waveform, _ = load_audio(array, int(rate), target_sampling_rate)
    return waveform


def column_values(batch: dict[str, list], name: str) -> list[Any]:
    """
    The values of column `name` in a batch (dict of lists); `a.b` is field `b` of the dicts in column `a` (None where
    a row lacks it), as in Emilia's `json` column.
    """
    if name in batch:
        return batch[name]
    head, _, field = name.partition(".")
    values = batch[head]
    for key in field.split("."):
        values = [value.get(key) if isinstance(value, dict) else None for value in values]
    return values


class Featurizer:
    """
    The batched `map` function of step 1: audio, text (and durations) -> phoneme ids, raw latents, `ln F0`.

    Every example yields one row; an example that cannot be used gets an empty row with `skip_reason` and
    `skip_detail` set, so a bad example never stops the run.
    """

    def __init__(self, codec, tokenizer: FlashSpeechTokenizer, args: argparse.Namespace, base_dir: str | None):
        self.codec = codec
        self.tokenizer = tokenizer
        self.base_dir = base_dir
        self.audio_column = args.audio_column
        self.text_column = args.text_column
        self.speaker_column = args.speaker_column
        self.durations_column = args.durations_column
        self.min_seconds = args.min_seconds
        self.max_seconds = args.max_seconds
        self.silence_rms = args.silence_rms
        self.max_seconds_per_phoneme = args.max_seconds_per_phoneme
        self.pitch_algorithm = args.pitch_algorithm
        self.f0_min = args.f0_min
        self.f0_max = args.f0_max

    def features(self) -> Features:
        features = {
            "index": Value("int64"),
            "input_ids": List(Value("int32")),
            "raw_latents": Array2D(shape=(None, self.codec.latent_dim), dtype="float32"),
            "log_pitch": List(Value("float32")),
            "text": Value("string"),
            "speaker_id": Value("string"),
            "num_frames": Value("int64"),
            "skip_reason": Value("string"),
            "skip_detail": Value("string"),
        }
        if self.durations_column is not None:
            features["durations"] = List(Value("int32"))
        return Features(features)

    def _phonemize(self, texts: list[Any]) -> list[list[int] | _Skip]:
        results: list[list[int] | _Skip | None] = [None] * len(texts)
        valid = []
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                results[i] = _Skip("empty_text", f"text is {text!r}")
            else:
                valid.append(i)
        if valid:
            try:  # one espeak-ng call for the whole batch
                ids = self.tokenizer([texts[i] for i in valid])["input_ids"]
                for i, item in zip(valid, ids):
                    results[i] = item
            except ValueError:  # find the text(s) that failed
                for i in valid:
                    try:
                        results[i] = self.tokenizer(texts[i])["input_ids"]
                    except ValueError as err:
                        results[i] = _Skip("empty_text", str(err))
        return results

    def _process(self, audio: Any, input_ids: list[int], durations: Any) -> dict[str, Any]:
        codec = self.codec
        try:
            waveform = decode_audio(audio, codec.sampling_rate, self.base_dir)
        except Exception as err:  # soundfile and friends raise many types on corrupt files
            raise _Skip("unreadable_audio", str(err)) from None
        seconds = waveform.shape[0] / codec.sampling_rate
        if seconds < self.min_seconds:
            raise _Skip("too_short", f"{seconds:.2f} s < --min_seconds {self.min_seconds}")
        if seconds > self.max_seconds:
            raise _Skip("too_long", f"{seconds:.2f} s > --max_seconds {self.max_seconds}")
        try:
            check_speech(waveform, codec.sampling_rate, min_seconds=0.0, silence_rms=self.silence_rms)
        except ValueError as err:
            raise _Skip("silent", str(err)) from None

        num_frames = codec.num_frames(waveform.shape[0])
        num_phonemes = len(input_ids)
        if num_phonemes > num_frames:
            raise _Skip("text_mismatch", f"{num_phonemes} phonemes for {num_frames} latent frames")
        if seconds / num_phonemes > self.max_seconds_per_phoneme:
            raise _Skip(
                "text_mismatch",
                f"{seconds:.2f} s for {num_phonemes} phonemes (> --max_seconds_per_phoneme {self.max_seconds_per_phoneme})",
            )
        if self.durations_column is not None:
            durations = self._check_durations(durations, num_phonemes, num_frames)

        log_pitch = extract_log_pitch(
            waveform.double().numpy(),
            codec.sampling_rate,
            codec.hop_length,
            num_frames,
            self.pitch_algorithm,
            self.f0_min,
            self.f0_max,
        )
        if log_pitch is None:
            raise _Skip("unvoiced", "no voiced frame found by PyWorld")
        with torch.no_grad():
            latents = codec.encode(waveform[None].to(codec.device), normalize=False)[0]  # (C, F)
        row = {
            "input_ids": list(input_ids),
            "raw_latents": latents.T.float().cpu().numpy(),
            "log_pitch": log_pitch,
            "num_frames": num_frames,
        }
        if self.durations_column is not None:
            row["durations"] = durations
        return row

    @staticmethod
    def _check_durations(durations: Any, num_phonemes: int, num_frames: int) -> list[int]:
        try:
            values = np.asarray(durations, dtype=np.float64)
        except (TypeError, ValueError):
            values = None
        if values is None or values.ndim != 1 or not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise _Skip("invalid_durations", f"not a list of integers: {str(durations)[:80]}")
        if len(values) != num_phonemes:
            raise _Skip("invalid_durations", f"{len(values)} durations for {num_phonemes} phonemes")
        if np.any(values < 0):
            raise _Skip("invalid_durations", "negative durations")
        if int(values.sum()) != num_frames:
            raise _Skip(
                "invalid_durations", f"durations sum to {int(values.sum())}, the audio has {num_frames} frames"
            )
        return values.astype(np.int64).tolist()

    def __call__(self, batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        size = len(indices)
        texts = column_values(batch, self.text_column)
        speakers = column_values(batch, self.speaker_column) if self.speaker_column else [None] * size
        durations = column_values(batch, self.durations_column) if self.durations_column else [None] * size
        audios = column_values(batch, self.audio_column)
        phonemes = self._phonemize(texts)
        columns = list(self.features())
        out: dict[str, list] = {column: [] for column in columns}
        for i in range(size):
            row = {"index": indices[i], "skip_reason": "", "skip_detail": ""}
            row["text"] = texts[i] if isinstance(texts[i], str) else ""
            row["speaker_id"] = "" if speakers[i] is None else str(speakers[i])
            try:
                if isinstance(phonemes[i], _Skip):
                    raise phonemes[i]
                row.update(self._process(audios[i], phonemes[i], durations[i]))
            except _Skip as skip:
                row.update(skip_reason=skip.reason, skip_detail=skip.detail)
            except Exception as err:  # never let one example stop the run
                row.update(skip_reason="processing_error", skip_detail=f"{type(err).__name__}: {err}")
            if row["skip_reason"]:
                row.update(
                    input_ids=[],
                    raw_latents=np.zeros((0, self.codec.latent_dim), np.float32),
                    log_pitch=np.zeros(0, np.float32),
                    num_frames=0,
                    durations=[],
                )
            for column in columns:
                out[column].append(row[column])
        return out


# ----------------------------------------------------------------------------------------------------------------
# Steps
# ----------------------------------------------------------------------------------------------------------------


def process_rank() -> tuple[int, int, int]:
    """
    `(rank, world_size, local_rank)` of this process under `torchrun` or `accelerate launch` (which set `RANK`,
    `WORLD_SIZE` and `LOCAL_RANK`), `(0, 1, 0)` when run alone. No process group is needed: the processes share their
    work through the files of the cache folder.
    """
    return (
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def _shard_path(shard_dir: Path, shard: int) -> Path:
    return shard_dir / f"shard-{shard:06d}.arrow"


def _write_shard(featurizer: Featurizer, batches: Iterator[tuple[dict[str, list], list[int]]], path: Path) -> None:
    """Featurizes `batches` of `(columns, indices)` into the Arrow file `path`, written aside and renamed into place."""
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        writer = ArrowWriter(features=featurizer.features(), path=str(tmp))
        try:
            for batch, indices in batches:
                writer.write_batch(featurizer(batch, indices))
            writer.finalize()
        finally:
            writer.close()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _stream_batches(
    examples: Iterator[tuple[int, dict[str, Any]]], batch_size: int
) -> Iterator[tuple[dict[str, list], list[int]]]:
    """Groups `(index, example)` pairs into `(columns, indices)` batches of at most `batch_size`."""
    while chunk := list(itertools.islice(examples, batch_size)):
        yield {key: [example[key] for _, example in chunk] for key in chunk[0][1]}, [index for index, _ in chunk]


def featurize_shards(
    dataset: Dataset | IterableDataset,
    featurizer: Featurizer,
    shard_dir: str | os.PathLike,
    shard_size: int,
    batch_size: int,
    worker: int,
    num_workers: int,
    num_threads: int | None = None,
) -> int:
    """
    Step 1 for one worker: featurizes the shards `i` with `i % num_workers == worker` that are not on disk yet.

    Shard `i` holds examples `[i * shard_size, (i + 1) * shard_size)` of `dataset`, one row per example, in the Arrow
    file `shard_dir/shard-{i:06d}.arrow`, written atomically: a killed run leaves only whole shards, and a re-run skips
    them. A streamed dataset is read to its end by every worker (undecoded audio: only its own examples are decoded).

    Args:
        dataset (`Dataset` or `IterableDataset`): The checked source (audio column undecoded).
        featurizer ([`Featurizer`]): The map function.
        shard_dir (`str` or `os.PathLike`): Folder of the shard files.
        shard_size (`int`): Examples per shard.
        batch_size (`int`): Examples per featurizer call.
        worker (`int`), num_workers (`int`): This worker's index and the number of workers of the run (all processes).
        num_threads (`int`, *optional*): torch threads of this worker (set in worker processes).

    Returns:
        `int`: The number of examples in `dataset`.
    """
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    shard_dir = Path(shard_dir)

    def todo(shard: int) -> bool:
        return shard % num_workers == worker and not _shard_path(shard_dir, shard).is_file()

    if not isinstance(dataset, IterableDataset):
        for shard in range(math.ceil(len(dataset) / shard_size)):
            if todo(shard):
                start, stop = shard * shard_size, min((shard + 1) * shard_size, len(dataset))
                batches = (
                    (dataset[i : min(i + batch_size, stop)], list(range(i, min(i + batch_size, stop))))
                    for i in range(start, stop, batch_size)
                )
                _write_shard(featurizer, batches, _shard_path(shard_dir, shard))
        return len(dataset)

    count = 0

    def numbered() -> Iterator[tuple[int, dict[str, Any]]]:
        nonlocal count
        for index, example in enumerate(dataset):
            count = index + 1
            yield index, example

    for shard, group in itertools.groupby(numbered(), key=lambda item: item[0] // shard_size):
        if todo(shard):  # the other shards' examples are read past, undecoded
            _write_shard(featurizer, _stream_batches(group, batch_size), _shard_path(shard_dir, shard))
    return count


def featurize(
    dataset: Dataset | IterableDataset,
    featurizer: Featurizer,
    fingerprint: str,
    cache_dir: str,
    args: argparse.Namespace,
) -> tuple[Dataset | None, bool]:
    """
    Step 1: one row per example (kept or skipped), in shards cached under `cache_dir/features-<fingerprint>-<size>/`.

    The shards are split across the processes of a `torchrun` / `accelerate launch` and, within each, across
    `--num_proc` spawned worker processes (spawned, not forked: a fork after torch has started its thread pool hangs).
    The main process waits for every shard, then reads them as one dataset; the other processes return `None`.

    Returns:
        `(dataset, reused)`: the featurized rows in example order (`None` on other processes than the main one), and
        whether every shard was on disk before this run.
    """
    shard_dir = Path(cache_dir) / f"features-{fingerprint}-{args.shard_size}"
    shard_dir.mkdir(parents=True, exist_ok=True)
    rank, world_size, _ = process_rank()
    num_proc = args.num_proc or 1
    num_workers = world_size * num_proc
    before = {path.name for path in shard_dir.glob("shard-*.arrow")}
    common = {"shard_dir": str(shard_dir), "shard_size": args.shard_size, "batch_size": args.batch_size}
    if num_proc == 1:
        num_examples = featurize_shards(dataset, featurizer, worker=rank, num_workers=num_workers, **common)
    else:
        threads = max(1, torch.get_num_threads() // num_proc)
        featurizer.codec.to("cpu")  # the workers run on the CPU
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(num_proc, mp_context=context) as pool:
            jobs = [
                pool.submit(
                    featurize_shards,
                    dataset,
                    featurizer,
                    worker=rank * num_proc + j,
                    num_workers=num_workers,
                    num_threads=threads,
                    **common,
                )
                for j in range(num_proc)
            ]
            num_examples = max(job.result() for job in jobs)
    if rank != 0:
        return None, False
    paths = [_shard_path(shard_dir, shard) for shard in range(math.ceil(num_examples / args.shard_size))]
    waited = time.monotonic()
    while missing := [path for path in paths if not path.is_file()]:
        if time.monotonic() - waited > 60:
            logger.info(f"Waiting for the other processes: {len(missing)} of {len(paths)} shards to go.")
            waited = time.monotonic()
        time.sleep(1.0)
    for stale in shard_dir.glob(".shard-*.tmp-*"):  # left by a killed run
        stale.unlink(missing_ok=True)
    reused = all(path.name in before for path in paths)
    return concatenate_datasets([Dataset.from_file(str(path)) for path in paths]), reused


def _kept_rows(dataset: Dataset, cache_dir: str, features_fingerprint: str) -> Dataset:
    fingerprint = _fingerprint("kept", features_fingerprint)
    return dataset.filter(
        lambda reasons: [reason == "" for reason in reasons],
        input_columns=["skip_reason"],
        batched=True,
        batch_size=1000,
        cache_file_name=os.path.join(cache_dir, f"kept-{fingerprint}.arrow"),
        new_fingerprint=fingerprint,
        desc="Selecting kept examples",
    )


def latent_statistics(dataset: Dataset, sigma_data: float, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean, and std / sigma_data, of the raw latents of `dataset` (so normalized latents have std
    `sigma_data`)."""

    def chunks():
        for batch in dataset.select_columns(["raw_latents"]).with_format("numpy").iter(batch_size=batch_size):
            yield torch.from_numpy(np.concatenate(list(batch["raw_latents"]), axis=0).T.copy())

    mean, std = compute_latent_statistics(chunks())
    return mean, std / sigma_data


class _NormalizedRows(torch.utils.data.Dataset):
    """Rows of the kept dataset with normalized latents, for the aligner."""

    def __init__(self, dataset: Dataset, codec):
        self.dataset = dataset.select_columns(["input_ids", "raw_latents"]).with_format("numpy")
        self.mean = codec.latent_mean.cpu().numpy()
        self.std = codec.latent_std.cpu().numpy()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.dataset[int(index)]
        return {"input_ids": row["input_ids"], "latents": (row["raw_latents"] - self.mean) / self.std}


def silent_token_ids(tokenizer: FlashSpeechTokenizer) -> list[int]:
    """Ids of the tokens without a sound of their own: the word boundary and the stress marks."""
    vocab = tokenizer.get_vocab()
    return sorted({tokenizer.word_boundary_id} | {vocab[m] for m in STRESS_MARKS if m in vocab})


def load_pretrained_aligner(
    name_or_path: str, tokenizer: FlashSpeechTokenizer, latent_dim: int, keep_silent_tokens: bool
) -> FlashSpeechAligner:
    """
    The aligner of `--aligner_name_or_path` (an aligner folder, or a pipeline folder holding `aligner/`), checked
    against this run's tokenizer and codec.

    Raises:
        `DatasetPreparationError`: When it cannot be loaded, or its vocabulary, padding id, latent size or silent
        tokens differ from this run's.
    """
    path = Path(name_or_path)
    subfolder = "aligner" if (path / "aligner" / "config.json").is_file() else None
    try:
        aligner = FlashSpeechAligner.from_pretrained(name_or_path, subfolder=subfolder)
    except (OSError, ValueError) as err:
        raise DatasetPreparationError(f"Could not load --aligner_name_or_path {name_or_path!r}: {err}") from err
    config = aligner.config
    expected_silent = [] if keep_silent_tokens else silent_token_ids(tokenizer)
    problems = []
    if config.vocab_size != len(tokenizer) or config.pad_token_id != tokenizer.pad_token_id:
        problems.append(
            f"vocabulary {config.vocab_size} tokens (pad {config.pad_token_id}) vs the tokenizer's {len(tokenizer)} "
            f"(pad {tokenizer.pad_token_id})"
        )
    if config.latent_dim != latent_dim:
        problems.append(f"latent_dim {config.latent_dim} vs the codec's {latent_dim}")
    if sorted(config.silent_token_ids or []) != expected_silent:
        problems.append(
            f"silent tokens {sorted(config.silent_token_ids or [])} vs {expected_silent} "
            "(--aligner_keep_silent_tokens must match how it was trained)"
        )
    if problems:
        raise DatasetPreparationError(
            f"--aligner_name_or_path {name_or_path!r} does not fit this run: " + "; ".join(problems) + "."
        )
    return aligner


def train_aligner(
    dataset: Dataset,
    codec,
    tokenizer: FlashSpeechTokenizer,
    args: argparse.Namespace,
    device: torch.device,
    aligner: FlashSpeechAligner | None = None,
) -> tuple[FlashSpeechAligner, dict[str, Any]]:
    """
    Step 3: trains a [`FlashSpeechAligner`] on the kept examples with the forward-sum loss, adding the binarization
    loss from `--aligner_binarization_start`.

    Args:
        aligner ([`FlashSpeechAligner`], *optional*): A pretrained aligner to train further (`--aligner_steps` more
            steps; none leaves it as it is); a new one of the `--pipeline_config` sizes when omitted.

    Returns:
        The aligner (eval mode) and a log with the mean forward-sum loss of the first and last tenth of the steps.
    """
    if aligner is not None:
        return _fit_aligner(aligner.to(device), dataset, codec, tokenizer, args, device, pretrained=True)
    sizes = dict(get_pipeline_config(args.pipeline_config).get("aligner", {}))
    sizes.update(_aligner_size_flags(args))
    if not args.aligner_keep_silent_tokens:
        sizes["silent_token_ids"] = silent_token_ids(tokenizer)
    torch.manual_seed(args.seed)
    aligner = FlashSpeechAligner(
        vocab_size=len(tokenizer), latent_dim=codec.latent_dim, pad_token_id=tokenizer.pad_token_id, **sizes
    ).to(device)
    return _fit_aligner(aligner, dataset, codec, tokenizer, args, device)


def _fit_aligner(
    aligner, dataset, codec, tokenizer, args, device, pretrained: bool = False
) -> tuple[FlashSpeechAligner, dict[str, Any]]:
    optimizer = torch.optim.AdamW(aligner.parameters(), lr=args.aligner_learning_rate)
    rows = _NormalizedRows(dataset, codec)
    sampler = FrameBudgetBatchSampler(dataset["num_frames"], args.aligner_max_frames_per_batch, seed=args.seed)
    binarization_start = args.aligner_binarization_start
    if binarization_start is None:  # a pretrained aligner already aligns sharply: keep it binarized from the start
        binarization_start = 0 if pretrained else args.aligner_steps // 2
    losses: list[float] = []
    step, epoch = 0, 0
    aligner.train()
    while step < args.aligner_steps:
        sampler.set_epoch(epoch)
        for indices in sampler:
            if step >= args.aligner_steps:
                break
            batch = collate_prepared([rows[i] for i in indices], tokenizer.pad_token_id)
            input_ids, text_mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            if aligner.config.silent_token_ids:
                input_ids, text_mask, _ = aligner.remove_silent_tokens(input_ids, text_mask)
            latents, latent_mask = batch["latents"].to(device), batch["latent_mask"].to(device)
            log_soft = aligner(input_ids, text_mask, latents, latent_mask).log_soft_alignment
            loss = forward_sum_loss(log_soft, text_mask.sum(1), latent_mask.sum(1))
            losses.append(loss.item())
            if step >= binarization_start:
                hard = monotonic_alignment_search(log_soft.detach(), text_mask, latent_mask)
                loss = loss + args.aligner_binarization_weight * binarization_loss(hard, log_soft)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(aligner.parameters(), 1.0)
            optimizer.step()
            step += 1
        epoch += 1
    aligner.eval()
    tenth = max(1, len(losses) // 10)
    log = {
        "steps": step,
        "forward_sum_loss_first": float(np.mean(losses[:tenth])) if losses else None,
        "forward_sum_loss_last": float(np.mean(losses[-tenth:])) if losses else None,
        "binarization_start": binarization_start,
    }
    return aligner, log


class Finalizer:
    """The batched `map` function of step 4: normalized latents and (aligner) durations, in the output format."""

    def __init__(self, codec, aligner: FlashSpeechAligner | None, pad_token_id: int, device: torch.device):
        self.mean = codec.latent_mean.cpu().numpy()
        self.std = codec.latent_std.cpu().numpy()
        self.aligner = aligner
        self.pad_token_id = pad_token_id
        self.device = device

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        latents = [((np.asarray(x) - self.mean) / self.std).astype(np.float32) for x in batch["raw_latents"]]
        out = {"latents": latents}
        if self.aligner is not None:
            rows = [{"input_ids": ids, "latents": x} for ids, x in zip(batch["input_ids"], latents)]
            padded = collate_prepared(rows, self.pad_token_id)
            durations = self.aligner.durations(
                padded["input_ids"].to(self.device),
                padded["attention_mask"].to(self.device),
                padded["latents"].to(self.device),
                padded["latent_mask"].to(self.device),
            ).cpu()
            out["durations"] = [d[: len(ids)].tolist() for d, ids in zip(durations, batch["input_ids"])]
        return out


# ----------------------------------------------------------------------------------------------------------------
# Output folder
# ----------------------------------------------------------------------------------------------------------------


def _check_output_dir(output_dir: Path, overwrite: bool) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise DatasetPreparationError(f"--output_dir {output_dir} exists and is not a folder.")
    if output_dir.is_dir() and not overwrite:
        unknown = sorted(p.name for p in output_dir.iterdir() if p.name not in _OUTPUT_ENTRIES)
        if unknown:
            raise DatasetPreparationError(
                f"--output_dir {output_dir} holds files that are not from an earlier run ({unknown[:5]}); it would "
                "be replaced. Choose another folder or pass --overwrite_output_dir."
            )


def _publish(staging: Path, output_dir: Path, cache_dir: Path | None) -> None:
    """Moves the finished `staging` folder to `output_dir`, carrying over a cache that lives inside `output_dir`."""
    if not output_dir.exists():
        os.replace(staging, output_dir)
        return
    try:
        relative = None if cache_dir is None else cache_dir.resolve().relative_to(output_dir.resolve())
    except ValueError:
        relative = None
    if relative is not None and cache_dir.exists():
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        os.replace(cache_dir, staging / relative)
    old = output_dir.parent / f".{output_dir.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(output_dir, old)
    os.replace(staging, output_dir)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _staged_output(output_dir: Path, cache_dir: Path | None = None) -> Iterator[Path]:
    """
    Writes a prepared folder atomically: yields a new hidden staging folder next to `output_dir` to fill, which
    replaces `output_dir` (see [`_publish`], which keeps a cache inside it) when the block ends without an error, and
    is deleted otherwise; a reader never sees a half-written `output_dir`.
    """
    staging = output_dir.parent / f".{output_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir(parents=True)
        yield staging
        _publish(staging, output_dir, cache_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------------
# Prompt-only channel augmentation (derived from a prepared folder)
# ----------------------------------------------------------------------------------------------------------------


def _check_channel_options(speaker_pattern: str, max_frame_difference: int) -> re.Pattern:
    try:
        pattern = re.compile(speaker_pattern)
    except re.error as err:
        raise DatasetPreparationError(
            f"--prompt_channel_speaker_pattern {speaker_pattern!r} is not valid: {err}."
        ) from None
    if pattern.groups < 1:
        raise DatasetPreparationError(
            f"--prompt_channel_speaker_pattern {speaker_pattern!r} needs a group that captures the clean speaker id."
        )
    if max_frame_difference < 0:
        raise DatasetPreparationError(
            f"--prompt_channel_max_frame_difference must be >= 0, got {max_frame_difference}."
        )
    return pattern


def pair_channel_copies(
    speaker_ids: Sequence[str],
    texts: Sequence[str],
    num_frames: Sequence[int],
    speaker_pattern: str = CHANNEL_SPEAKER_PATTERN,
    max_frame_difference: int = 16,
) -> tuple[list[tuple[int, int]], list[dict[str, Any]]]:
    """
    Pairs each channel-copy row of a prepared dataset with its clean row.

    A row whose speaker id matches `speaker_pattern` is a copy; its clean row is an unpaired row of the speaker in the
    pattern's group 1 with the same text (of several, the closest in frame count, then the first). Copies are taken
    in row order, and a clean row gets one copy at most.

    Args:
        speaker_ids (`Sequence[str]`), texts (`Sequence[str]`), num_frames (`Sequence[int]`): The dataset's
            `speaker_id`, `text` and `num_frames` columns (`N` rows).
        speaker_pattern (`str`, defaults to `CHANNEL_SPEAKER_PATTERN`): Regular expression of the copies' speaker
            ids (`re.match`), group 1 the clean speaker id.
        max_frame_difference (`int`, defaults to 16): The most a copy's frame count may differ from its clean row's.

    Returns:
        `(pairs, unmatched)`: `pairs`, `(clean_index, copy_index)` row indices, in the copies' order; `unmatched`, one
        `dict` per copy without a pair: `index`, `speaker_id`, `text`, `reason` (`"no_clean_row"`: no unpaired row of
        the clean speaker with that text; `"length_mismatch"`: the closest one is more than `max_frame_difference`
        frames away) and, for a length mismatch, `clean_index` and `frame_difference` (copy minus clean frames).

    Examples:

    ```py
    >>> from prepare_dataset import pair_channel_copies

    >>> pair_channel_copies(["a", "a_ch0", "b_ch1"], ["hi", "hi", "yo"], [50, 48, 40])
    ([(0, 1)], [{'index': 2, 'speaker_id': 'b_ch1', 'text': 'yo', 'reason': 'no_clean_row'}])
    ```
    """
    pattern = _check_channel_options(speaker_pattern, max_frame_difference)
    clean: dict[tuple[str, str], list[int]] = defaultdict(list)
    copies: list[tuple[int, str]] = []
    for index, speaker in enumerate(speaker_ids):
        match = pattern.match(speaker)
        if match:
            copies.append((index, match.group(1)))
        else:
            clean[(speaker, texts[index])].append(index)
    taken: set[int] = set()
    pairs: list[tuple[int, int]] = []
    unmatched: list[dict[str, Any]] = []
    for index, base in copies:
        record = {"index": index, "speaker_id": speaker_ids[index], "text": texts[index]}
        candidates = [i for i in clean.get((base, texts[index]), ()) if i not in taken]
        if not candidates:
            unmatched.append({**record, "reason": "no_clean_row"})
            continue
        best = min(candidates, key=lambda i: abs(int(num_frames[i]) - int(num_frames[index])))
        difference = int(num_frames[index]) - int(num_frames[best])
        if abs(difference) > max_frame_difference:
            unmatched.append(
                {**record, "reason": "length_mismatch", "clean_index": best, "frame_difference": difference}
            )
            continue
        taken.add(best)
        pairs.append((best, index))
    return pairs, unmatched


def align_channel_twin(latents: np.ndarray, twin: np.ndarray) -> tuple[np.ndarray, int]:
    """
    Frame-aligns the latents of an utterance's channel copy with those of its clean recording.

    With equal frame counts the copy is taken as it is (offset 0: the channel adds no delay of a frame). Otherwise
    the shorter is a piece of the longer, cut by a different silence trim: the offset is the placement, among those
    where one covers the other, at which the frame-energy envelopes (the mean over latent channels) correlate best
    (reverberation smears the copy's envelope, so the offset may come out a frame or two early). The copy is shifted
    by it, cropped to the clean frames, and padded with its edge frames.

    Args:
        latents (`np.ndarray` of shape `(num_frames, latent_dim)`): The clean row's latents.
        twin (`np.ndarray` of shape `(twin_frames, latent_dim)`): The copy's latents, `twin_frames >= 1`.

    Returns:
        `(aligned, offset)`: `aligned` (`np.ndarray` of shape `(num_frames, latent_dim)`, float32) with
        `aligned[t] = twin[clip(t - offset, 0, twin_frames - 1)]`, and `offset` (`int`), the clean frame at which the
        copy's first frame lies (`0 <= offset <= num_frames - twin_frames` for a shorter copy, the reverse for a
        longer one).
    """
    latents, twin = np.asarray(latents), np.asarray(twin)
    if latents.ndim != 2 or twin.ndim != 2 or twin.shape[1] != latents.shape[1] or len(twin) == 0:
        raise ValueError(
            f"Need latents (num_frames, latent_dim) and a non-empty twin of the same latent_dim, got {latents.shape} "
            f"and {twin.shape}."
        )
    num_frames, twin_frames = len(latents), len(twin)
    difference = num_frames - twin_frames
    offset = 0
    if difference != 0:
        overlap = min(num_frames, twin_frames)
        clean_envelope, twin_envelope = latents.mean(axis=1), twin.mean(axis=1)
        candidates = list(range(min(0, difference), max(0, difference) + 1))
        scores = []
        for candidate in candidates:  # clean frame t + candidate against copy frame t
            a = clean_envelope[max(0, candidate) :][:overlap]
            b = twin_envelope[max(0, -candidate) :][:overlap]
            with np.errstate(divide="ignore", invalid="ignore"):
                score = np.corrcoef(a, b)[0, 1] if overlap > 1 else np.nan
            scores.append(score if np.isfinite(score) else -np.inf)
        if np.isfinite(max(scores)):
            offset = candidates[int(np.argmax(scores))]
    source = np.clip(np.arange(num_frames) - offset, 0, twin_frames - 1)
    return np.ascontiguousarray(twin[source], dtype=np.float32), int(offset)


def add_prompt_channel_copies(
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    speaker_pattern: str = CHANNEL_SPEAKER_PATTERN,
    max_frame_difference: int = 16,
    overwrite_output_dir: bool = False,
    batch_size: int = 16,
) -> dict[str, Any]:
    """
    Writes the prompt-only channel-augmentation variant of a prepared folder.

    The corpus of `input_dir` holds channel-augmented copies of clips (speaker `<speaker>_ch<k>`, same text), which
    train as rows of their own: prompt and target are cut from the same copy, so they carry the same channel and the
    model learns to copy the prompt's channel. Here each copy is paired with its clean row ([`pair_channel_copies`]),
    its latents are frame-aligned with the clean row's ([`align_channel_twin`]) and stored in that row's
    `prompt_channel_latents` column, from which training cuts the prompt while the target stays clean (the model learns
    to ignore the prompt's channel); every copy row, paired or not, is removed. Rows without a copy get an empty
    `prompt_channel_latents` (`(0, latent_dim)`) and train as before.

    The output holds the remaining rows in their order, the `tokenizer/`, `codec/` and `aligner/` folders copied as they
    are, and `prepare_config.json` with the counts of the new rows and a `prompt_channel_copies` record of this step
    (pairs, unmatched copies and why, frame differences, offsets). It is written in a staging folder that replaces
    `output_dir` when complete; `input_dir` is only read (datasets writes no cache file next to it).

    Args:
        input_dir (`str` or `os.PathLike`): A prepared folder (the `--output_dir` of `prepare_dataset.py`).
        output_dir (`str` or `os.PathLike`): Where the new prepared folder goes (not inside `input_dir`).
        speaker_pattern (`str`, defaults to `CHANNEL_SPEAKER_PATTERN`): Regular expression of the copies' speaker ids,
            group 1 the clean speaker id.
        max_frame_difference (`int`, defaults to 16): Pair a copy only when its frame count is within this many
            frames of the clean row's.
        overwrite_output_dir (`bool`, defaults to `False`): Replace an `output_dir` that holds other files than a
            prepared folder's.
        batch_size (`int`, defaults to 16): Rows per write batch.

    Returns:
        `dict`: The content of the new `prepare_config.json`.

    Raises:
        `DatasetPreparationError`: When `input_dir` is not a prepared folder, already has the column, or holds no copy;
        or when `output_dir` cannot be used.

    Examples:

    ```py
    >>> from prepare_dataset import add_prompt_channel_copies

    >>> summary = add_prompt_channel_copies("prepared", "prepared_promptch")  # doctest: +SKIP
    >>> summary["prompt_channel_copies"]["pairs"], summary["prompt_channel_copies"]["unmatched"]  # doctest: +SKIP
    (214, {'length_mismatch': 14})
    ```
    """
    start = time.time()
    input_dir, output_dir = Path(input_dir).absolute(), Path(output_dir).absolute()
    _check_channel_options(speaker_pattern, max_frame_difference)
    if output_dir.resolve() == input_dir.resolve() or input_dir.resolve() in output_dir.resolve().parents:
        raise DatasetPreparationError(f"--output_dir {output_dir} must lie outside --prompt_channel_copies_from.")
    _check_output_dir(output_dir, overwrite_output_dir)
    try:
        prepared = load_prepared_dataset(input_dir, load_codec_weights=False)
    except (OSError, ValueError) as err:
        raise DatasetPreparationError(f"--prompt_channel_copies_from {input_dir}: {err}") from err
    source = prepared.dataset
    if PROMPT_CHANNEL_COLUMN in source.column_names:
        raise DatasetPreparationError(f"{input_dir} already has a `{PROMPT_CHANNEL_COLUMN}` column.")
    latent_dim = int(source.features["latents"].shape[1])
    speaker_ids, texts, num_frames = source["speaker_id"], source["text"], source["num_frames"]
    pairs, unmatched = pair_channel_copies(speaker_ids, texts, num_frames, speaker_pattern, max_frame_difference)
    copy_rows = sorted({copy for _, copy in pairs} | {record["index"] for record in unmatched})
    if not copy_rows:
        raise DatasetPreparationError(
            f"No row of {input_dir} has a speaker id matching {speaker_pattern!r}: there is no channel copy to pair."
        )

    # the aligned copies, (num_frames, latent_dim) each, by clean row (a few hundred: they fit in memory)
    latents = source.select_columns(["latents"]).with_format("numpy")
    twins: dict[int, np.ndarray] = {}
    pair_log = []
    for clean, copy in pairs:
        twins[clean], offset = align_channel_twin(latents[clean]["latents"], latents[copy]["latents"])
        pair_log.append(
            {
                "clean_index": clean,
                "copy_index": copy,
                "speaker_id": speaker_ids[copy],
                "frame_difference": int(num_frames[copy]) - int(num_frames[clean]),
                "offset": offset,
            }
        )
    removed = set(copy_rows)
    keep = [i for i in range(len(source)) if i not in removed]
    empty = np.zeros((0, latent_dim), dtype=np.float32)

    def attach(batch: dict[str, Any], positions: list[int]) -> dict[str, list[np.ndarray]]:
        return {PROMPT_CHANNEL_COLUMN: [twins.get(keep[p], empty) for p in positions]}

    codec_info = prepared.config.get("codec") or {}
    frame_rate = (
        codec_info["sampling_rate"] / codec_info["hop_length"]
        if codec_info.get("sampling_rate") and codec_info.get("hop_length")
        else None
    )
    frames = int(sum(int(num_frames[i]) for i in keep))
    summary = dict(prepared.config)
    summary["counts"] = {
        **(prepared.config.get("counts") or {}),
        "kept": len(keep),
        "frames": frames,
        "seconds": None if frame_rate is None else frames / frame_rate,
    }
    reasons = Counter(record["reason"] for record in unmatched)
    summary["prompt_channel_copies"] = {
        "source_dir": str(input_dir),
        "source_counts": prepared.config.get("counts"),
        "source_rows": len(source),
        "speaker_pattern": speaker_pattern,
        "max_frame_difference": max_frame_difference,
        "copy_rows": len(copy_rows),
        "pairs": len(pairs),
        "unmatched": dict(sorted(reasons.items())),
        "rows": len(keep),
        "rows_with_prompt_channel": len(twins),
        "frame_difference_counts": {
            str(k): v for k, v in sorted(Counter(p["frame_difference"] for p in pair_log).items())
        },
        "offset_counts": {str(k): v for k, v in sorted(Counter(p["offset"] for p in pair_log).items())},
        "unmatched_rows": unmatched,
        "paired_rows": pair_log,
        "seconds_taken": None,
    }

    with _staged_output(output_dir) as staging:
        work = staging / ".work"  # the map's file lives here, never next to the input dataset
        work.mkdir()
        rows = source.select(keep).with_format("numpy")
        rows = rows.map(
            attach,
            with_indices=True,
            batched=True,
            batch_size=batch_size,
            features=prepared_features(latent_dim, prompt_channel=True),
            cache_file_name=str(work / "rows.arrow"),
            new_fingerprint=_fingerprint("prompt_channel", source._fingerprint, pair_log, speaker_pattern),
            desc="Attaching the channel copies",
        )
        rows = rows.with_format(None).select_columns([*PREPARED_COLUMNS, PROMPT_CHANNEL_COLUMN])
        rows.save_to_disk(str(staging / "dataset"))
        del rows
        shutil.rmtree(work)
        for sub in ("tokenizer", "codec", "aligner"):
            if (input_dir / sub).is_dir():
                shutil.copytree(input_dir / sub, staging / sub)
        summary["prompt_channel_copies"]["seconds_taken"] = round(time.time() - start, 2)
        (staging / PREPARE_CONFIG_NAME).write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")

    unmatched_text = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items())) or "none"
    print(
        f"Paired {len(pairs)} of {len(copy_rows)} channel-copy rows with their clean rows (unmatched: "
        f"{unmatched_text}); wrote {len(keep)} rows, {len(twins)} with `{PROMPT_CHANNEL_COLUMN}`, into {output_dir}."
    )
    for record in unmatched[:5]:
        print(f"  row {record['index']} ({record['speaker_id']}, {record['reason']}): {record['text'][:80]}")
    return summary


# ----------------------------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------------------------


def prepare_dataset(args: argparse.Namespace) -> dict[str, Any]:
    """
    Runs the whole preparation (see the module docstring) and writes `args.output_dir`.

    Args:
        args (`argparse.Namespace`): From [`parse_args`].

    Returns:
        `dict`: The content of `prepare_config.json`: `args`, `counts` (`examples`, `kept`, `skipped` by reason,
        `frames`, `seconds`), `skipped_examples` (index, reason, detail; the first 100), `reused` (which steps came from
        the cache), `codec`, `latent_statistics`, `aligner` and `durations_source`. On the other processes of a
        launch than the main one: `{"rank", "world_size"}` once their shards are written.

    Examples:

    ```py
    >>> from prepare_dataset import parse_args, prepare_dataset

    >>> summary = prepare_dataset(
    ...     parse_args(["--dataset_name_or_path", "my_audiofolder", "--output_dir", "prepared", "--aligner_steps", "500"])
    ... )  # doctest: +SKIP
    >>> summary["counts"]["kept"], summary["counts"]["skipped"]  # doctest: +SKIP
    (1830, {'unreadable_audio': 2, 'silent': 1})
    ```
    """
    _check_args(args)
    if getattr(args, "prompt_channel_copies_from", None) is not None:
        return add_prompt_channel_copies(
            args.prompt_channel_copies_from,
            args.output_dir,
            speaker_pattern=args.prompt_channel_speaker_pattern,
            max_frame_difference=args.prompt_channel_max_frame_difference,
            overwrite_output_dir=args.overwrite_output_dir,
            batch_size=args.batch_size,
        )
    start = time.time()
    rank, world_size, local_rank = process_rank()
    output_dir = Path(args.output_dir).absolute()
    _check_output_dir(output_dir, args.overwrite_output_dir)
    cache_dir = Path(args.cache_dir).absolute() if args.cache_dir else output_dir / "cache"
    device = torch.device(args.device or (f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"))

    # Everything that can be the user's error is checked before any work starts; such an error leaves no output.
    created_output = not output_dir.exists()
    try:
        tokenizer = build_tokenizer(args)
        codec = build_codec(args).to(device)
        if args.reuse_latent_statistics and bool((codec.latent_std == 1).all() and (codec.latent_mean == 0).all()):
            raise DatasetPreparationError("--reuse_latent_statistics: the codec holds no latent statistics.")
        pretrained_aligner = None
        if args.aligner_name_or_path is not None:
            pretrained_aligner = load_pretrained_aligner(
                args.aligner_name_or_path, tokenizer, codec.latent_dim, args.aligner_keep_silent_tokens
            )
        cache_dir.mkdir(parents=True, exist_ok=True)
        dataset, base_dir = load_source_dataset(args, str(cache_dir))
        dataset = check_source_dataset(dataset, args)
    except DatasetPreparationError:
        if created_output and rank == 0:
            shutil.rmtree(output_dir, ignore_errors=True)
        raise

    # 1. features
    if isinstance(dataset, IterableDataset):
        source = ["stream", args.dataset_name_or_path, args.dataset_config_name, args.split, args.max_samples]
        if Path(args.dataset_name_or_path).exists():
            source.append(_local_files_digest(Path(args.dataset_name_or_path)))
    else:
        source = ["dataset", dataset._fingerprint]
    featurizer = Featurizer(codec, tokenizer, args, base_dir)
    settings = {key: value for key, value in vars(featurizer).items() if key not in ("codec", "tokenizer")}
    fingerprint = _fingerprint(
        "features", source, settings, type(codec).__name__, _module_digest(codec), _tokenizer_digest(tokenizer)
    )
    featurized, features_reused = featurize(dataset, featurizer, fingerprint, str(cache_dir), args)
    if featurized is None:  # another process than the main one: its shards are written, the main process goes on
        print(f"Process {rank} of {world_size} featurized its shards; the main process merges them.")
        return {"rank": rank, "world_size": world_size}
    logger.info(f"Featurized {len(featurized)} examples ({'cached' if features_reused else 'computed'}).")

    reasons = list(featurized["skip_reason"])
    skipped = Counter(reason for reason in reasons if reason)
    skipped_examples = [
        {"index": int(index), "reason": reason, "detail": detail}
        for index, reason, detail in zip(featurized["index"], reasons, featurized["skip_detail"])
        if reason
    ][:100]
    kept = _kept_rows(featurized, str(cache_dir), fingerprint)
    if len(kept) == 0:
        _print_summary(len(reasons), 0, skipped, skipped_examples, 0, 0.0, output_dir, failed=True)
        raise DatasetPreparationError(
            f"No usable example in the dataset: all {len(reasons)} were skipped {dict(skipped)}."
        )

    # 2. latent statistics
    if not args.reuse_latent_statistics:
        mean, std = latent_statistics(kept, args.sigma_data)
        codec.set_latent_statistics(mean, std)

    # 3. durations
    statistics_digest = _module_digest(codec)[:16]
    aligner, aligner_log, aligner_reused = None, None, False
    if args.durations_column is None:
        aligner_fingerprint = _fingerprint(
            "aligner",
            kept._fingerprint,
            statistics_digest,
            {k: v for k, v in vars(args).items() if k.startswith("aligner_")},
            args.pipeline_config,
            args.seed,
            None if args.aligner_name_or_path is None else _module_digest(pretrained_aligner),
        )
        aligner_dir = cache_dir / f"aligner-{aligner_fingerprint}"
        aligner_reused = (aligner_dir / "training_log.json").is_file()
        if aligner_reused:
            aligner = FlashSpeechAligner.from_pretrained(str(aligner_dir)).to(device).eval()
            aligner_log = json.loads((aligner_dir / "training_log.json").read_text())
        else:
            aligner, aligner_log = train_aligner(kept, codec, tokenizer, args, device, aligner=pretrained_aligner)
            if args.aligner_name_or_path is not None:
                aligner_log["pretrained"] = args.aligner_name_or_path
            aligner.save_pretrained(str(aligner_dir))
            (aligner_dir / "training_log.json").write_text(json.dumps(aligner_log, indent=2))
        logger.info(f"Aligner ({'cached' if aligner_reused else 'trained'}): {aligner_log}")

    # 4. final rows
    final_fingerprint = _fingerprint(
        "final", kept._fingerprint, statistics_digest, None if aligner is None else _module_digest(aligner)
    )
    final_file = cache_dir / f"final-{final_fingerprint}.arrow"
    final_reused = final_file.is_file()
    final = kept.with_format("numpy").map(
        Finalizer(codec, aligner, tokenizer.pad_token_id, device),
        batched=True,
        batch_size=args.batch_size,
        remove_columns=[c for c in _HELPER_COLUMNS if c in kept.column_names],
        features=prepared_features(codec.latent_dim),
        cache_file_name=str(final_file),
        new_fingerprint=final_fingerprint,
        desc="Normalizing latents" + ("" if aligner is None else ", aligning"),
    )
    final = final.with_format(None).select_columns(list(PREPARED_COLUMNS))

    frames = int(sum(final["num_frames"]))
    seconds = frames / codec.frame_rate
    summary = {
        "args": vars(args),
        "format_version": FORMAT_VERSION,
        "flashspeech_hf_version": flashspeech_hf.__version__,
        "counts": {
            "examples": len(reasons),
            "kept": len(final),
            "skipped": dict(sorted(skipped.items())),
            "frames": frames,
            "seconds": seconds,
        },
        "skipped_examples": skipped_examples,
        "reused": {"features": features_reused, "aligner": aligner_reused, "final": final_reused},
        "codec": {
            "class_name": type(codec).__name__,
            "sampling_rate": codec.sampling_rate,
            "hop_length": codec.hop_length,
            "latent_dim": codec.latent_dim,
        },
        "sigma_data": args.sigma_data,
        "latent_statistics": "reused from the codec" if args.reuse_latent_statistics else "computed on this dataset",
        "durations_source": "aligner" if aligner is not None else f"column {args.durations_column!r}",
        "aligner": aligner_log,
        "seconds_taken": None,
    }

    # 5. write everything to a staging folder next to the output, then swap it in
    with _staged_output(output_dir, cache_dir) as staging:
        final.save_to_disk(str(staging / "dataset"))
        tokenizer.save_pretrained(str(staging / "tokenizer"))
        codec.to("cpu").save_pretrained(str(staging / "codec"))
        if aligner is not None:
            aligner.to("cpu").save_pretrained(str(staging / "aligner"))
        summary["seconds_taken"] = round(time.time() - start, 2)
        (staging / PREPARE_CONFIG_NAME).write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    _print_summary(len(reasons), len(final), skipped, skipped_examples, frames, seconds, output_dir)
    return summary


def _print_summary(
    total: int,
    kept: int,
    skipped: Counter,
    examples: list[dict],
    frames: int,
    seconds: float,
    output_dir: Path,
    failed: bool = False,
) -> None:
    where = "" if failed else f" into {output_dir}"
    print(f"Prepared {kept} of {total} examples ({frames} latent frames, {seconds / 60:.1f} min of audio){where}.")
    if skipped:
        print(f"Skipped {sum(skipped.values())}: " + ", ".join(f"{r} {n}" for r, n in sorted(skipped.items())) + ".")
        for example in examples[:5]:
            print(f"  example {example['index']} ({example['reason']}): {example['detail'][:160]}")
    else:
        print("Skipped 0.")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        args = parse_args(argv)
        prepare_dataset(args)
    except DatasetPreparationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
