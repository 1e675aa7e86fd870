#!/usr/bin/env python
"""
Trains FlashSpeech (Ye et al. 2024) on a dataset prepared by `training/prepare_dataset.py`, with Accelerate.

* `--stage 1`: prior encoder + prosody regression (duration and pitch losses) + the latent consistency model, trained
  from scratch with improved consistency training (iCT: the N(k) curriculum of training_utils, lognormal noise levels,
  pseudo-Huber loss, stop-gradient teacher = the same model at the lower level, no EMA), in context: a random segment
  of each utterance is the prompt and the losses cover the rest. From `--adversarial_start_step` the one-step estimate
  and the ground truth are decoded by the frozen codec and scored by the SLM discriminator (a frozen WavLM, HuBERT,
  wav2vec 2.0 or Whisper encoder + trainable heads, LSGAN) whose loss is added with the adaptive weight times
  `--lambda_adv`. `--consistency_schedule ect` replaces iCT's curriculum by Easy Consistency Tuning's shrinking gap,
  the continuation of a `--objective denoising` run.
* `--stage 2`: only the prosody refinement models (consistency models on the residual ground truth - regression).
* Fine-tuning: `--pretrained_model_name_or_path` starts every component from a saved `FlashSpeechPipeline`;
  `--train_components` picks what trains, `--extend_vocabulary` adds the data's new phonemes. With `--use_lora`, only
  LoRA adapters (peft) of the prior encoder and denoiser train; they are saved under `OUTPUT_DIR/lora/<component>/`
  and the pipeline in `OUTPUT_DIR` has them merged.
* The saved pipeline carries an aligner (for `pipe.align`, voice conversion and editing): the prepared data's
  `aligner/`, else the pretrained pipeline's (see `select_aligner`).

The losses of a step are computed by `training_module.FlashSpeechTrainingModule`, one `nn.Module` that
`accelerator.prepare` wraps (the discriminator, trained by its own optimizer, is prepared beside it). Checkpoints hold
one diffusers-format folder per trained model (`prior_encoder/`, `prosody_generator/`, `denoiser/`, `discriminator/`)
and the optimizer's parameters in that component order, as earlier versions of this script wrote them.

Examples:

```bash
accelerate launch training/train_flashspeech.py --config training/configs/tiny.json \
    --prepared_dataset_dir data/prepared --output_dir flashspeech-tiny --max_train_steps 2000
# ACT offline: ECT from a denoising run + the adversarial loss of the bundled Whisper tiny.en's encoder
accelerate launch training/train_flashspeech.py --config training/configs/demo.json \
    --prepared_dataset_dir data/prepared --output_dir flashspeech-act \
    --pretrained_model_name_or_path checkpoints/flashspeech-demo --objective consistency \
    --consistency_schedule ect --adversarial_start_step 0 --slm_model_name_or_path whisper-tiny.en
```

Every run ends with a complete pipeline in `--output_dir` that loads with `FlashSpeechPipeline.from_pretrained`.

LoRA adapters load onto the base pipeline with peft:

```py
from peft import PeftModel

pipe = FlashSpeechPipeline.from_pretrained("base-pipeline")
for name in ("prior_encoder", "denoiser"):
    setattr(pipe, name, PeftModel.from_pretrained(getattr(pipe, name), f"OUTPUT_DIR/lora/{name}").merge_and_unload())
```
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import ProjectConfiguration, set_seed
from arg_checks import check_numeric_flags
from checkpointing import checkpoint_problem, latest_complete_checkpoint, save_checkpoint
from data_utils import PROMPT_CHANNEL_COLUMN, FrameBudgetBatchSampler, collate_prepared, load_prepared_dataset
from datasets import Dataset, IterableDataset
from datasets.distributed import split_dataset_by_node
from diffusers.optimization import get_scheduler
from huggingface_hub import create_repo, upload_folder
from torch import nn
from tqdm.auto import tqdm
from training_module import (
    TRAINABLE_COMPONENTS,
    FlashSpeechTrainingModule,
    TrainingLossConfig,
    check_stage_components,
    discriminator_step_loss,
)
from transformers.trainer_pt_utils import LengthGroupedSampler

from flashspeech_hf import (
    FlashSpeechAligner,
    FlashSpeechPipeline,
    FlashSpeechTokenizer,
)
from flashspeech_hf.configs import PIPELINE_CONFIGS, get_pipeline_config
from flashspeech_hf.models.modeling_discriminator import FlashSpeechDiscriminator, default_slm
from flashspeech_hf.training_utils import (
    ConsistencyTrainingCurriculum,
    EasyConsistencyTuningSchedule,
    idle_cpu_count,
    lower_precision_attention,
    resolve_mixed_precision,
)

logger = get_logger(__name__, log_level="INFO")

LORA_COMPONENTS = ("prior_encoder", "denoiser")
# A tiny random WavLM for tests and CPU smoke runs (`--slm_config tiny`).
TINY_SLM_CONFIG = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": (16,) * 7,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
}
# A tiny random Whisper encoder (`--slm_config tiny-whisper`).
TINY_WHISPER_SLM_CONFIG = {
    "model_type": "whisper",
    "d_model": 16,
    "encoder_layers": 2,
    "encoder_attention_heads": 2,
    "encoder_ffn_dim": 32,
    "decoder_layers": 1,
    "decoder_attention_heads": 2,
    "decoder_ffn_dim": 32,
    "vocab_size": 64,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 1,
    "decoder_start_token_id": 2,
}
TINY_SLM_CONFIGS = {"tiny": TINY_SLM_CONFIG, "tiny-whisper": TINY_WHISPER_SLM_CONFIG}
MODEL_CARD_TEMPLATE = Path(__file__).resolve().parent.parent / "model_card.md"


# ----------------------------------------------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    add = parser.add_argument
    add("--config", type=str, default=None, help="JSON file: `pipeline_config`, `model_overrides` and any flag below.")
    # data and model
    add("--prepared_dataset_dir", type=str, default=None, help="Output folder of training/prepare_dataset.py.")
    add(
        "--streaming",
        action="store_true",
        help="Stream the prepared dataset (IterableDataset) instead of random access.",
    )
    add("--max_train_frames", type=int, default=None, help="Drop utterances longer than this many latent frames.")
    add(
        "--max_frames_per_batch",
        type=int,
        default=None,
        help="Batch by a budget of padded latent frames (20000 per GPU in the paper) instead of\n"
        "--train_batch_size items; not with --streaming.",
    )
    add(
        "--group_by_length",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Batches of --train_batch_size rows of similar lengths (transformers' LengthGroupedSampler, as the\n"
        "Trainer's flag of that name): less padding, the same rows per step; not with --streaming.\n"
        "--no-group_by_length turns off a config's.",
    )
    add(
        "--pad_to_multiple_of",
        type=int,
        default=None,
        help="Pad each batch's phonemes, target and prompt frames up to a multiple of this: a few distinct tensor\n"
        "shapes, so that a CPU builds its oneDNN kernels once instead of at nearly every step (benchmarks/README.md).",
    )
    add("--pipeline_config", type=str, default=None, help=f"Named model sizes: {sorted(PIPELINE_CONFIGS)}.")
    add(
        "--model_overrides",
        type=json.loads,
        default=None,
        help='Per-component config updates, JSON: {"denoiser": {...}}',
    )
    add(
        "--pretrained_model_name_or_path",
        type=str,
        default=None,
        help="A saved FlashSpeechPipeline (folder or Hub id).",
    )
    add("--revision", type=str, default=None)
    add("--train_components", type=str, default=None, help="Comma list of prior_encoder,prosody_generator,denoiser.")
    add("--language", type=str, default=None, help="espeak-ng language recorded in the saved tokenizer.")
    add("--extend_vocabulary", action="store_true", help="Add the data's phonemes that the vocabulary lacks.")
    add("--use_lora", action="store_true", help="Train LoRA adapters (peft) of the prior encoder and denoiser.")
    add("--lora_rank", type=int, default=8, help="Rank of the LoRA adapters.")
    add("--lora_alpha", type=float, default=None, help="LoRA scale numerator (scale = alpha / rank; default: rank).")
    add(
        "--lora_target_modules",
        type=str,
        default=None,
        help="Comma list of module names (suffixes) to adapt; default: every nn.Linear and undilated nn.Conv1d\n"
        "outside attention blocks.",
    )
    # stage and losses
    add("--stage", type=int, default=1, choices=(1, 2))
    add(
        "--prompt_ratio_min",
        type=float,
        default=0.2,
        help="Shortest prompt, as a fraction of the utterance. The prompt is cut at phoneme boundaries from the start\n"
        "or the end of each utterance and removed from the target (the model sees it only through the prompt encoder).",
    )
    add("--prompt_ratio_max", type=float, default=0.4)
    add(
        "--objective",
        type=str,
        default="consistency",
        choices=("consistency", "denoising"),
        help="Stage-1 loss of the denoiser. `consistency`: the paper's iCT loss (from scratch, or consistency tuning of\n"
        "a denoising-pretrained model with --pretrained_model_name_or_path). `denoising`: EDM x0-regression of the same\n"
        "consistency function (the teacher at the boundary level), which learns content within a CPU budget; see README.",
    )
    add("--denoising_p_mean", type=float, default=-1.2, help="Lognormal mean of ln(sigma) for --objective denoising.")
    add("--denoising_p_std", type=float, default=1.2, help="Lognormal std of ln(sigma) for --objective denoising.")
    add(
        "--denoising_max_sigma_fraction",
        type=float,
        default=0.2,
        help="Share of items drawn at exactly sigma_max (where 1-step sampling starts) for --objective denoising.",
    )
    add(
        "--consistency_schedule",
        type=str,
        default="ict",
        choices=("ict", "ect"),
        help="Noise levels of --objective consistency. `ict`: the paper's N(k) curriculum (--s0, --s1). `ect`: Easy\n"
        "Consistency Tuning, the continuation of --objective denoising: t drawn as there (--denoising_* flags), the\n"
        "gap t - r starting at the denoising limit (r = 0) and divided by --ect_q at each of --ect_num_stages stages.",
    )
    add("--ect_num_stages", type=int, default=8, help="ECT stages over --curriculum_total_steps.")
    add("--ect_q", type=float, default=2.0, help="ECT: the gap shrinks by this factor per stage.")
    add("--huber_c", type=float, default=0.03, help="Pseudo-Huber constant c of the consistency loss.")
    add("--s0", type=int, default=None, help="iCT initial discretization steps (default 10).")
    add("--s1", type=int, default=None, help="iCT final discretization steps (default 1280; 160 in stage 2).")
    add(
        "--curriculum_total_steps", type=int, default=None, help="K of the N(k) curriculum (default: max_train_steps)."
    )
    add("--lambda_duration", type=float, default=1.0)
    add("--lambda_pitch", type=float, default=1.0)
    add("--adversarial_start_step", type=int, default=None, help="First step with the adversarial loss (None: never).")
    add("--lambda_adv", type=float, default=1.0, help="Scale of the adaptive adversarial weight.")
    add("--adv_segment_frames", type=int, default=64, help="Latent frames decoded for the discriminator.")
    add(
        "--slm_model_name_or_path",
        type=str,
        default=None,
        help="The discriminator's SLM: a WavLM, HuBERT, wav2vec 2.0 or Whisper (Hub id or folder, e.g. one written by\n"
        "`flashspeech convert-whisper`), or `whisper-tiny.en` / `whisper-base` (bundled, converted once). Default:\n"
        "microsoft/wavlm-large (the paper's), whisper-tiny.en when HF_HUB_OFFLINE is set.",
    )
    add("--slm_config", type=str, default=None, help="`tiny` / `tiny-whisper`: a tiny random WavLM / Whisper encoder.")
    add("--discriminator_hidden_channels", type=int, default=256)
    add("--discriminator_learning_rate", type=float, default=2e-4)
    add("--no_prompt_conditioning", action="store_true", help="Discriminator without prompt conditioning (ablation).")
    # optimization
    add("--train_batch_size", type=int, default=8)
    add("--gradient_accumulation_steps", type=int, default=1)
    add("--max_train_steps", type=int, default=650_000)
    add(
        "--max_train_minutes",
        type=float,
        default=None,
        help="Wall-clock budget: stop after the step that ends this many minutes after the first step began, saving\n"
        "a checkpoint and the pipeline as at --max_train_steps (all processes stop at the same step).",
    )
    add("--learning_rate", type=float, default=3e-4)
    add("--lr_scheduler", type=str, default="linear")
    add("--lr_warmup_steps", type=int, default=30_000)
    add("--adam_beta1", type=float, default=0.9)
    add("--adam_beta2", type=float, default=0.999)
    add("--adam_weight_decay", type=float, default=1e-2)
    add("--adam_epsilon", type=float, default=1e-8)
    add("--max_grad_norm", type=float, default=1.0)
    add(
        "--mixed_precision",
        type=str,
        default=None,
        choices=("no", "fp16", "bf16", "auto"),
        help="Autocast of the models' forward (the weights, losses, consistency targets and optimizer state stay\n"
        "float32). `auto`: bf16 where the device computes in bfloat16 natively (AVX512-BF16/AMX CPUs, CUDA), else\n"
        "no, with a log line. Default: Accelerate's configuration.",
    )
    add(
        "--torch_compile_backend",
        type=str,
        default=None,
        help="torch.compile the denoiser's forward with this backend (`inductor`), dynamic shapes, in place\n"
        "(`nn.Module.compile`): state dicts keep their keys, so checkpoints resume with or without it.",
    )
    add("--allow_tf32", action="store_true")
    add("--dataloader_num_workers", type=int, default=0)
    add("--seed", type=int, default=0)
    add(
        "--num_threads",
        type=int,
        default=None,
        help="torch CPU threads (default: the idle cores, from the load average). More threads than idle cores make\n"
        "OpenMP spin against other jobs: one busy core can slow a 2-thread step 50x.",
    )
    # bookkeeping
    add("--output_dir", type=str, default="flashspeech-model")
    add("--logging_dir", type=str, default="logs")
    add("--report_to", type=str, default="tensorboard", help='"tensorboard", "wandb", "all" or "none".')
    add("--tracker_project_name", type=str, default="flashspeech")
    add("--checkpointing_steps", type=int, default=5000)
    add(
        "--validation_file",
        type=str,
        default=None,
        help="CSV with columns text,prompt_audio (paths relative to the CSV): every --validation_steps the current\n"
        "model speaks each row (2 steps, fixed seeds); the audio goes to OUTPUT_DIR/validation/step-N/ and the word\n"
        "error rate of --validation_asr_backend on it is logged as `val_wer` (needs the `eval` extra).",
    )
    add("--validation_steps", type=int, default=1000)
    add("--validation_asr_backend", type=str, default=None, help="Default: Whisper base offline, else HuBERT.")
    add("--checkpoints_total_limit", type=int, default=None)
    add("--resume_from_checkpoint", type=str, default=None, help='A checkpoint folder or "latest".')
    add("--log_sample_ids", action="store_true", help="Write the dataset rows each process trained on (debugging).")
    add("--push_to_hub", action="store_true")
    add("--hub_model_id", type=str, default=None)
    add("--hub_token", type=str, default=None)
    return parser


# Numeric flags and their ranges, checked before any work (values from a --config JSON bypass argparse's types):
# flag -> (type, range as an interval string, optional); "optional" flags may be None (unset).
NUMERIC_FLAGS = {
    "max_train_frames": (int, "[1, inf)", True),
    "max_frames_per_batch": (int, "[1, inf)", True),
    "pad_to_multiple_of": (int, "[1, inf)", True),
    "lora_rank": (int, "[1, inf)", False),
    "lora_alpha": (float, "(0, inf)", True),
    "stage": (int, "[1, 2]", False),
    "prompt_ratio_min": (float, "(0, 1)", False),
    "prompt_ratio_max": (float, "(0, 1)", False),
    "huber_c": (float, "(0, inf)", False),
    "s0": (int, "[1, inf)", True),
    "s1": (int, "[1, inf)", True),
    "curriculum_total_steps": (int, "[1, inf)", True),
    "ect_num_stages": (int, "[1, inf)", False),
    "ect_q": (float, "(1, inf)", False),
    "lambda_duration": (float, "[0, inf)", False),
    "lambda_pitch": (float, "[0, inf)", False),
    "adversarial_start_step": (int, "[0, inf)", True),
    "lambda_adv": (float, "[0, inf)", False),
    "adv_segment_frames": (int, "[2, inf)", False),
    "discriminator_hidden_channels": (int, "[1, inf)", False),
    "discriminator_learning_rate": (float, "(0, inf)", False),
    "train_batch_size": (int, "[1, inf)", False),
    "gradient_accumulation_steps": (int, "[1, inf)", False),
    "max_train_steps": (int, "[0, inf)", False),
    "max_train_minutes": (float, "(0, inf)", True),
    "learning_rate": (float, "(0, inf)", False),
    "lr_warmup_steps": (int, "[0, inf)", False),
    "adam_beta1": (float, "[0, 1)", False),
    "adam_beta2": (float, "[0, 1)", False),
    "adam_weight_decay": (float, "[0, inf)", False),
    "adam_epsilon": (float, "(0, inf)", False),
    "max_grad_norm": (float, "[0, inf)", False),
    "dataloader_num_workers": (int, "[0, inf)", False),
    "seed": (int, "[0, 4294967295]", False),
    "checkpointing_steps": (int, "[1, inf)", False),
    "checkpoints_total_limit": (int, "[1, inf)", True),
    "validation_steps": (int, "[1, inf)", False),
    "num_threads": (int, "[1, inf)", True),
    "denoising_p_std": (float, "(0, inf)", False),
    "denoising_max_sigma_fraction": (float, "[0, 1]", False),
}
FLAG_HINTS = {
    "checkpointing_steps": " It is the number of steps between checkpoints (the last step is always saved): give a "
    "number larger than --max_train_steps to save only at the end.",
    "checkpoints_total_limit": " Omit it to keep every checkpoint.",
    "max_grad_norm": " 0 turns gradient clipping off.",
    "seed": " numpy takes seeds below 2**32.",
}


def parse_args(args_list: list[str] | None = None) -> argparse.Namespace:
    """Parses the flags; a `--config` JSON supplies defaults that flags on the command line override."""
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.config is not None:
        with open(args.config, encoding="utf-8") as f:
            config = json.load(f)
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(config) - known - {"_comment"})
        if unknown:
            raise ValueError(f"{args.config} has unknown keys {unknown}.")
        parser.set_defaults(**{k: v for k, v in config.items() if k != "_comment"})
        args = parser.parse_args(args_list)
    if args.prepared_dataset_dir is None:
        raise ValueError("--prepared_dataset_dir is required (the output folder of training/prepare_dataset.py).")
    check_numeric_flags(args, NUMERIC_FLAGS, FLAG_HINTS)
    if args.s0 is not None and args.s1 is not None and args.s1 < args.s0:
        raise ValueError(f"--s1 ({args.s1}) must be >= --s0 ({args.s0}): N(k) grows from s0 to s1.")
    if args.mixed_precision not in (None, "no", "fp16", "bf16", "auto"):
        raise ValueError(f"--mixed_precision must be 'no', 'fp16', 'bf16' or 'auto', got {args.mixed_precision!r}.")
    if args.pretrained_model_name_or_path is None and args.pipeline_config is None:
        args.pipeline_config = "tiny"
    if args.stage == 2 and args.pretrained_model_name_or_path is None:
        raise ValueError(
            "--stage 2 trains the prosody refiners of a stage-1 model: pass --pretrained_model_name_or_path."
        )
    if args.use_lora:
        if args.pretrained_model_name_or_path is None or args.stage != 1:
            raise ValueError(
                "--use_lora adapts a pretrained pipeline in stage 1: pass --pretrained_model_name_or_path."
            )
        if args.extend_vocabulary:
            raise ValueError(
                "--use_lora cannot be combined with --extend_vocabulary: the new phonemes' embedding rows would need "
                "full training. Fine-tune without LoRA to extend the vocabulary."
            )
        if args.lora_rank < 1:
            raise ValueError(f"--lora_rank must be >= 1, got {args.lora_rank}.")
        if args.train_components is None:
            args.train_components = ",".join(LORA_COMPONENTS)
    if args.max_frames_per_batch is not None and (args.streaming or args.max_frames_per_batch < 1):
        raise ValueError("--max_frames_per_batch needs a positive budget and a map-style (not --streaming) dataset.")
    if args.group_by_length and (args.streaming or args.max_frames_per_batch is not None):
        raise ValueError(
            "--group_by_length needs a map-style (not --streaming) dataset and fixed-size batches (not "
            "--max_frames_per_batch, which groups by length already)."
        )
    if args.objective == "denoising" and args.stage != 1:
        raise ValueError(
            "--objective denoising trains the stage-1 denoiser; stage 2 always uses consistency training."
        )
    if not 0 < args.prompt_ratio_min <= args.prompt_ratio_max < 1:
        raise ValueError("Need 0 < --prompt_ratio_min <= --prompt_ratio_max < 1.")
    if args.push_to_hub and not args.hub_model_id:
        raise ValueError("--push_to_hub needs --hub_model_id.")
    requested = None
    if args.train_components is not None:
        requested = [c.strip() for c in args.train_components.split(",") if c.strip()]
    try:
        components = check_stage_components(args.stage, requested)
    except ValueError as err:
        raise ValueError(f"--stage {args.stage} --train_components {args.train_components!r}: {err}") from err
    if args.use_lora and not set(components) <= set(LORA_COMPONENTS):
        raise ValueError(f"--use_lora adapts only {list(LORA_COMPONENTS)}; got --train_components {components}.")
    args.train_components = components
    if args.slm_config not in (None, *TINY_SLM_CONFIGS):
        raise ValueError(f"--slm_config must be one of {list(TINY_SLM_CONFIGS)} or omitted, got {args.slm_config!r}.")
    if args.consistency_schedule == "ect" and (args.stage != 1 or args.objective != "consistency"):
        raise ValueError(
            "--consistency_schedule ect tunes the stage-1 denoiser: use --stage 1 --objective consistency."
        )
    return args


# ----------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------


def remap_vocabulary(
    dataset: Dataset, data_tokenizer: FlashSpeechTokenizer, tokenizer: FlashSpeechTokenizer, extend: bool
) -> tuple[Dataset, collections.Counter, list[int]]:
    """
    Re-expresses the dataset's phoneme ids (of the tokenizer it was prepared with) in `tokenizer`'s vocabulary.

    Returns the dataset, the count of phonemes `tokenizer` lacks, and the ids added when `extend` is set (otherwise the
    unknown phonemes map to `unk_token`).
    """
    data_vocab = {i: s for s, i in data_tokenizer.get_vocab().items()}
    counts = collections.Counter()
    for ids in dataset["input_ids"]:
        counts.update(ids)
    vocab = tokenizer.get_vocab()
    unknown = collections.Counter({data_vocab.get(i, f"<id {i}>"): n for i, n in counts.items()})
    unknown = collections.Counter({s: n for s, n in unknown.items() if s not in vocab})
    added = tokenizer.add_phonemes(sorted(unknown)) if extend and unknown else []
    vocab = tokenizer.get_vocab()
    table = {i: vocab.get(data_vocab.get(i, ""), tokenizer.unk_token_id) for i in counts}
    if all(table[i] == i for i in table):
        return dataset, unknown, added
    dataset = dataset.map(lambda ex: {"input_ids": [table[i] for i in ex["input_ids"]]}, desc="Remapping phoneme ids")
    return dataset, unknown, added


def infinite_batches(
    dataset: Dataset | IterableDataset, args: argparse.Namespace, pad_token_id: int, skip: int
) -> Iterator[dict[str, torch.Tensor]]:
    """
    Yields batches of `data_utils.collate_prepared` forever, epoch after epoch (reshuffled per epoch with
    `seed + epoch`), after skipping `skip`, so that a resumed run sees the batches the uninterrupted run saw.

    Batches hold `--train_batch_size` rows (of similar lengths with `--group_by_length`), or, with
    `--max_frames_per_batch`, rows of similar lengths under that budget of padded frames
    (`data_utils.FrameBudgetBatchSampler`).
    """
    collate = functools.partial(collate_prepared, pad_token_id=pad_token_id)
    epoch, seen = 0, 0
    lengths = [int(n) for n in dataset["num_frames"]] if args.group_by_length else None
    while True:
        if isinstance(dataset, IterableDataset):
            ds = dataset.shuffle(seed=args.seed, buffer_size=1000)
            ds.set_epoch(epoch)
            loader = torch.utils.data.DataLoader(ds, batch_size=args.train_batch_size, collate_fn=collate)
        elif args.max_frames_per_batch is not None:
            sampler = FrameBudgetBatchSampler(dataset["num_frames"], args.max_frames_per_batch, seed=args.seed)
            sampler.set_epoch(epoch)
            loader = torch.utils.data.DataLoader(
                dataset, batch_sampler=sampler, collate_fn=collate, num_workers=args.dataloader_num_workers
            )
        else:
            generator = torch.Generator().manual_seed(args.seed + epoch)
            # grouped: megabatches of 50 batches drawn at random, sorted by length within, cut into batches
            sampler = (
                LengthGroupedSampler(args.train_batch_size, lengths=lengths, generator=generator) if lengths else None
            )
            loader = torch.utils.data.DataLoader(
                dataset,
                batch_size=args.train_batch_size,
                shuffle=sampler is None,
                sampler=sampler,
                generator=generator,
                collate_fn=collate,
                num_workers=args.dataloader_num_workers,
            )
        empty = True
        for batch in loader:
            empty = False
            seen += 1
            if seen > skip:
                yield {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
        if empty:
            raise ValueError("This process got no training rows: the dataset has fewer shards/rows than processes.")
        epoch += 1


# ----------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------


def _config_conflicts(component: str, config: dict, wanted: dict) -> list[str]:
    return [
        f"{component}.{k}={v!r} (the model has {config.get(k)!r})" for k, v in wanted.items() if config.get(k) != v
    ]


def build_pipeline(args, tokenizer: FlashSpeechTokenizer, codec: torch.nn.Module) -> FlashSpeechPipeline:
    """A fresh pipeline of the named size (stage 1 from scratch) or the pretrained one (fine-tuning, stage 2)."""
    overrides = args.model_overrides or {}
    if args.pretrained_model_name_or_path is None:
        return FlashSpeechPipeline.from_named_config(
            args.pipeline_config, tokenizer=tokenizer, codec=codec, **overrides
        )
    try:
        pipe = FlashSpeechPipeline.from_pretrained(args.pretrained_model_name_or_path, revision=args.revision)
    except (ValueError, OSError) as err:
        raise ValueError(f"--pretrained_model_name_or_path is not a FlashSpeechPipeline: {err}") from err
    # Model sizes come from the loaded components; a flag that asks for other sizes is an error.
    wanted = {} if args.pipeline_config is None else get_pipeline_config(args.pipeline_config)
    for component, update in overrides.items():
        wanted.setdefault(component, {}).update(update)
    conflicts = []
    for component, update in wanted.items():
        # the codec comes with the data; the scheduler and other entries do not size a trained model
        if component not in TRAINABLE_COMPONENTS or not isinstance(update, dict):
            continue
        conflicts += _config_conflicts(component, dict(getattr(pipe, component).config), update)
    if conflicts:
        raise ValueError(
            "The model config asked for sizes that contradict the pretrained pipeline "
            f"{args.pretrained_model_name_or_path}: {conflicts}. Drop --pipeline_config/--model_overrides when "
            "fine-tuning (the sizes come from the pretrained components)."
        )
    return pipe


def aligner_in_vocabulary(
    aligner: FlashSpeechAligner, data_tokenizer: FlashSpeechTokenizer, tokenizer: FlashSpeechTokenizer
) -> FlashSpeechAligner:
    """
    Re-expresses an aligner trained on `data_tokenizer`'s ids in `tokenizer`'s vocabulary: each phoneme embedding row
    moves to the id its symbol has in `tokenizer`; symbols `data_tokenizer` lacks get freshly initialised rows.
    """
    data_vocab, vocab = data_tokenizer.get_vocab(), tokenizer.get_vocab()
    rows = {
        j: data_vocab[s]
        for s, j in vocab.items()
        if data_vocab.get(s, aligner.config.vocab_size) < aligner.config.vocab_size
    }
    if aligner.config.pad_token_id == tokenizer.pad_token_id and all(i == j for j, i in rows.items()):
        if len(tokenizer) > aligner.config.vocab_size:
            aligner.resize_token_embeddings(len(tokenizer))
        return aligner
    moved = FlashSpeechAligner.from_config(
        aligner.config, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id
    )
    state = aligner.state_dict()
    old, weight = state.pop("embed_tokens.weight"), moved.embed_tokens.weight.detach().clone()
    weight[torch.tensor(list(rows), dtype=torch.long)] = old[torch.tensor(list(rows.values()), dtype=torch.long)]
    moved.load_state_dict({**state, "embed_tokens.weight": weight})
    return moved.eval()


def durations_from_another_aligner(
    prepared_aligner_path: str | None, pretrained_aligner: FlashSpeechAligner | None
) -> bool:
    """
    Whether the prepared data's durations were made by another aligner than the pretrained pipeline's.

    Fine-tuning on such durations teaches the model other phoneme boundaries than the ones it learned. An aligner
    trained anew for a few hundred steps on a new corpus placed boundaries 82 ms (median) away from the bundled
    aligner's, and every fine-tune on its durations lost the text (checkpoints/README.md, "Pilots"); prepare with
    `--aligner_name_or_path <pipeline> --codec_name_or_path <pipeline>/codec --reuse_latent_statistics` instead.
    """
    if prepared_aligner_path is None or pretrained_aligner is None:
        return False
    prepared = FlashSpeechAligner.from_pretrained(prepared_aligner_path).state_dict()
    pretrained = pretrained_aligner.state_dict()
    return prepared.keys() != pretrained.keys() or any(
        prepared[k].shape != pretrained[k].shape or not torch.equal(prepared[k], pretrained[k].to(prepared[k].dtype))
        for k in prepared
    )


def select_aligner(
    prepared_aligner_path: str | None,
    pretrained_aligner: FlashSpeechAligner | None,
    data_tokenizer: FlashSpeechTokenizer,
    tokenizer: FlashSpeechTokenizer,
    same_latent_statistics: bool,
) -> tuple[FlashSpeechAligner | None, str]:
    """
    Picks the aligner that the saved pipeline carries (for `pipe.align`, voice conversion and speech editing), in the
    pipeline tokenizer's vocabulary.

    1. The prepared data's aligner, when the data's latents are normalized like the pipeline's (always so from
       scratch; when fine-tuning, prepare with the pipeline's codec and `--reuse_latent_statistics`): it was trained on
       this data, new phonemes and speakers included, and made the durations the model trained on.
    2. Else the pretrained pipeline's aligner, its embedding grown to an extended vocabulary (the new rows untrained).
    3. Else the prepared data's aligner all the same, with a warning: it saw latents normalized with other statistics.
    4. Else none, with a warning.

    Returns:
        `(aligner or None, source)`, `source` one of `"prepared data"`, `"pretrained pipeline"`, `"none"`.
    """
    data_aligner = FlashSpeechAligner.from_pretrained(prepared_aligner_path).eval() if prepared_aligner_path else None
    if data_aligner is not None and same_latent_statistics:
        return aligner_in_vocabulary(data_aligner, data_tokenizer, tokenizer), "prepared data"
    if pretrained_aligner is not None:
        if data_aligner is not None:
            logger.warning(
                "Keeping the pretrained pipeline's aligner: the prepared data's aligner saw latents normalized with "
                "other statistics (prepare with --codec_name_or_path <pipeline>/codec --reuse_latent_statistics to use "
                "it)."
            )
        if len(tokenizer) > pretrained_aligner.config.vocab_size:
            pretrained_aligner.resize_token_embeddings(len(tokenizer))
            logger.warning(
                "The pretrained aligner's embedding was grown to the new phonemes; their rows are untrained."
            )
        return pretrained_aligner, "pretrained pipeline"
    if data_aligner is not None:
        logger.warning(
            "The prepared data's aligner saw latents normalized with other statistics than the pipeline's codec uses; "
            "its alignments may be off (prepare with --reuse_latent_statistics)."
        )
        return aligner_in_vocabulary(data_aligner, data_tokenizer, tokenizer), "prepared data"
    logger.warning(
        "Neither the prepared data nor a pretrained pipeline has an aligner: the saved pipeline has none, so "
        "`pipe.align`, voice conversion and editing need one passed to `from_pretrained(..., aligner=...)`."
    )
    return None, "none"


def lora_target_modules(model: nn.Module, requested: list[str] | None, component: str) -> list[str]:
    """
    Names of the modules of `model` that get LoRA adapters: the `requested` names (or name suffixes), by default every
    `nn.Linear` and `nn.Conv1d`. Projections inside `nn.MultiheadAttention` are never adapted (it reads their weights
    directly, bypassing an adapter's forward), nor dilated or grouped convolutions: peft builds a Conv1d adapter
    without the base layer's dilation and cannot merge a grouped one, so the merged model would differ from the
    trained one.
    """
    candidates = {n: m for n, m in model.named_modules() if type(m) in (nn.Linear, nn.Conv1d)}

    def supported(module):
        return tuple(getattr(module, "dilation", (1,))) == (1,) and getattr(module, "groups", 1) == 1

    if requested is None:
        return [n for n, m in candidates.items() if supported(m)]
    targets = [n for n in candidates if any(n == r or n.endswith("." + r) for r in requested)]
    if not targets:
        raise ValueError(
            f"--lora_target_modules {requested} matches no nn.Linear/nn.Conv1d of the {component}; it has "
            f"{sorted(candidates)}."
        )
    unsupported = [n for n in targets if not supported(candidates[n])]
    if unsupported:
        raise ValueError(
            f"--lora_target_modules selects dilated or grouped convolutions of the {component} ({unsupported}): peft's "
            "Conv1d LoRA ignores dilation and cannot merge grouped convolutions. Leave them out."
        )
    return targets


def add_lora_adapters(models: dict[str, nn.Module], args) -> dict:
    """Injects LoRA adapters (peft) into `models` in place; only the adapters stay trainable. Returns the PeftModels."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as err:
        raise ImportError("--use_lora needs `peft`: pip install 'flashspeech-hf[train]' (or peft).") from err
    requested = None
    if args.lora_target_modules:
        requested = [m.strip() for m in args.lora_target_modules.split(",") if m.strip()]
    peft_models = {}
    for name, model in models.items():
        config = LoraConfig(
            r=args.lora_rank,
            lora_alpha=args.lora_alpha if args.lora_alpha is not None else args.lora_rank,
            target_modules=lora_target_modules(model, requested, name),
        )
        peft_models[name] = get_peft_model(model, config)  # `model` itself now holds the adapters
    return peft_models


def build_discriminator(args, sampling_rate: int) -> FlashSpeechDiscriminator:
    head = {
        "input_sampling_rate": sampling_rate,
        "hidden_channels": args.discriminator_hidden_channels,
        "use_prompt_conditioning": not args.no_prompt_conditioning,
    }
    if args.slm_config is not None:
        return FlashSpeechDiscriminator(slm_config=dict(TINY_SLM_CONFIGS[args.slm_config]), **head)
    return FlashSpeechDiscriminator.from_slm_pretrained(args.slm_model_name_or_path or default_slm(), **head)


def check_resume_path(args) -> str | None:
    """
    Resolves `--resume_from_checkpoint` to a complete checkpoint folder (None: start fresh), or raises a clear error.

    `latest` is the highest-step complete checkpoint of `--output_dir` (see `checkpointing.checkpoint_problem`);
    incomplete ones, such as a save that a kill interrupted, are named in a warning and skipped.
    """
    if args.resume_from_checkpoint is None:
        return None
    if args.resume_from_checkpoint == "latest":
        path, skipped = latest_complete_checkpoint(args.output_dir)
        for torn, problem in skipped:
            logger.warning(f"Skipping the incomplete checkpoint {torn}: {problem}.")
        return path
    path = args.resume_from_checkpoint
    name = os.path.basename(os.path.normpath(path))
    if not os.path.isdir(path) or not name.startswith("checkpoint-") or not name.split("-")[-1].isdigit():
        raise ValueError(f"--resume_from_checkpoint {path} is not a checkpoint folder (checkpoint-<step>).")
    problem = checkpoint_problem(path)
    if problem is not None:
        raise ValueError(
            f"--resume_from_checkpoint {path} is not a complete Accelerate checkpoint: {problem}. Resume from another "
            "one (`--resume_from_checkpoint latest` picks the latest complete checkpoint)."
        )
    return path


# ----------------------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------------------


def load_validation_rows(path: str) -> list[dict[str, str]]:
    """Reads `--validation_file`: rows with `text` and `prompt_audio` (resolved against the CSV's folder)."""
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"text", "prompt_audio"} <= set(rows[0]):
        raise ValueError(f"--validation_file {path} needs a header with text,prompt_audio and at least one row.")
    root = os.path.dirname(os.path.abspath(path))
    for row in rows:
        row["prompt_audio"] = os.path.join(root, row["prompt_audio"])
        if not os.path.isfile(row["prompt_audio"]):
            raise ValueError(f"--validation_file {path}: prompt audio {row['prompt_audio']} does not exist.")
    return rows


