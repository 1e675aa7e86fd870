"""
What loading and saving a FlashSpeech pipeline needs beyond diffusers: the load arguments' checks, Hub snapshot
resolution for out-of-tree components, the checkpoint folder's completeness, owned and aligned weight copies read from
the safetensors files, and the guard against saving int8-quantized components.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

import torch
from diffusers.utils import logging
from huggingface_hub import snapshot_download

from ..precision import is_int8_quantized

logger = logging.get_logger(__name__)

SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64,
    "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}  # fmt: skip
"""The safetensors header's dtype names and their torch dtypes."""

QUANTIZATION_CHOICES = (None, "none", "int8")
SAVED_DTYPE_KEY = "_torch_dtype"
"""Key of `model_index.json` where `save_pretrained` records a low-precision pipeline's dtype."""


def check_load_kwargs(kwargs: dict[str, Any]) -> str | None:
    """
    Checks and normalizes the arguments of a pipeline's `from_pretrained`, in place: pops `quantization` and returns
    it; `low_cpu_mem_usage=False` becomes True with a warning (diffusers refuses it for models with
    `_keep_in_fp32_modules`; the weights loaded are the same); int8 quantization with a low-precision `dtype` raises.

    Args:
        kwargs (`dict`): The keyword arguments given to `from_pretrained`.

    Returns:
        `str` or `None`: the requested quantization (`"int8"`, `"none"` or `None`).
    """
    quantization = kwargs.pop("quantization", None)
    if quantization not in QUANTIZATION_CHOICES:
        raise ValueError(f"`quantization` must be None, 'none' or 'int8', got {quantization!r}.")
    if kwargs.get("low_cpu_mem_usage") is False:
        logger.warning(
            "`low_cpu_mem_usage=False` is not supported by FlashSpeech's codec and prosody generator, which keep "
            "some tensors in float32 (`_keep_in_fp32_modules`); loading with `low_cpu_mem_usage=True` (same weights)."
        )
        kwargs["low_cpu_mem_usage"] = True
    requested_dtype = kwargs.get("dtype") or kwargs.get("torch_dtype")
    if quantization == "int8" and requested_dtype not in (None, torch.float32):
        raise ValueError(
            "`quantization='int8'` quantizes float32 weights (int8 weights, float32 activations); it cannot be "
            f"combined with dtype={requested_dtype}: choose one of the two."
        )
    return quantization


def resolve_pretrained_path(
    pretrained_model_name_or_path: str | os.PathLike, kwargs: dict[str, Any], name: str
) -> str:
    """
    A local folder as is; a Hub repository id resolved to a local snapshot with `huggingface_hub.snapshot_download`
    (stock diffusers refuses to download pipelines whose components live outside diffusers/transformers). Pops the
    download arguments `revision`, `cache_dir`, `token` and `local_files_only` from `kwargs`; honours
    `HF_HUB_OFFLINE`.

    Args:
        pretrained_model_name_or_path (`str` or `os.PathLike`): A folder or a repo id (`"org/name"`).
        kwargs (`dict`): The keyword arguments of `from_pretrained`.
        name (`str`): The pipeline class name, for error messages.

    Returns:
        `str`: a local folder.
    """
    path = os.fspath(pretrained_model_name_or_path)
    if os.path.isdir(path):
        return path
    if os.path.exists(path) or path.startswith((".", "/")) or path.count("/") > 1:
        raise ValueError(f"{path} is not a folder with a saved {name}, nor a Hub repository id.")
    try:
        return snapshot_download(
            path,
            revision=kwargs.pop("revision", None),
            cache_dir=kwargs.pop("cache_dir", None),
            token=kwargs.pop("token", None),
            local_files_only=kwargs.pop("local_files_only", False),
        )
    except Exception as err:
        raise OSError(f"Could not resolve {name} '{pretrained_model_name_or_path}': {err}") from err


def check_checkpoint(path: str, name: str, required: list[str], optional: list[str]) -> None:
    """
    Raises a `ValueError` naming what is missing when `path` is not a complete saved pipeline: no or invalid
    `model_index.json`, required components absent from it, or component folders missing.

    Args:
        path (`str`): The checkpoint folder.
        name (`str`): The pipeline class name, for error messages.
        required (`list[str]`): Components the pipeline needs.
        optional (`list[str]`): Components it may have (their folder must exist when the index names them).
    """
    index_file = os.path.join(path, "model_index.json")
    if not os.path.isfile(index_file):
        raise ValueError(f"{path} is not a saved {name}: it has no model_index.json.")
    try:
        with open(index_file, encoding="utf-8") as f:
            index = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{index_file} is not valid JSON: {err}") from err
    missing = [n for n in required if n not in index or index[n] in (None, [None, None])]
    if missing:
        raise ValueError(f"{index_file} lacks the component(s) {missing}; a {name} needs {required}.")
    absent = [n for n in required if not os.path.isdir(os.path.join(path, n))]
    absent += [
        n for n in optional if index.get(n) not in (None, [None, None]) and not os.path.isdir(os.path.join(path, n))
    ]
    if absent:
        raise ValueError(f"The checkpoint {path} is missing the folder(s) of component(s) {absent}.")


