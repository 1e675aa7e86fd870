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
"""Shared data helpers of the training scripts: the prepared-dataset format, loading it, batching and collating.

`prepare_dataset.py` writes an output folder that `train_flashspeech.py` reads:

```
OUT/
  dataset/              datasets.Dataset (save_to_disk), one row per kept utterance, columns PREPARED_COLUMNS
  tokenizer/            FlashSpeechTokenizer.save_pretrained
  codec/                codec.save_pretrained, latent statistics set so that normalized latents have std sigma_data
  aligner/              the trained FlashSpeechAligner (absent when the durations came from a dataset column)
  prepare_config.json   arguments, counts and statistics of the run; written last
  cache/                datasets' cache files of the run (reused by a re-run with the same arguments)
```

A prepared dataset may carry one optional column more, `PROMPT_CHANNEL_COLUMN` (`prompt_channel_latents`, written by
`prepare_dataset.py --prompt_channel_copies_from`): the latents of the same utterance through another recording
channel, frame-aligned with `latents`, of which training cuts the prompt while the target stays clean (the prompt-only
variant of channel augmentation: the model learns to ignore the prompt's channel). A row without such a twin holds an
empty array (0 frames) there, and its prompt comes from `latents` as in a dataset without the column.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Array2D, Dataset, Features, List, Value, load_from_disk

from flashspeech_hf import DacCodec, EncodecCodec, FlashSpeechTokenizer, MelCodec

PREPARED_COLUMNS = ("input_ids", "latents", "log_pitch", "durations", "text", "speaker_id", "num_frames")
PROMPT_CHANNEL_COLUMN = "prompt_channel_latents"
PREPARE_CONFIG_NAME = "prepare_config.json"
CODEC_CLASSES = {cls.__name__: cls for cls in (MelCodec, EncodecCodec, DacCodec)}
TRANSFORMERS_CODECS = {"encodec": EncodecCodec, "dac": DacCodec}


def prepared_features(latent_dim: int, prompt_channel: bool = False) -> Features:
    """
    The `datasets.Features` of a prepared dataset.

    Args:
        latent_dim (`int`): Number of codec latent channels `C`.
        prompt_channel (`bool`, defaults to `False`): Add the optional `PROMPT_CHANNEL_COLUMN`.

    Returns:
        `datasets.Features` with `input_ids` (`int32` list, `L` phoneme ids), `latents` (`Array2D` of shape
        `(num_frames, C)`, float32, normalized), `log_pitch` (float32 list of `num_frames` values of `ln F0`),
        `durations` (`int32` list of `L` frame counts summing to `num_frames`), `text`, `speaker_id` (strings) and
        `num_frames` (`int64`); with `prompt_channel`, `prompt_channel_latents` (`Array2D` of shape `(num_frames, C)`
        like `latents`, or `(0, C)` for a row without a channel twin).
    """
    features = {
        "input_ids": List(Value("int32")),
        "latents": Array2D(shape=(None, int(latent_dim)), dtype="float32"),
        "log_pitch": List(Value("float32")),
        "durations": List(Value("int32")),
        "text": Value("string"),
        "speaker_id": Value("string"),
        "num_frames": Value("int64"),
    }
    if prompt_channel:
        features[PROMPT_CHANNEL_COLUMN] = Array2D(shape=(None, int(latent_dim)), dtype="float32")
    return Features(features)


def load_codec(name_or_path: str | os.PathLike, **kwargs) -> MelCodec | EncodecCodec | DacCodec:
    """
    Loads a codec of this library from a saved codec folder, the `codec/` folder of a saved pipeline or prepared
    dataset, or a transformers EnCodec/DAC checkpoint (folder or Hub id).

    Args:
        name_or_path (`str` or `os.PathLike`): A folder or a Hub id.
        kwargs: Passed to `from_pretrained` / `from_transformers` (`revision`, `cache_dir`, ...).

    Returns:
        The codec, in evaluation mode.

    Examples:

    ```py
    >>> from data_utils import load_codec

    >>> codec = load_codec("prepared/codec")  # doctest: +SKIP
    >>> codec = load_codec("facebook/encodec_24khz")  # doctest: +SKIP
    ```
    """
    name_or_path = os.fspath(name_or_path)
    if os.path.isdir(name_or_path):
        config_path = os.path.join(name_or_path, "config.json")
        if not os.path.isfile(config_path):
            for sub in ("codec",):  # a saved pipeline or a prepared dataset
                if os.path.isfile(os.path.join(name_or_path, sub, "config.json")):
                    return load_codec(os.path.join(name_or_path, sub), **kwargs)
            raise ValueError(f"{name_or_path} holds no codec: no config.json (nor codec/config.json) in it.")
        subfolder = None
    else:
        from huggingface_hub import hf_hub_download

        subfolder = None
        try:
            config_path = hf_hub_download(name_or_path, "config.json", **kwargs)
        except Exception:
            try:
                config_path = hf_hub_download(name_or_path, "config.json", subfolder="codec", **kwargs)
                subfolder = "codec"
            except Exception as err:
                raise ValueError(
                    f"Could not find a codec at {name_or_path!r}: neither a local folder nor a Hub repository with a "
                    f"config.json ({err})."
                ) from err
    with open(config_path, encoding="utf-8") as handle:
        config = json.load(handle)
    class_name = config.get("_class_name")
    if class_name in CODEC_CLASSES:
        extra = {"subfolder": subfolder} if subfolder else {}
        return CODEC_CLASSES[class_name].from_pretrained(name_or_path, **extra, **kwargs).eval()
    model_type = config.get("model_type")
    if model_type in TRANSFORMERS_CODECS:
        return TRANSFORMERS_CODECS[model_type].from_transformers(name_or_path, **kwargs).eval()
    raise ValueError(
        f"{name_or_path!r} is not a codec this library reads: its config has `_class_name`={class_name!r} and "
        f"`model_type`={model_type!r}; expected one of {sorted(CODEC_CLASSES)} or a transformers model of type "
        f"{sorted(TRANSFORMERS_CODECS)}."
    )


@dataclass
class PreparedData:
    """
    A prepared dataset and the components it was made with.

    Args:
        dataset (`datasets.Dataset`): Rows with the columns `PREPARED_COLUMNS` (and, optionally,
            `PROMPT_CHANNEL_COLUMN`).
        tokenizer ([`FlashSpeechTokenizer`]): The tokenizer that made `input_ids`.
        codec: The codec whose normalized latents are in `dataset` (its latent statistics set).
        config (`dict`): The content of `prepare_config.json` (arguments, counts, `sigma_data`, ...).
        aligner_path (`str`, *optional*): Folder of the trained aligner, when there is one.
    """

    dataset: Dataset
    tokenizer: FlashSpeechTokenizer
    codec: Any
    config: dict = field(default_factory=dict)
    aligner_path: str | None = None


def load_prepared_dataset(path: str | os.PathLike, load_codec_weights: bool = True) -> PreparedData:
    """
    Loads the output folder of `prepare_dataset.py` and checks that it is complete and follows the format.

    Args:
        path (`str` or `os.PathLike`): The `--output_dir` of `prepare_dataset.py`.
        load_codec_weights (`bool`, defaults to `True`): Load the codec (set `False` to skip it and get `codec=None`).

    Returns:
        [`PreparedData`]

    Examples:

    ```py
    >>> from data_utils import load_prepared_dataset

    >>> prepared = load_prepared_dataset("prepared")  # doctest: +SKIP
    >>> row = prepared.dataset.with_format("torch")[0]
    >>> row["latents"].shape  # (num_frames, latent_dim)
    ```
    """
    path = Path(path)
    for sub in ("dataset", "tokenizer", "codec"):
        if not (path / sub).is_dir():
            raise ValueError(f"{path} is not a prepared dataset: it has no {sub}/ folder (run prepare_dataset.py).")
    config_path = path / PREPARE_CONFIG_NAME
    if not config_path.is_file():
        raise ValueError(
            f"{path} is not a finished prepared dataset: {PREPARE_CONFIG_NAME} is missing (run prepare_dataset.py)."
        )
    config = json.loads(config_path.read_text(encoding="utf-8"))
    state_path = path / "dataset" / "state.json"
    if state_path.is_file() and not json.loads(state_path.read_text(encoding="utf-8")).get("_data_files", [None]):
        raise ValueError(f"The prepared dataset {path / 'dataset'} is empty (it has no data files).")
    dataset = load_from_disk(str(path / "dataset"))
    if not isinstance(dataset, Dataset):
        raise ValueError(f"{path / 'dataset'} must hold one datasets.Dataset, got {type(dataset).__name__}.")
    missing = [column for column in PREPARED_COLUMNS if column not in dataset.column_names]
    if missing:
        raise ValueError(f"The prepared dataset at {path} lacks the columns {missing}.")
    if len(dataset) == 0:
        raise ValueError(f"The prepared dataset {path / 'dataset'} is empty.")
    if PROMPT_CHANNEL_COLUMN in dataset.column_names:
        shapes = [getattr(dataset.features[c], "shape", (None, None))[1] for c in ("latents", PROMPT_CHANNEL_COLUMN)]
        if shapes[0] != shapes[1]:
            raise ValueError(
                f"The prepared dataset at {path} has {shapes[0]} latent channels in `latents` but {shapes[1]} in "
                f"`{PROMPT_CHANNEL_COLUMN}`."
            )
    tokenizer = FlashSpeechTokenizer.from_pretrained(str(path / "tokenizer"))
    codec = load_codec(path / "codec") if load_codec_weights else None
    if codec is not None:
        latent_dim = dataset.features["latents"].shape[1]
        if codec.latent_dim != latent_dim:
            raise ValueError(f"The codec has {codec.latent_dim} latent channels but the dataset {latent_dim}.")
    aligner_path = str(path / "aligner") if (path / "aligner").is_dir() else None
    return PreparedData(dataset=dataset, tokenizer=tokenizer, codec=codec, config=config, aligner_path=aligner_path)


def _as_tensor(value: Any, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.to(dtype)
    return torch.as_tensor(np.asarray(value), dtype=dtype)


def collate_prepared(examples: Sequence[dict[str, Any]], pad_token_id: int = 0) -> dict[str, Any]:
    """
    Pads rows of a prepared dataset into a batch (right padding, boolean masks with True = valid).

    Only the columns present in the rows are collated: `input_ids`, `latents`, `log_pitch` and `durations` are
    optional, so that the function also batches a dataset before its durations are known.

    Args:
        examples (`list[dict]`): Rows, as returned by a `datasets.Dataset` in python, numpy or torch format.
        pad_token_id (`int`, defaults to 0): Padding id of `input_ids` (`tokenizer.pad_token_id`).

    Returns:
        `dict` with, for the columns present:
        - `input_ids` (`torch.LongTensor` of shape `(batch_size, max_phonemes)`) and `attention_mask`
          (`torch.BoolTensor`, same shape);
        - `latents` (`torch.FloatTensor` of shape `(batch_size, latent_dim, max_frames)`) and `latent_mask`
          (`torch.BoolTensor` of shape `(batch_size, max_frames)`);
        - `log_pitch` (`torch.FloatTensor` of shape `(batch_size, max_frames)`, 0 on padding);
        - `prompt_channel_latents` (`torch.FloatTensor` of shape `(batch_size, latent_dim, max_frames)`) and
          `has_prompt_channel` (`torch.BoolTensor` of shape `(batch_size,)`), when the rows carry
          `PROMPT_CHANNEL_COLUMN`: each row's channel twin, or a copy of its `latents` where it has none (0 frames);
        - `durations` (`torch.LongTensor` of shape `(batch_size, max_phonemes)`, 0 on padding);
        - `row_id` (`torch.LongTensor` of shape `(batch_size,)`), when the rows carry one (training scripts add it to
          record which rows each process saw);
        - `text` and `speaker_id` (`list[str]`).

    Raises:
        `ValueError`: When a row's `durations` do not sum to its number of latent frames, its `log_pitch` does not
        have one value per frame, or its `prompt_channel_latents` (when not empty) have another shape than its
        `latents`.

    Examples:

    ```py
    >>> import torch
    >>> from data_utils import collate_prepared

    >>> rows = [
    ...     {"input_ids": [5, 6, 7], "latents": torch.zeros(9, 4), "durations": [3, 3, 3]},
    ...     {"input_ids": [5, 6], "latents": torch.zeros(5, 4), "durations": [2, 3]},
    ... ]
    >>> batch = collate_prepared(rows)
    >>> batch["latents"].shape, batch["latent_mask"].sum(1).tolist()
    (torch.Size([2, 4, 9]), [9, 5])
    ```
    """
    if not examples:
        raise ValueError("`examples` is empty.")
    batch: dict[str, Any] = {}
    if "input_ids" in examples[0]:
        ids = [_as_tensor(e["input_ids"], torch.long) for e in examples]
        lengths = torch.tensor([len(x) for x in ids])
        batch["input_ids"] = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=pad_token_id)
        batch["attention_mask"] = torch.arange(int(lengths.max())) < lengths[:, None]
        if "durations" in examples[0]:
            durations = [_as_tensor(e["durations"], torch.long) for e in examples]
            if any(len(d) != len(x) for d, x in zip(durations, ids)):
                raise ValueError("Every row needs as many `durations` as `input_ids`.")
            batch["durations"] = torch.nn.utils.rnn.pad_sequence(durations, batch_first=True)
    if "latents" in examples[0]:
        latents = [_as_tensor(e["latents"], torch.float32) for e in examples]  # each (num_frames, latent_dim)
        if any(x.ndim != 2 for x in latents):
            raise ValueError("Each row's `latents` must have shape (num_frames, latent_dim).")
        frames = torch.tensor([x.shape[0] for x in latents])
        batch["latents"] = torch.nn.utils.rnn.pad_sequence(latents, batch_first=True).transpose(1, 2).contiguous()
        batch["latent_mask"] = torch.arange(int(frames.max())) < frames[:, None]
        if "log_pitch" in examples[0]:
            pitch = [_as_tensor(e["log_pitch"], torch.float32) for e in examples]
            if any(len(p) != n for p, n in zip(pitch, frames.tolist())):
                raise ValueError("Every row needs one `log_pitch` value per latent frame.")
            batch["log_pitch"] = torch.nn.utils.rnn.pad_sequence(pitch, batch_first=True)
        if "durations" in batch and torch.any(batch["durations"].sum(1) != frames):
            raise ValueError("Every row's `durations` must sum to its number of latent frames.")
        if PROMPT_CHANNEL_COLUMN in examples[0]:
            twins = [e.get(PROMPT_CHANNEL_COLUMN) for e in examples]
            twins = [None if t is None else _as_tensor(t, torch.float32) for t in twins]
            present = [t is not None and t.numel() > 0 for t in twins]
            if any(p and t.shape != x.shape for p, t, x in zip(present, twins, latents)):
                raise ValueError(
                    f"Every row's `{PROMPT_CHANNEL_COLUMN}` must be empty or have the shape of its `latents` "
                    "(num_frames, latent_dim)."
                )
            twins = [t if p else x for p, t, x in zip(present, twins, latents)]
            batch[PROMPT_CHANNEL_COLUMN] = (
                torch.nn.utils.rnn.pad_sequence(twins, batch_first=True).transpose(1, 2).contiguous()
            )
            batch["has_prompt_channel"] = torch.tensor(present, dtype=torch.bool)
    if "row_id" in examples[0]:
        batch["row_id"] = torch.tensor([int(e["row_id"]) for e in examples], dtype=torch.long)
    for key in ("text", "speaker_id"):
        if key in examples[0]:
            batch[key] = [e[key] for e in examples]
    return batch


def frame_budget_batches(
    num_frames: Sequence[int],
    max_frames_per_batch: int,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
    max_batch_size: int | None = None,
) -> list[list[int]]:
    """
    Groups item indices into batches of similar lengths whose padded size stays under a frame budget (the paper trains
    with 20k latent frames per GPU).

    Items are sorted by length (ties and, when `shuffle`, buckets of similar length in random order), cut into batches
    such that `batch_size * longest_item <= max_frames_per_batch`; an item longer than the budget forms a batch of its
    own. With `shuffle`, the order of the batches is random too.

    Args:
        num_frames (`Sequence[int]`): Latent frames of each item.
        max_frames_per_batch (`int`): Budget of padded frames per batch.
        shuffle (`bool`, defaults to `True`): Randomize (under `generator`) which items share a batch and the order.
        generator (`torch.Generator`, *optional*): Source of randomness.
        max_batch_size (`int`, *optional*): Upper bound on the number of items per batch.

    Returns:
        `list[list[int]]`: Batches of indices into `num_frames`; every index appears exactly once.
    """
    if max_frames_per_batch < 1:
        raise ValueError(f"`max_frames_per_batch` must be positive, got {max_frames_per_batch}.")
    lengths = torch.as_tensor(list(num_frames), dtype=torch.float64)
    if lengths.numel() == 0:
        return []
    noise = torch.rand(lengths.shape, generator=generator, dtype=torch.float64) if shuffle else None
    # sort by length; with shuffle, a small jitter (under one frame) mixes items of equal length
    order = torch.argsort(lengths + noise if shuffle else lengths, stable=True).tolist()
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in order:
        length = max(int(lengths[index]), 1)
        too_many = max_batch_size is not None and len(current) >= max_batch_size
        if current and (too_many or max(longest, length) * (len(current) + 1) > max_frames_per_batch):
            batches.append(current)
            current, longest = [], 0
        current.append(index)
        longest = max(longest, length)
    if current:
        batches.append(current)
    if shuffle:
        permutation = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[i] for i in permutation]
    return batches


class FrameBudgetBatchSampler(torch.utils.data.Sampler[list[int]]):
    """
    A batch sampler (for `torch.utils.data.DataLoader(batch_sampler=...)`) over [`frame_budget_batches`], reshuffled
    at every epoch from `seed + epoch`.

    Args:
        num_frames (`Sequence[int]`): Latent frames of each item (the `num_frames` column).
        max_frames_per_batch (`int`): Budget of padded frames per batch.
        shuffle (`bool`, defaults to `True`): Shuffle batch composition and order at each epoch.
        seed (`int`, defaults to 0): Base seed.
        max_batch_size (`int`, *optional*): Upper bound on the number of items per batch.

    Examples:

    ```py
    >>> from torch.utils.data import DataLoader
    >>> from data_utils import FrameBudgetBatchSampler, collate_prepared

    >>> dataset = prepared.dataset.with_format("torch")  # doctest: +SKIP
    >>> sampler = FrameBudgetBatchSampler(prepared.dataset["num_frames"], 20000)  # doctest: +SKIP
    >>> loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_prepared)  # doctest: +SKIP
    ```
    """

    def __init__(
        self,
        num_frames: Sequence[int],
        max_frames_per_batch: int,
        shuffle: bool = True,
        seed: int = 0,
        max_batch_size: int | None = None,
    ):
        self.num_frames = [int(n) for n in num_frames]
        self.max_frames_per_batch = int(max_frames_per_batch)
        self.shuffle = shuffle
        self.seed = seed
        self.max_batch_size = max_batch_size
        self.epoch = 0
        self._len = len(self._batches())

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch whose shuffle `__iter__` gives."""
        self.epoch = int(epoch)

    def _batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return frame_budget_batches(
            self.num_frames, self.max_frames_per_batch, self.shuffle, generator, self.max_batch_size
        )

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._batches()

    def __len__(self) -> int:
        # The batch count of an epoch can differ by one or two between shuffles; this is epoch 0's count.
        return self._len


