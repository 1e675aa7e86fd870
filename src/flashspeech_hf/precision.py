"""Lower-precision inference: what stays in float32 under `dtype=torch.bfloat16`, and int8 dynamic quantization.

Loading with `FlashSpeechPipeline.from_pretrained(path, dtype=torch.bfloat16)` (or `torch_dtype=`, diffusers' older
name) or calling `pipe.to(torch.bfloat16)` runs the heavy networks (prior encoder, prosody generator, denoiser, the
codec's vocoder backbone) in bfloat16. A few small tensors are numerically fragile and stay in float32, whichever
way the dtype is set; each model lists them in `_keep_in_fp32_modules` (names of submodules, parameters or buffers):

- the codec's latent statistics (`latent_mean`, `latent_std`): every latent is normalized by them, and bfloat16's
  8-bit mantissa would shift every channel by up to 0.4 % of its mean;
- `MelCodec`'s mel front-end (`mel_filters`, and the STFT, always computed in float32) and its inverse-STFT head
  (`head`: the projection to log-magnitudes and phases, the Hann window and `torch.istft`): a bfloat16 Hann window
  is zero at its first samples and breaks the inverse STFT's overlap-add check (NOLA), and bfloat16 phases are off
  by up to 0.01 rad;
- the prosody generator's pitch bin edges (`pitch_bin_edges`): they are closer together than bfloat16's spacing
  around `ln F0`, so bins would merge.

The pipeline also keeps its sampling state (noise, noisy latents, scheduler arithmetic, the consistency skip
connection) in float32, so that a seed draws the same noise at every precision, and returns float32 audio.
"""

from __future__ import annotations

import logging
import re
import warnings
from itertools import chain

import torch
from torch import nn


class KeepInFloat32Mixin:
    r"""
    Keeps the parameters and buffers named in `_keep_in_fp32_modules` in float32 through every dtype conversion
    (`.to(dtype)`, `.half()`, `.bfloat16()`, ...), as diffusers' `from_pretrained(..., dtype=...)` keeps them through
    loading. A name matches a tensor when it is one of the dot-separated parts of the tensor's name (`"head"` matches
    `head.out.weight`), the rule diffusers applies when loading.

    Put this mixin before [`~diffusers.ModelMixin`] in the bases of a model; tensors created in `__init__` that must
    stay in float32 must also be created with an explicit `dtype=torch.float32` (diffusers builds models under the
    requested default dtype).
    """

    _keep_in_fp32_modules: list[str] | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _SELF_KEEPING_CLASSES.add(cls.__name__)

    def _kept_in_fp32(self, name: str) -> bool:
        keep = self._keep_in_fp32_modules or ()
        return any(part in keep for part in name.split("."))

    def _apply(self, fn, recurse=True):
        # detached aliases: `_apply` may swap the contents of parameter objects (`torch.utils.swap_tensors`)
        keep = {
            name: tensor.detach()
            for name, tensor in chain(self.named_parameters(), self.named_buffers())
            if tensor.dtype == torch.float32 and self._kept_in_fp32(name)
        }
        result = super()._apply(fn, recurse)
        if not keep:
            return result
        for name, tensor in chain(self.named_parameters(), self.named_buffers()):
            if name not in keep or not tensor.is_floating_point() or tensor.dtype == torch.float32:
                continue
            # restore the float32 values (not the rounded ones) on the new device
            restored = keep[name].to(device=tensor.device)
            if isinstance(tensor, nn.Parameter):
                tensor.data = restored
            else:
                module_name, _, buffer_name = name.rpartition(".")
                module = self.get_submodule(module_name) if module_name else self
                module._buffers[buffer_name] = restored
        return result


_SELF_KEEPING_CLASSES: set[str] = set()
_TO_WARNING = re.compile(r"There are modules in (\w+) that should be kept in float32: (.*?)\. Casting directly")


class _KeptInFloat32WarningFilter(logging.Filter):
    """
    Drops diffusers' warning on `model.to(dtype)` ("There are modules in X that should be kept in float32 ... Casting
    directly with `to()` can lead to inconsistent results") where it does not apply: for models that keep those
    tensors in float32 themselves ([`KeepInFloat32Mixin`]) and where the list is empty (diffusers 0.42 warns on
    every dtype cast, for every model).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        match = _TO_WARNING.match(record.getMessage())
        return match is None or (match.group(1) not in _SELF_KEEPING_CLASSES and match.group(2) != "[]")


logging.getLogger("diffusers.models.modeling_utils").addFilter(_KeptInFloat32WarningFilter())


INT8_COMPONENTS = ("denoiser", "prosody_generator")
"""Pipeline components that `FlashSpeechPipeline.enable_int8_dynamic_quantization` quantizes by default."""


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    r"""
    Replaces the `nn.Linear` layers of a float32 model, in place, by int8 dynamically quantized ones
    (`torch.ao.quantization.quantize_dynamic`): weights stored in int8 with a per-tensor scale, activations quantized
    on the fly per call, float32 in and out. CPU only.

    Convolutions (`nn.Conv1d`, most of the WaveNet and prosody predictors' compute) and the output projections of
    `nn.MultiheadAttention` are not covered by dynamic quantization and stay in float32.

    Args:
        model (`nn.Module`): A float32 model on the CPU.

    Returns:
        `nn.Module`: `model`, quantized in place.
    """
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if dtypes - {torch.float32}:
        raise ValueError(
            f"int8 dynamic quantization needs a float32 model, got parameters of dtype(s) {sorted(map(str, dtypes))}: "
            "load the pipeline without `dtype=` (or call `pipe.to(torch.float32)`) before quantizing."
        )
    devices = {p.device.type for p in model.parameters()}
    if devices - {"cpu"}:
        raise ValueError(f"int8 dynamic quantization runs on the CPU only; the model is on {sorted(devices)}.")
    with warnings.catch_warnings():
        # torch.ao's eager quantization is deprecated in favour of torchao, which has no release tested with this torch
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantiz.*deprecated.*", category=UserWarning)
        torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)
    model.flashspeech_int8_dynamic = True
    return model


def is_int8_quantized(model: nn.Module) -> bool:
    """Whether [`quantize_dynamic_int8`] was applied to `model`."""
    return bool(getattr(model, "flashspeech_int8_dynamic", False))