@torch.no_grad()
def validate(
    pipe: FlashSpeechPipeline, rows: list[dict[str, str]], folder: str, asr_backend: str | None
) -> tuple[dict[str, float], list[np.ndarray | None]]:
    """
    Speaks each validation row with `pipe` (2 steps, seed = row index) and writes the audio to `folder`.

    Returns:
        `(logs, audios)`: `{"val_wer": ..., "val_seconds": ...}` (word error rate of `asr_backend` on the outputs) and
        each row's waveform `(num_samples,)`, None for a row the pipeline refused.
    """
    import soundfile as sf

    from flashspeech_hf.metrics import load_metric, transcribe

    pipe.set_progress_bar_config(disable=True)
    os.makedirs(folder, exist_ok=True)
    audios, errors = [], []
    for index, row in enumerate(rows):
        try:  # a row the pipeline refuses is reported, never a reason to stop training
            audio = pipe(row["text"], row["prompt_audio"], generator=torch.Generator().manual_seed(index)).audios[0]
        except ValueError as err:
            logger.warning(f"Validation row {index} failed: {err}")
            audios.append(None)
            errors.append(str(err))
            continue
        sf.write(os.path.join(folder, f"{index:03d}.wav"), audio, pipe.sampling_rate)
        audios.append(audio)
        errors.append(None)
    spoken = [a for a in audios if a is not None]
    texts = transcribe(spoken, sampling_rate=pipe.sampling_rate, backend=asr_backend) if spoken else []
    heard = iter(texts)
    texts = [None if a is None else next(heard) for a in audios]
    Path(folder, "transcripts.json").write_text(
        json.dumps([{"text": r["text"], "heard": t, "error": e} for r, t, e in zip(rows, texts, errors)], indent=1)
    )
    wer = load_metric("wer").compute(predictions=texts, references=[r["text"] for r in rows])["wer"]
    logs = {"val_wer": float(wer), "val_seconds": float(sum(len(a) for a in spoken) / pipe.sampling_rate)}
    return logs, audios