def read_safetensors_header(path: str) -> tuple[int, dict[str, Any]]:
    """
    The JSON header of a safetensors file, without reading any tensor data.

    Args:
        path (`str`): A `.safetensors` file.

    Returns:
        `(header_size, header)`: the header's length in bytes (the data starts at `8 + header_size`) and its content,
        tensor name -> `{"dtype", "shape", "data_offsets"}` (plus `"__metadata__"`).
    """
    with open(path, "rb") as f:
        size_bytes = f.read(8)
        if len(size_bytes) != 8:
            raise ValueError(f"{path} is not a safetensors file: it is shorter than its 8-byte header length.")
        header_size = int.from_bytes(size_bytes, "little")
        raw = f.read(header_size)
    if len(raw) != header_size:
        raise ValueError(f"{path} is truncated: its header should have {header_size} bytes, it has {len(raw)}.")
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} has no valid safetensors header: {err}") from err
    return header_size, header


def weight_files(folder: str, variant: str | None = None) -> list[str]:
    """The safetensors weight files diffusers loads from a component folder (one file, or the shards of one)."""
    infix = re.escape(f".{variant}") if variant else ""
    pattern = re.compile(rf"^(diffusion_pytorch_model|model){infix}(-\d+-of-\d+)?\.safetensors$")
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if pattern.match(f))


def own_aligned_weights(module: torch.nn.Module, folder: str, variant: str | None = None) -> None:
    """
    Replaces every CPU weight of `module` that is not 64-byte aligned (a view into a memory-mapped safetensors file)
    by an owned, aligned tensor, so that CPU SIMD kernels round as they do on the saved pipeline's own tensors (a
    bit-identical reload). Weights found in the component's safetensors files are read from the file with `readinto`
    (no mapped page is touched, so no second copy of the file is resident); any other is cloned.

    Args:
        module (`torch.nn.Module`): A loaded component.
        folder (`str`): Its folder in the saved pipeline.
        variant (`str`, *optional*): The weight variant that was loaded.
    """
    tensors = {name: t for name, t in module.state_dict(keep_vars=True).items() if isinstance(t, torch.Tensor)}
    done: set[int] = set()
    for path in weight_files(folder, variant):
        header_size, header = read_safetensors_header(path)
        with open(path, "rb") as f:
            for name, info in header.items():
                target = tensors.get(name)
                dtype = SAFETENSORS_DTYPES.get(info.get("dtype")) if isinstance(info, dict) else None
                if target is None or dtype is None or target.device.type != "cpu" or id(target) in done:
                    continue
                if tuple(info["shape"]) != tuple(target.shape) or target.data_ptr() % 64 == 0:
                    continue
                owned = torch.empty(info["shape"], dtype=dtype)
                begin, end = info["data_offsets"]
                if end - begin != owned.numel() * owned.element_size():
                    raise ValueError(f"{path}: the size of {name} does not match its shape and dtype.")
                if owned.numel():
                    f.seek(8 + header_size + begin)
                    f.readinto(memoryview(owned.view(-1).view(torch.uint8).numpy()))
                target.data = owned.to(target.dtype)
                done.add(id(target))
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.device.type == "cpu" and tensor.data_ptr() % 64 != 0:
            tensor.data = tensor.data.clone()


def check_saveable(components: Mapping[str, Any]) -> None:
    """Raises a `ValueError` naming the int8 dynamically quantized components, which cannot be saved."""
    quantized = [n for n, c in components.items() if isinstance(c, torch.nn.Module) and is_int8_quantized(c)]
    if quantized:
        raise ValueError(
            f"The component(s) {quantized} are int8 dynamically quantized, which cannot be saved: save the float "
            "pipeline and pass `quantization='int8'` to `from_pretrained`."
        )


def saved_dtype(path: str) -> torch.dtype | None:
    """The dtype a saved pipeline records in `model_index.json` (`SAVED_DTYPE_KEY`), or None (float32)."""
    with open(os.path.join(path, "model_index.json"), encoding="utf-8") as f:
        name = json.load(f).get(SAVED_DTYPE_KEY)
    if name is None:
        return None
    if name not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"{path}/model_index.json records {SAVED_DTYPE_KEY}={name!r}; expected bfloat16 or float16.")
    return getattr(torch, name)


def record_saved_dtype(save_directory: str | os.PathLike, dtype: torch.dtype) -> None:
    """
    Records a low-precision pipeline's `dtype` in the `model_index.json` that `save_pretrained` wrote to
    `save_directory` (rewritten atomically); float32 removes a recorded one (weights stored in low precision that
    load as float32), and otherwise leaves the file untouched.
    """
    index_file = os.path.join(save_directory, "model_index.json")
    with open(index_file, encoding="utf-8") as f:
        index = json.load(f)
    if dtype == torch.float32:
        if index.pop(SAVED_DTYPE_KEY, None) is None:
            return
    else:
        index[SAVED_DTYPE_KEY] = str(dtype).removeprefix("torch.")
    temporary = f"{index_file}.{os.getpid()}.partial"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(index, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(temporary, index_file)