def split_prompt_from_target(
    batch: dict[str, Any],
    ratio_min: float,
    ratio_max: float,
    generator: torch.Generator | None = None,
    pad_token_id: int = 0,
    pad_to_multiple_of: int | None = None,
) -> dict[str, Any]:
    """
    Cuts each utterance of a collated batch into a prompt and a target, as inference sees them (NaturalSpeech 2).

    The prompt is a run of whole phonemes at the start or at the end of the utterance (chosen at random per item),
    holding the share of its frames closest to a ratio drawn uniformly from `[ratio_min, ratio_max]`; the target is the
    rest, one contiguous piece of speech with at least one frame and one phoneme. The target's phonemes, durations,
    latents and pitch replace the batch's (re-padded); the prompt's latents appear only as `prompt_latents`.

    When the batch has `prompt_channel_latents` (rows of a prepared dataset with `PROMPT_CHANNEL_COLUMN`), the prompt's
    latents are taken from them at the same frames: the same words through another channel, while the target stays
    the clean `latents` (the prompt-only channel augmentation). Rows without a twin carry a copy of their `latents`
    there, so their prompt is the same as without the column; the cut itself never depends on the column.

    Args:
        batch (`dict`): Output of [`collate_prepared`] with `input_ids`, `attention_mask`, `durations`, `latents`
            (`(batch_size, latent_dim, num_frames)`), `latent_mask` and `log_pitch`, and optionally
            `prompt_channel_latents` (`(batch_size, latent_dim, num_frames)`, frame-aligned with `latents`).
        ratio_min (`float`), ratio_max (`float`): Range of the prompt's share of the frames, `0 < min <= max < 1`.
        generator (`torch.Generator`, *optional*): CPU generator for the draws.
        pad_token_id (`int`, defaults to 0): Padding id of the re-padded `input_ids`.
        pad_to_multiple_of (`int`, *optional*): Re-pads the phonemes, target frames and prompt frames up to a
            multiple of this (as transformers' collators do), so that training sees a few distinct tensor shapes
            rather than one per length: oneDNN builds its convolution and bfloat16 matmul kernels per shape and keeps
            1,024 of them, so on a CPU a run with every length rebuilds kernels at nearly every step.

    Returns:
        `dict` with the target's `input_ids`/`attention_mask`/`durations` (`(batch_size, target_phonemes)`),
        `latents` (`(batch_size, latent_dim, target_frames)`), `latent_mask`/`log_pitch` (`(batch_size,
        target_frames)`), `prompt_latents` (`(batch_size, latent_dim, prompt_frames)`) and `prompt_mask`, plus where the
        prompt was cut from: `prompt_frame_start`, `prompt_num_frames`, `prompt_phoneme_start`, `prompt_num_phonemes`
        (`torch.LongTensor` of shape `(batch_size,)`, in the original utterance). Other keys are passed through, except
        `prompt_channel_latents` (consumed: its prompt frames are `prompt_latents`).

    Raises:
        `ValueError`: When an utterance has fewer than two phonemes with frames, so that it cannot give both a prompt
        and a target.
    """
    if not 0 < ratio_min <= ratio_max < 1:
        raise ValueError(f"Need 0 < ratio_min <= ratio_max < 1, got {ratio_min} and {ratio_max}.")
    prompt_source = batch.get(PROMPT_CHANNEL_COLUMN, batch["latents"])  # (batch_size, latent_dim, num_frames)
    if prompt_source.shape != batch["latents"].shape:
        raise ValueError(
            f"`{PROMPT_CHANNEL_COLUMN}` must have the shape of `latents` {tuple(batch['latents'].shape)}, got "
            f"{tuple(prompt_source.shape)}."
        )
    durations, phoneme_mask = batch["durations"].cpu(), batch["attention_mask"].cpu()
    num_items = durations.shape[0]
    ratios = torch.empty(num_items).uniform_(ratio_min, ratio_max, generator=generator)
    from_start = torch.rand(num_items, generator=generator) < 0.5
    pieces: dict[str, list[torch.Tensor]] = {k: [] for k in ("ids", "dur", "lat", "pitch", "prompt")}
    where = {k: [] for k in ("prompt_frame_start", "prompt_num_frames", "prompt_phoneme_start", "prompt_num_phonemes")}
    for b in range(num_items):
        num_phonemes = int(phoneme_mask[b].sum())
        dur = durations[b, :num_phonemes]
        ends = dur.cumsum(0)
        total = int(ends[-1]) if num_phonemes else 0
        # prompt = the first k or the last k phonemes, k = 1..L-1; both parts need frames
        k = torch.arange(1, num_phonemes)
        prompt_frames = ends[k - 1] if from_start[b] else total - ends[num_phonemes - k - 1]
        valid = (prompt_frames > 0) & (prompt_frames < total)
        if not bool(valid.any()):
            raise ValueError(
                f"Utterance {b} of the batch ({num_phonemes} phonemes, {total} frames) cannot be cut into a prompt "
                "and a non-empty target: it needs at least two phonemes with frames."
            )
        gap = (prompt_frames.float() - float(ratios[b]) * total).abs()
        gap[~valid] = float("inf")
        n_prompt_ph = int(k[int(gap.argmin())])
        n_prompt_fr = int(prompt_frames[int(gap.argmin())])
        if from_start[b]:
            ph_start, fr_start, target_ph, target_fr = (
                0,
                0,
                slice(n_prompt_ph, num_phonemes),
                slice(n_prompt_fr, total),
            )
        else:
            ph_start, fr_start = num_phonemes - n_prompt_ph, total - n_prompt_fr
            target_ph, target_fr = slice(0, ph_start), slice(0, fr_start)
        pieces["ids"].append(batch["input_ids"][b, target_ph])
        pieces["dur"].append(batch["durations"][b, target_ph])
        pieces["lat"].append(batch["latents"][b, :, target_fr].T)
        pieces["pitch"].append(batch["log_pitch"][b, target_fr])
        pieces["prompt"].append(prompt_source[b, :, fr_start : fr_start + n_prompt_fr].T)
        for key, value in zip(where, (fr_start, n_prompt_fr, ph_start, n_prompt_ph)):
            where[key].append(value)

    def pad(seqs, value=0):
        lengths = torch.tensor([len(s) for s in seqs])
        padded = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=value)
        if pad_to_multiple_of and padded.shape[1] % pad_to_multiple_of:
            extra = pad_to_multiple_of - padded.shape[1] % pad_to_multiple_of
            padded = torch.cat([padded, padded.new_full((padded.shape[0], extra, *padded.shape[2:]), value)], dim=1)
        mask = torch.arange(padded.shape[1], device=padded.device)[None] < lengths.to(padded.device)[:, None]
        return padded, mask

    consumed = ("input_ids", "attention_mask", "durations", "latents", PROMPT_CHANNEL_COLUMN)
    out = {k: v for k, v in batch.items() if k not in consumed}
    out["input_ids"], out["attention_mask"] = pad(pieces["ids"], pad_token_id)
    out["durations"], _ = pad(pieces["dur"])
    latents, out["latent_mask"] = pad(pieces["lat"])
    out["latents"] = latents.transpose(1, 2).contiguous()
    out["log_pitch"], _ = pad(pieces["pitch"])
    prompt, out["prompt_mask"] = pad(pieces["prompt"])
    out["prompt_latents"] = prompt.transpose(1, 2).contiguous()
    out.update({k: torch.tensor(v, dtype=torch.long) for k, v in where.items()})
    return out