def log_mel_image(audio: np.ndarray, sampling_rate: int, num_mels: int = 80) -> np.ndarray:
    """
    The log-mel spectrogram of `audio` `(num_samples,)` as a grayscale image `(1, num_mels, num_frames)` in `[0, 1]`:
    80 dB of range, low frequencies at the bottom, 25 ms Hann windows every 10 ms.
    """
    from transformers.audio_utils import mel_filter_bank, spectrogram, window_function

    frame_length, hop = int(0.025 * sampling_rate), max(int(0.01 * sampling_rate), 1)
    n_fft = 1 << (frame_length - 1).bit_length()
    filters = mel_filter_bank(n_fft // 2 + 1, num_mels, 0.0, sampling_rate / 2, sampling_rate, mel_scale="slaney")
    db = spectrogram(
        np.asarray(audio, dtype=np.float32),
        window_function(frame_length, "hann"),
        frame_length=frame_length,
        hop_length=hop,
        fft_length=n_fft,
        power=2.0,
        mel_filters=filters,
        log_mel="dB",
        db_range=80.0,
    )
    image = (db - db.min()) / max(float(db.max() - db.min()), 1e-6)
    return np.ascontiguousarray(image[None, ::-1], dtype=np.float32)


def log_validation_media(
    accelerator: Accelerator,
    rows: list[dict[str, str]],
    audios: list[np.ndarray | None],
    sampling_rate: int,
    step: int,
) -> None:
    """Sends each validation clip and its log-mel spectrogram image to the trackers (TensorBoard, Weights & Biases)."""
    clips = [(index, audio) for index, audio in enumerate(audios) if audio is not None]
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            writer = tracker.writer
            for index, audio in clips:
                clip = torch.as_tensor(audio).clamp(-1.0, 1.0)[None]  # (1, num_samples)
                writer.add_audio(f"validation/{index:03d}", clip, step, sample_rate=sampling_rate)
                writer.add_image(f"validation_mel/{index:03d}", log_mel_image(audio, sampling_rate), step)
            writer.flush()
        elif tracker.name == "wandb":
            import wandb

            tracker.log(
                {
                    "validation": [
                        wandb.Audio(audio, sample_rate=sampling_rate, caption=rows[index]["text"])
                        for index, audio in clips
                    ],
                    "validation_mel": [
                        wandb.Image(log_mel_image(audio, sampling_rate)[0], caption=rows[index]["text"])
                        for index, audio in clips
                    ],
                },
                step=step,
            )


# ----------------------------------------------------------------------------------------------------------------
# Saving
# ----------------------------------------------------------------------------------------------------------------


def write_model_card(folder: str, args, summary: dict) -> None:
    template = MODEL_CARD_TEMPLATE.read_text(encoding="utf-8") if MODEL_CARD_TEMPLATE.is_file() else "# {model_name}\n"
    values = {
        "model_name": args.hub_model_id or os.path.basename(os.path.abspath(args.output_dir)),
        "base_model": args.pretrained_model_name_or_path or "none (trained from scratch)",
        "pipeline_config": args.pipeline_config or "from the base model",
        "stage": str(args.stage),
        "train_components": ", ".join(args.train_components),
        "max_train_steps": str(args.max_train_steps),
        "train_batch_size": str(args.train_batch_size),
        "gradient_accumulation_steps": str(args.gradient_accumulation_steps),
        "learning_rate": str(args.learning_rate),
        "adversarial_start_step": str(args.adversarial_start_step),
        "num_train_rows": str(summary.get("num_rows")),
        "language": summary.get("language", ""),
        "final_losses": json.dumps(summary.get("final_losses", {})),
    }
    text = template
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    Path(folder, "README.md").write_text(text, encoding="utf-8")


def save_lora_adapters(peft_models: dict, output_dir: str) -> None:
    """Saves each PeftModel's adapter (peft format) to `output_dir/lora/<component>/`, replacing an older `lora/`."""
    tmp = tempfile.mkdtemp(prefix=".lora-", dir=output_dir)
    try:
        for name, peft_model in peft_models.items():
            peft_model.save_pretrained(os.path.join(tmp, name))
        target = os.path.join(output_dir, "lora")
        if os.path.isdir(target):
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save_pipeline_atomically(pipe: FlashSpeechPipeline, output_dir: str, args, summary: dict) -> None:
    """Writes the pipeline to a temporary folder, then moves it into `output_dir` with `model_index.json` last."""
    os.makedirs(output_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".pipeline-", dir=output_dir)
    try:
        pipe.save_pretrained(tmp)
        write_model_card(tmp, args, summary)
        index = os.path.join(output_dir, "model_index.json")
        if os.path.exists(index):
            os.remove(index)
        for name in sorted(os.listdir(tmp), key=lambda n: n == "model_index.json"):
            target = os.path.join(output_dir, name)
            if os.path.isdir(target):
                shutil.rmtree(target)
            os.replace(os.path.join(tmp, name), target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------


def main(args_list: list[str] | None = None) -> dict:
    """
    Runs training. Returns a summary dict (`global_step`, `loss_history`: one dict of losses per optimizer step,
    `unknown_phonemes`, `output_dir`) for in-process callers such as tests.
    """
    args = parse_args(args_list)
    os.makedirs(args.output_dir, exist_ok=True)
    logging_dir = Path(args.output_dir, args.logging_dir)
    precision_note = None
    if args.mixed_precision == "auto":
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
        args.mixed_precision, precision_note = resolve_mixed_precision("auto", device_type)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=args.output_dir, logging_dir=str(logging_dir)),
    )
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    if precision_note is not None:
        logger.warning(precision_note)
    logger.info(f"Mixed precision: {accelerator.mixed_precision} (--mixed_precision).")
    if args.allow_tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
    set_seed(args.seed)
    num_threads = args.num_threads or idle_cpu_count()
    torch.set_num_threads(num_threads)
    logger.info(f"Using {num_threads} torch CPU thread(s) (--num_threads).")

    # ---------------- data, tokenizer, codec, models: every check happens here, before any step
    prepared_data = load_prepared_dataset(args.prepared_dataset_dir)
    dataset, data_tokenizer, codec = prepared_data.dataset, prepared_data.tokenizer, prepared_data.codec
    resume_path = check_resume_path(args)
    validation_rows = load_validation_rows(args.validation_file) if args.validation_file else None
    if validation_rows and accelerator.is_main_process:
        from flashspeech_hf.metrics.asr import load_recognizer

        # the judge loads now: a backend that cannot load (e.g. a Hub model offline) fails before the first step
        load_recognizer(args.validation_asr_backend)
    pipe = build_pipeline(args, data_tokenizer, codec)
    tokenizer = pipe.tokenizer
    if args.language is not None:
        tokenizer.language = args.language
        tokenizer.init_kwargs["language"] = args.language
    latent_dim = dataset.features["latents"].shape[1] if hasattr(dataset.features["latents"], "shape") else None
    if latent_dim is None:
        latent_dim = len(dataset[0]["latents"][0])
    if latent_dim != pipe.denoiser.config.latent_dim or latent_dim != pipe.codec.latent_dim:
        raise ValueError(
            f"The dataset's latents have {latent_dim} channels but the model expects {pipe.denoiser.config.latent_dim} "
            f"(codec {pipe.codec.latent_dim}): prepare the data with the model's codec."
        )
    same_latent_statistics = True
    if args.pretrained_model_name_or_path is not None:

        def public(config):
            return {k: v for k, v in dict(config).items() if not k.startswith("_")}

        if type(pipe.codec) is not type(codec) or public(pipe.codec.config) != public(codec.config):
            raise ValueError("The dataset was prepared with another codec than the pretrained pipeline's.")
        # Latents were normalized with the prepared codec's statistics; re-express them in the pipeline's.
        same_latent_statistics = torch.equal(pipe.codec.latent_mean, codec.latent_mean) and torch.equal(
            pipe.codec.latent_std, codec.latent_std
        )
        if not same_latent_statistics:
            scale = (codec.latent_std / pipe.codec.latent_std).numpy()
            shift = ((codec.latent_mean - pipe.codec.latent_mean) / pipe.codec.latent_std).numpy()
            # `latents` and, where the data has one, the prompt's channel twin (an empty twin stays empty)
            renormalized = [c for c in ("latents", PROMPT_CHANNEL_COLUMN) if c in dataset.column_names]
            with accelerator.main_process_first():  # the main process writes datasets' cache, the others read it
                dataset = dataset.map(
                    lambda ex: {c: np.asarray(ex[c]) * scale + shift for c in renormalized}, desc="Renormalizing"
                )
    with accelerator.main_process_first():
        dataset, unknown, added = remap_vocabulary(dataset, data_tokenizer, tokenizer, args.extend_vocabulary)
    if unknown and not added:
        logger.warning(
            f"{sum(unknown.values())} phoneme occurrences ({len(unknown)} symbols) are not in the vocabulary and train "
            f"as {tokenizer.unk_token!r}: {dict(unknown.most_common(20))}. Pass --extend_vocabulary to add them."
        )
    if len(tokenizer) > pipe.prior_encoder.config.vocab_size:
        pipe.prior_encoder.resize_token_embeddings(len(tokenizer))
        logger.info(f"Added {len(added)} phonemes; the phoneme embedding now has {len(tokenizer)} rows.")
    aligner_log = prepared_data.config.get("aligner") or {}
    if args.pretrained_model_name_or_path is not None and durations_from_another_aligner(
        prepared_data.aligner_path, pipe.aligner
    ):
        if aligner_log.get("pretrained"):  # trained further from a given aligner on purpose
            logger.info(
                f"The prepared durations come from an aligner trained {aligner_log.get('steps')} steps further from "
                f"{aligner_log['pretrained']}."
            )
        else:
            logger.warning(
                "The prepared durations come from another aligner than the pretrained pipeline's: fine-tuning on "
                "different phoneme boundaries can cost the model its intelligibility. Prepare the data with "
                f"--aligner_name_or_path {args.pretrained_model_name_or_path} --codec_name_or_path "
                f"{args.pretrained_model_name_or_path}/codec --reuse_latent_statistics to keep the pipeline's aligner "
                "(and --aligner_steps N to train it further on the new data)."
            )
    aligner, aligner_source = select_aligner(
        prepared_data.aligner_path,
        pipe.aligner if args.pretrained_model_name_or_path is not None else None,  # else a random one
        data_tokenizer,
        tokenizer,
        same_latent_statistics,
    )
    if args.max_train_frames is not None:
        with accelerator.main_process_first():
            dataset = dataset.filter(lambda n: len(n) <= args.max_train_frames, input_columns="log_pitch")
        if len(dataset) == 0:
            raise ValueError(f"No utterance has at most --max_train_frames={args.max_train_frames} frames.")
    num_rows = len(dataset)
    dataset = dataset.add_column("row_id", list(range(num_rows)))
    # rows as tensors: collating python lists took 4x longer (13 of a demo step's ~350 ms on one thread)
    tensor_columns = [
        c
        for c in ("input_ids", "latents", "log_pitch", "durations", "row_id", PROMPT_CHANNEL_COLUMN)
        if c in dataset.column_names
    ]
    if PROMPT_CHANNEL_COLUMN in dataset.column_names:
        twins = dataset.select_columns([PROMPT_CHANNEL_COLUMN]).with_format("numpy")[PROMPT_CHANNEL_COLUMN]
        with_twin = sum(len(twin) > 0 for twin in twins)
        logger.info(
            f"{with_twin} of {num_rows} rows cut their prompt from another channel's latents "
            f"(`{PROMPT_CHANNEL_COLUMN}`); the others from their own."
        )
    dataset = dataset.with_format("torch", columns=tensor_columns, output_all_columns=True)
    if args.streaming:
        num_shards = max(accelerator.num_processes, min(num_rows, 8 * accelerator.num_processes))
        dataset = dataset.to_iterable_dataset(num_shards=num_shards)
    # Each process trains on its own part of the data (streaming or not); steps are counted, not epochs.
    dataset = split_dataset_by_node(dataset, rank=accelerator.process_index, world_size=accelerator.num_processes)

    codec, scheduler = pipe.codec, pipe.scheduler
    curriculum_kwargs = {"s0": args.s0, "s1": args.s1 if args.s1 is not None else (160 if args.stage == 2 else None)}
    ct_curriculum = ConsistencyTrainingCurriculum.from_scheduler(
        scheduler,
        total_training_steps=args.curriculum_total_steps or args.max_train_steps,  # K, given once
        **{k: v for k, v in curriculum_kwargs.items() if v is not None},
    )
    if args.consistency_schedule == "ect":
        ct_curriculum = EasyConsistencyTuningSchedule.from_scheduler(
            scheduler,
            total_training_steps=args.curriculum_total_steps or args.max_train_steps,
            num_stages=args.ect_num_stages,
            q=args.ect_q,
            p_mean=args.denoising_p_mean,
            p_std=args.denoising_p_std,
            max_sigma_fraction=args.denoising_max_sigma_fraction,
        )

    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)
    model = FlashSpeechTrainingModule(
        pipe.prior_encoder,
        pipe.prosody_generator,
        pipe.denoiser,
        codec,
        ct_curriculum,
        TrainingLossConfig.from_args(args),
        train_components=args.train_components,
        pad_token_id=tokenizer.pad_token_id,
        weight_dtype=weight_dtype,
        scheduler=scheduler,
    )
    trained = model.train_components
    # LoRA: adapters injected into the models in place (their base weights frozen); `peft_models` save and merge them
    peft_models = add_lora_adapters({n: model.components[n] for n in trained}, args) if args.use_lora else {}
    use_adv = args.stage == 1 and args.adversarial_start_step is not None and "denoiser" in trained
    if use_adv:
        model.adaptive_weight_parameter()  # raises now if LoRA left nothing trainable at the denoiser's last layer
    discriminator = build_discriminator(args, codec.sampling_rate) if use_adv else None
    model.to(accelerator.device).train()
    if args.torch_compile_backend is not None:
        model.denoiser.compile(backend=args.torch_compile_backend, dynamic=True)
    if weight_dtype != torch.float32:
        for frozen in [codec] + [m for n, m in model.components.items() if n not in trained]:
            frozen.to(dtype=weight_dtype)

    # ---------------- checkpoint hooks: checkpoints hold one diffusers-format folder per trained model
    def save_model_hook(hook_models, weights, output_dir):
        if accelerator.is_main_process:
            for hooked in hook_models:
                unwrapped = accelerator.unwrap_model(hooked)
                if isinstance(unwrapped, FlashSpeechTrainingModule):
                    for name in unwrapped.train_components:
                        if name in peft_models:  # only the adapter: the base weights stay the pretrained ones
                            peft_models[name].save_pretrained(os.path.join(output_dir, name))
                        else:
                            unwrapped.components[name].save_pretrained(os.path.join(output_dir, name))
                else:
                    unwrapped.save_pretrained(os.path.join(output_dir, "discriminator"))
                if weights:
                    weights.pop()

    def load_component(component: nn.Module, name: str, input_dir: str) -> None:
        folder = os.path.join(input_dir, name)
        if not os.path.isdir(folder):
            raise ValueError(
                f"The checkpoint {input_dir} has no {name}/ folder: it was saved by a run that did not train the "
                f"{name} (resume with that run's --stage and --train_components)."
            )
        if name in peft_models:
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            adapter = load_file(os.path.join(folder, "adapter_model.safetensors"))
            result = set_peft_model_state_dict(peft_models[name], adapter)
            if result.unexpected_keys:
                raise ValueError(f"The checkpoint's {name} adapter does not fit: {result.unexpected_keys[:5]}")
            return
        loaded = type(component).from_pretrained(folder)
        component.register_to_config(**loaded.config)
        component.load_state_dict(loaded.state_dict())
        del loaded

    def load_model_hook(hook_models, input_dir):
        while hook_models:
            unwrapped = accelerator.unwrap_model(hook_models.pop())
            if isinstance(unwrapped, FlashSpeechTrainingModule):
                for name in unwrapped.train_components:
                    load_component(unwrapped.components[name], name, input_dir)
            else:
                load_component(unwrapped, "discriminator", input_dir)

    accelerator.register_save_state_pre_hook(save_model_hook)
    accelerator.register_load_state_pre_hook(load_model_hook)

    # ---------------- optimizers: the parameters in component order, as checkpoints of earlier versions hold them
    params = model.trainable_parameters()
    # the fused kernel: one pass per parameter (the per-tensor loop took 2.5x longer on a CPU); same state dict
    fused = accelerator.device.type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW(
        params,
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay,
        eps=args.adam_epsilon,
        fused=fused,
    )
    lr_scheduler = get_scheduler(
        args.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=args.max_train_steps * accelerator.num_processes,
    )
    model, optimizer, lr_scheduler = accelerator.prepare(model, optimizer, lr_scheduler)
    raw_model = accelerator.unwrap_model(model)
    raw_discriminator = discriminator
    if discriminator is not None:
        discriminator.to(accelerator.device)
        d_optimizer = torch.optim.AdamW(
            discriminator.trainable_parameters(),
            lr=args.discriminator_learning_rate,
            betas=(args.adam_beta1, args.adam_beta2),
            weight_decay=args.adam_weight_decay,
            eps=args.adam_epsilon,
            fused=fused,
        )
        discriminator, d_optimizer = accelerator.prepare(discriminator, d_optimizer)

    if accelerator.is_main_process and args.report_to != "none":
        config = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in vars(args).items()}
        accelerator.init_trackers(args.tracker_project_name, config=config)

    total_batch_size = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info("***** Running training *****")
    logger.info(f"  Stage = {args.stage}, training {trained}; rows = {num_rows}")
    logger.info(f"  Total batch size (parallel, accumulation) = {total_batch_size}")
    logger.info(f"  Total optimization steps = {args.max_train_steps}")

    global_step = 0
    if resume_path is not None:
        accelerator.print(f"Resuming from checkpoint {resume_path}")
        accelerator.load_state(resume_path)
        global_step = int(os.path.basename(os.path.normpath(resume_path)).split("-")[1])
    elif args.resume_from_checkpoint is not None:
        accelerator.print("No checkpoint to resume from; starting a new run.")

    batches = infinite_batches(
        dataset, args, tokenizer.pad_token_id, skip=global_step * args.gradient_accumulation_steps
    )
    # reseeded at every step from (seed, process, step): a resumed run draws what the uninterrupted run drew
    generator = torch.Generator()
    progress_bar = tqdm(
        range(args.max_train_steps), initial=global_step, desc="Steps", disable=not accelerator.is_local_main_process
    )
    loss_history: list[dict[str, float]] = []
    seen_rows: list[int] = []
    start_time, start_cpu, frames_trained = time.perf_counter(), time.process_time(), 0
    step_end_seconds, step_end_cpu_seconds = [], []
    deadline = None if args.max_train_minutes is None else start_time + 60.0 * args.max_train_minutes
    out_of_time = False

    while global_step < args.max_train_steps:
        step_logs: dict[str, torch.Tensor] = collections.defaultdict(float)
        generator.manual_seed(args.seed * 1_000_003 + accelerator.process_index * 7919 + global_step)
        for _ in range(args.gradient_accumulation_steps):
            batch = {k: v.to(accelerator.device) for k, v in next(batches).items()}
            if args.log_sample_ids:
                seen_rows.extend(batch["row_id"].tolist())
            frames_trained += int(batch["latent_mask"].sum())
            with accelerator.accumulate(model, *([discriminator] if discriminator is not None else [])):
                with (
                    accelerator.autocast(),
                    lower_precision_attention(accelerator.device.type, accelerator.mixed_precision),
                ):
                    output = model(batch, step=global_step, generator=generator, discriminator=raw_discriminator)
                losses = dict(output.losses, loss=output.loss)
                # with the adversarial loss, the generator's backward must not reach the discriminator's heads
                accelerator.backward(output.loss, inputs=params if output.adversarial is not None else None)
                if accelerator.sync_gradients and args.max_grad_norm:
                    accelerator.clip_grad_norm_(params, args.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                if output.adversarial is not None:
                    with (
                        accelerator.autocast(),
                        lower_precision_attention(accelerator.device.type, accelerator.mixed_precision),
                    ):
                        losses["discriminator_loss"] = discriminator_step_loss(discriminator, output.adversarial)
                    accelerator.backward(losses["discriminator_loss"])
                    d_optimizer.step()
                    d_optimizer.zero_grad(set_to_none=True)
            for k, v in losses.items():
                step_logs[k] += torch.as_tensor(v).detach().float() / args.gradient_accumulation_steps
        # the logged losses are the means over processes (each process computes the same names)
        names = sorted(step_logs)
        means = accelerator.reduce(torch.stack([step_logs[k] for k in names]).to(accelerator.device), "mean")
        step_logs = dict(zip(names, means.tolist()))
        if not math.isfinite(step_logs["loss"]):
            raise FloatingPointError(f"The loss became {step_logs['loss']} at step {global_step}.")
        global_step += 1
        step_end_seconds.append(time.perf_counter() - start_time)
        step_end_cpu_seconds.append(time.process_time() - start_cpu)
        progress_bar.update(1)
        step_logs["lr"] = lr_scheduler.get_last_lr()[0]
        if args.consistency_schedule == "ect":
            step_logs["ect_stage"] = ct_curriculum.stage(global_step - 1)
        else:
            step_logs["num_discretization_steps"] = ct_curriculum.num_discretization_steps(global_step - 1)
        loss_history.append(dict(step_logs))
        progress_bar.set_postfix(loss=step_logs["loss"], lr=step_logs["lr"])
        accelerator.log(dict(step_logs), step=global_step)

        if deadline is not None:  # stop when any process is out of time, so that all stop at the same step
            late = torch.tensor(float(time.perf_counter() >= deadline), device=accelerator.device)
            out_of_time = bool(accelerator.reduce(late, "max") > 0)
        last_step = global_step == args.max_train_steps or out_of_time
        if global_step % args.checkpointing_steps == 0 or last_step:
            # crash-safe: written aside and renamed into place; older checkpoints pruned only once it is complete
            save_path = save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
            logger.info(f"Saved state to {save_path}")

        if validation_rows and accelerator.is_main_process and (global_step % args.validation_steps == 0 or last_step):
            current = {name: component.eval() for name, component in raw_model.components.items()}
            pipe_now = FlashSpeechPipeline(tokenizer=tokenizer, codec=codec, scheduler=scheduler, **current)
            folder = os.path.join(args.output_dir, "validation", f"step-{global_step}")
            val_logs, audios = validate(pipe_now, validation_rows, folder, args.validation_asr_backend)
            model.train()
            loss_history[-1].update(val_logs)
            accelerator.log(val_logs, step=global_step)
            log_validation_media(accelerator, validation_rows, audios, pipe_now.sampling_rate, global_step)
            logger.info(f"Validation at step {global_step}: {val_logs}")
        if out_of_time:
            logger.info(f"Stopping at step {global_step}: --max_train_minutes {args.max_train_minutes} is spent.")
            break

    elapsed = time.perf_counter() - start_time
    if args.log_sample_ids:
        rows_file = Path(args.output_dir, f"sample_ids_rank{accelerator.process_index}.json")
        rows_file.write_text(json.dumps(seen_rows))
    accelerator.wait_for_everyone()
    summary = {
        "global_step": global_step,
        "loss_history": loss_history,
        "unknown_phonemes": dict(unknown),
        "added_phoneme_ids": added,
        "num_rows": num_rows,
        "language": tokenizer.language,
        "frames_per_second": frames_trained / max(elapsed, 1e-9),
        "train_seconds": elapsed,
        "frames_trained": frames_trained,
        "step_end_seconds": step_end_seconds,  # wall time from the first step's start to each step's end
        "step_end_cpu_seconds": step_end_cpu_seconds,  # the same in this process's CPU time (all its threads)
        "aligner": aligner_source,
        "num_trainable_parameters": sum(p.numel() for p in params),
        "lora_adapters": {n: os.path.join(args.output_dir, "lora", n) for n in peft_models},
        "final_losses": {k: round(v, 5) for k, v in (loss_history[-1] if loss_history else {}).items()},
        "output_dir": args.output_dir,
    }
    if accelerator.is_main_process:
        final = {name: component.eval() for name, component in raw_model.components.items()}
        if peft_models:
            save_lora_adapters(peft_models, args.output_dir)
            final.update({n: peft_model.merge_and_unload().eval() for n, peft_model in peft_models.items()})
        if weight_dtype != torch.float32:
            for model in (*final.values(), codec):
                model.to(torch.float32)
        pipeline = FlashSpeechPipeline(tokenizer=tokenizer, codec=codec, scheduler=scheduler, aligner=aligner, **final)
        save_pipeline_atomically(pipeline, args.output_dir, args, summary)
        logger.info(f"Saved the pipeline to {args.output_dir}")
        if args.push_to_hub:
            repo_id = create_repo(repo_id=args.hub_model_id, exist_ok=True, token=args.hub_token).repo_id
            upload_folder(
                repo_id=repo_id,
                folder_path=args.output_dir,
                commit_message=f"FlashSpeech stage {args.stage}, step {global_step}",
                ignore_patterns=["checkpoint-*", f"{args.logging_dir}/*", ".pipeline-*", "sample_ids_rank*"],
                token=args.hub_token,
            )
    accelerator.end_training()
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
