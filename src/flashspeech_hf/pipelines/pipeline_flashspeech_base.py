"""Shared parts of the FlashSpeech pipelines: loading, input checks, prompt encoding, prosody, sampling, decoding."""

from __future__ import annotations

import json
import math
import numbers
import os
import re
from collections.abc import Callable, Sequence
from contextlib import nullcontext

import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import logging
from huggingface_hub import snapshot_download
from transformers import PreTrainedTokenizer

from ..audio import AudioInput, check_audio_input, check_speech, load_audio
from ..codecs import DacCodec, EncodecCodec, MelCodec
from ..models.modeling_aligner import FlashSpeechAligner
from ..models.modeling_denoiser import FlashSpeechDenoiser
from ..models.modeling_prior import FlashSpeechPriorEncoder
from ..models.modeling_prosody import FlashSpeechProsodyGenerator, length_regulate
from ..precision import INT8_COMPONENTS, is_int8_quantized, quantize_dynamic_int8
from ..schedulers.scheduling_flashspeech import FlashSpeechScheduler
from .pipeline_output import FlashSpeechAlignment, FlashSpeechPipelineOutput
from .voice import FlashSpeechVoice, voice_fingerprint

logger = logging.get_logger(__name__)

MIN_PROMPT_SECONDS = 1.0
MIN_SOURCE_SECONDS = 0.25
MAX_OUTPUT_SECONDS = 60.0
"""Default `max_output_seconds`: the longest waveform one call generates (longer text: split it into sentences)."""
MAX_PROMPT_SECONDS = 30.0
"""Default `max_prompt_seconds`: the longest speech prompt accepted (the paper uses 3 s prompts)."""
MAX_INFERENCE_STEPS = 1000
"""Most evaluations per sampled sequence (consistency models need 1-4)."""
MAX_BATCH_SIZE = 256
"""Most waveforms generated in one call (`len(text) * num_waveforms_per_prompt`)."""
SPEED_RANGE = (0.25, 4.0)
"""Accepted `speed` values (inclusive): from four times slower to four times faster than the predicted rate."""
MAX_CHARACTERS_PER_SECOND = 100
"""Text longer than this many characters per second of `max_output_seconds` cannot be spoken within it."""
GeneratorInput = torch.Generator | int | list[torch.Generator | int] | None
SAVED_DTYPE_KEY = "_torch_dtype"
"""Key of `model_index.json` where `save_pretrained` records a low-precision pipeline's dtype."""


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_int(value, name: str, low: int, high: int | None = None) -> int:
    """Raises unless `value` is an integer (not a bool) in `[low, high]`."""
    bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
    if not _is_int(value) or value < low or (high is not None and value > high):
        raise ValueError(f"`{name}` must be an integer {bounds}, got {value!r}.")
    return int(value)


def _check_float(
    value, name: str, low: float, high: float | None = None, low_open: bool = False, note: str = ""
) -> float:
    """Raises unless `value` is a finite real number in `[low, high]` (`(low, high]` with `low_open`)."""
    bounds = (
        ("> " if low_open else ">= ") + f"{low:g}"
        if high is None
        else f"in {'(' if low_open else '['}{low:g}, {high:g}]"
    )
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (high is None or value <= high)
    if not ok:
        raise ValueError(f"`{name}` must be a finite number {bounds}, got {value!r}.{note}")
    return float(value)


def _as_generators(generator: GeneratorInput, batch_size: int) -> list[torch.Generator | None]:
    """
    One generator (or None) per output waveform, from `None`, a `torch.Generator`, an `int` seed (the same as
    `torch.Generator().manual_seed(seed)`) or a list of one of them per waveform. Raises a `TypeError`/`ValueError`
    naming what to pass.
    """

    def one(item, where: str) -> torch.Generator | None:
        if item is None or isinstance(item, torch.Generator):
            return item
        if _is_int(item):
            if not 0 <= item < 2**64:
                raise ValueError(f"A seed given as `generator`{where} must lie in [0, 2**64), got {item}.")
            return torch.Generator().manual_seed(int(item))
        raise TypeError(
            f"`generator`{where} must be a `torch.Generator` (e.g. `torch.Generator().manual_seed(0)`), an int seed "
            f"or None, got {type(item).__name__}."
        )

    if isinstance(generator, (list, tuple)):
        if len(generator) != batch_size:
            raise ValueError(
                f"Got {len(generator)} generators for {batch_size} waveforms; pass one per waveform "
                "(len(text) * num_waveforms_per_prompt) or a single generator."
            )
        return [one(g, f"[{i}]") for i, g in enumerate(generator)]
    return [one(generator, "")] * batch_size


def _check_text_length(text: str, name: str, max_output_seconds: float) -> None:
    """Raises when `text` has more characters than any speaking rate fits in `max_output_seconds`."""
    max_characters = int(max_output_seconds * MAX_CHARACTERS_PER_SECOND)
    if len(text) > max_characters:
        raise ValueError(
            f"`{name}` has {len(text)} characters, more than can be spoken in `max_output_seconds`="
            f"{max_output_seconds:g} s (at most {max_characters}): split it into sentences with "
            "`pipe.long_form(text, prompt_audio)` (or synthesize them one at a time), or raise `max_output_seconds`."
        )


def _check_output_type(output_type, return_dict, allowed: Sequence[str] = ("np", "pt", "latent")) -> None:
    if output_type not in allowed:
        raise ValueError(f"`output_type` must be one of {', '.join(repr(a) for a in allowed)}, got {output_type!r}.")
    if not isinstance(return_dict, bool):
        raise ValueError(f"`return_dict` must be True or False, got {return_dict!r}.")


def _check_callback(callback_on_step_end, tensor_inputs, allowed: Sequence[str]) -> list[str]:
    """Validates `callback_on_step_end` and its tensor names; returns the names (a `PipelineCallback`'s own)."""
    if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
        tensor_inputs = callback_on_step_end.tensor_inputs
    if callback_on_step_end is not None and not callable(callback_on_step_end):
        raise TypeError(
            "`callback_on_step_end` must be a callable `(pipe, step, timestep, callback_kwargs) -> dict`, got "
            f"{type(callback_on_step_end).__name__}."
        )
    tensor_inputs = list(tensor_inputs)
    unknown = [name for name in tensor_inputs if name not in allowed]
    if unknown:
        raise ValueError(f"`callback_on_step_end_tensor_inputs` has {unknown}; the callback can get {list(allowed)}.")
    return tensor_inputs


def _check_latents(latents, batch_size: int, latent_dim: int) -> None:
    """Raises unless `latents` is None or a finite float tensor of shape `(batch_size, latent_dim, frames)`."""
    if latents is None:
        return
    if not isinstance(latents, torch.Tensor) or not latents.is_floating_point():
        raise TypeError(f"`latents` must be a float torch.Tensor, got {type(latents).__name__}.")
    if latents.ndim != 3 or latents.shape[:2] != (batch_size, latent_dim):
        raise ValueError(
            f"`latents` must have shape ({batch_size}, {latent_dim}, num_frames) (one row per output waveform), got "
            f"{tuple(latents.shape)}."
        )
    if not torch.isfinite(latents).all():
        raise ValueError("`latents` holds NaN or infinite values.")


def check_consistency_constants(scheduler, *models) -> None:
    """
    Raises a `ValueError` unless the scheduler and every consistency model (the denoiser, the prosody generator) use
    the same `sigma_min` and `sigma_data`: the scheduler's levels and re-noising assume the models' boundary level,
    and a model trained with other constants would be sampled wrongly without an error.
    """
    if scheduler is None:
        return
    for model in models:
        if model is None or not hasattr(model, "config"):
            continue
        for key in ("sigma_min", "sigma_data"):
            ours, theirs = scheduler.config.get(key), model.config.get(key)
            if theirs is not None and ours is not None and not math.isclose(ours, theirs, rel_tol=1e-6):
                raise ValueError(
                    f"The scheduler's {key}={ours:g} differs from the {type(model).__name__}'s {key}={theirs:g}: the "
                    "consistency parametrization needs one value. Build the scheduler with "
                    f"`FlashSpeechScheduler.from_config(scheduler.config, {key}={theirs:g})` (the model's trained value)."
                )


_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64,
    "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}  # fmt: skip


def _weight_files(folder: str, variant: str | None) -> list[str]:
    """The safetensors weight files diffusers loads from a component folder (one file, or the shards of one)."""
    infix = re.escape(f".{variant}") if variant else ""
    pattern = re.compile(rf"^(diffusion_pytorch_model|model){infix}(-\d+-of-\d+)?\.safetensors$")
    return (
        sorted(os.path.join(folder, f) for f in os.listdir(folder) if pattern.match(f))
        if os.path.isdir(folder)
        else []
    )


def _own_aligned_weights(module: torch.nn.Module, folder: str, variant: str | None = None) -> None:
    """
    Replaces every CPU weight of `module` that is not 64-byte aligned (a view into a memory-mapped safetensors file)
    by an owned, aligned tensor. Weights found in the component's safetensors files are read from the file with
    `readinto` (no mapped page is touched, so no second copy of the file is resident); any other is cloned.

    Args:
        module (`torch.nn.Module`): A loaded component.
        folder (`str`): Its folder in the saved pipeline.
        variant (`str`, *optional*): The weight variant that was loaded.
    """
    tensors = {name: t for name, t in module.state_dict(keep_vars=True).items() if isinstance(t, torch.Tensor)}
    done: set[int] = set()
    for path in _weight_files(folder, variant):
        with open(path, "rb") as f:
            header_size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(header_size))
            for name, info in header.items():
                target = tensors.get(name)
                dtype = _SAFETENSORS_DTYPES.get(info.get("dtype")) if isinstance(info, dict) else None
                if target is None or dtype is None or target.device.type != "cpu" or id(target) in done:
                    continue
                if tuple(info["shape"]) != tuple(target.shape) or target.data_ptr() % 64 == 0:
                    continue
                owned = torch.empty(info["shape"], dtype=dtype)
                begin, end = info["data_offsets"]
                if owned.numel():
                    f.seek(8 + header_size + begin)
                    f.readinto(memoryview(owned.view(-1).view(torch.uint8).numpy()))
                if end - begin != owned.numel() * owned.element_size():
                    raise ValueError(f"{path}: the size of {name} does not match its shape and dtype.")
                target.data = owned.to(target.dtype)
                done.add(id(target))
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.device.type == "cpu" and tensor.data_ptr() % 64 != 0:
            tensor.data = tensor.data.clone()


class FlashSpeechBasePipeline(DiffusionPipeline):
    r"""
    The components and shared steps of the FlashSpeech pipelines (Ye et al. 2024): [`FlashSpeechPipeline`]
    (text-to-speech), [`FlashSpeechVoiceConversionPipeline`] and [`FlashSpeechEditPipeline`]. All three take the same
    components, so one loaded set serves every task: `FlashSpeechEditPipeline(**pipe.components)` or
    `FlashSpeechEditPipeline.from_pipe(pipe)`.

    Shared here: loading (local folders and Hub ids, int8 quantization), randomly initialised named sizes, prompt
    loading and encoding, the prosody generator's durations and pitch, consistency sampling with the scheduler,
    decoding, and the aligner's phoneme durations of real audio ([`~FlashSpeechBasePipeline.align`]).

    This class inherits from [`DiffusionPipeline`]: `save_pretrained`, `from_pretrained` and `push_to_hub` handle
    every component.

    Args:
        tokenizer ([`FlashSpeechTokenizer`]): Text to phoneme ids.
        codec ([`EncodecCodec`], [`DacCodec`] or [`MelCodec`]): Waveform <-> normalized latents.
        prior_encoder ([`FlashSpeechPriorEncoder`]): Phoneme encoder and prompt encoder.
        prosody_generator ([`FlashSpeechProsodyGenerator`]): Durations and pitch.
        denoiser ([`FlashSpeechDenoiser`]): The latent consistency model.
        scheduler ([`FlashSpeechScheduler`]): Noise levels for 1-, 2- or N-step sampling; its `sigma_min` and
            `sigma_data` must be the denoiser's and the prosody generator's (checked here).
        aligner ([`FlashSpeechAligner`], *optional*): Phoneme durations of real audio, needed by voice conversion,
            editing and [`~FlashSpeechBasePipeline.align`]; text-to-speech does not use it.
    """

    model_cpu_offload_seq = "aligner->prior_encoder->prosody_generator->denoiser->codec"
    _optional_components = ["aligner"]
    _callback_tensor_inputs = ["latents", "denoised"]

    def __init__(
        self,
        tokenizer: PreTrainedTokenizer,
        codec: EncodecCodec | DacCodec | MelCodec,
        prior_encoder: FlashSpeechPriorEncoder,
        prosody_generator: FlashSpeechProsodyGenerator,
        denoiser: FlashSpeechDenoiser,
        scheduler: FlashSpeechScheduler,
        aligner: FlashSpeechAligner | None = None,
    ):
        super().__init__()
        self.register_modules(
            tokenizer=tokenizer,
            codec=codec,
            prior_encoder=prior_encoder,
            prosody_generator=prosody_generator,
            denoiser=denoiser,
            scheduler=scheduler,
            aligner=aligner,
        )
        check_consistency_constants(scheduler, denoiser, prosody_generator)

    @property
    def sampling_rate(self) -> int:
        """Sample rate of the generated audio (the codec's)."""
        return self.codec.sampling_rate

    # ------------------------------------------------------------------------------------------------------------
    # Loading
    # ------------------------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> FlashSpeechBasePipeline:
        """
        Loads a pipeline saved with `save_pretrained` from a local folder or a Hugging Face Hub repository id.

        Why this override exists:

        - Stock diffusers refuses to download pipelines whose components live outside diffusers/transformers, so a
          Hub id is first resolved to a local snapshot with `huggingface_hub.snapshot_download` (honouring
          `revision`, `cache_dir`, `token`, `local_files_only` and `HF_HUB_OFFLINE`), then loaded from there.
        - Bit-identical reloads: diffusers returns the weights as views into the memory-mapped safetensors files,
          mostly not 64-byte aligned, and CPU SIMD kernels then round differently from the saved pipeline's own
          (aligned) tensors. Each weight is read once more from its file, with plain reads into a fresh, aligned
          tensor, which also lets the file mappings go; mapped pages are never touched, so the peak memory stays
          about one copy of the weights (cloning the mapped views instead held the largest component twice: +30 % at
          the paper size, see `benchmarks/README.md`).
        - Checks with clear errors: an incomplete checkpoint folder, `low_cpu_mem_usage=False` (refused by diffusers
          for models with `_keep_in_fp32_modules`), int8 quantization combined with a low-precision `dtype`.

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`): A folder with `model_index.json` or a repo id.
            quantization (`str`, *optional*): `"int8"` applies
                [`~FlashSpeechBasePipeline.enable_int8_dynamic_quantization`] after loading (CPU, float32 weights only).
            **kwargs: Passed to [`DiffusionPipeline.from_pretrained`], e.g. `dtype=torch.bfloat16` (or the deprecated
                `torch_dtype`) to run the networks in lower precision; the numerically fragile parts stay in float32
                (see `flashspeech_hf.precision`) and the audio is float32.

        Returns:
            An instance of the class it is called on, e.g. [`FlashSpeechPipeline`].
        """
        quantization = kwargs.pop("quantization", None)
        if quantization not in (None, "none", "int8"):
            raise ValueError(f"`quantization` must be None, 'none' or 'int8', got {quantization!r}.")
        if kwargs.get("low_cpu_mem_usage") is False:
            # diffusers refuses it for models with `_keep_in_fp32_modules` (the codec, the prosody generator); the
            # weights loaded are the same either way
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
        path = os.fspath(pretrained_model_name_or_path)
        if not os.path.isdir(path):
            if os.path.exists(path) or path.startswith((".", "/")) or path.count("/") > 1:
                raise ValueError(f"{path} is not a folder with a saved {cls.__name__}, nor a Hub repository id.")
            try:
                path = snapshot_download(
                    path,
                    revision=kwargs.pop("revision", None),
                    cache_dir=kwargs.pop("cache_dir", None),
                    token=kwargs.pop("token", None),
                    local_files_only=kwargs.pop("local_files_only", False),
                )
            except Exception as err:
                raise OSError(f"Could not resolve {cls.__name__} '{pretrained_model_name_or_path}': {err}") from err
        cls._check_checkpoint(path)
        if requested_dtype is None and quantization in (None, "none"):
            saved_dtype = cls._saved_dtype(path)
            if saved_dtype is not None:  # a low-precision pipeline saved as such loads as such
                kwargs["dtype"] = saved_dtype
        pipe = super().from_pretrained(path, **kwargs)
        for name, component in pipe.components.items():
            if isinstance(component, torch.nn.Module):
                _own_aligned_weights(component, os.path.join(path, name), kwargs.get("variant"))
        if quantization == "int8":
            pipe.enable_int8_dynamic_quantization()
        return pipe

    def enable_int8_dynamic_quantization(self, components: Sequence[str] = INT8_COMPONENTS) -> FlashSpeechBasePipeline:
        r"""
        Quantizes the `nn.Linear` layers of the denoiser and the prosody generator to int8, in place, with PyTorch's
        dynamic quantization (`torch.ao.quantization.quantize_dynamic`): int8 weights with a per-tensor scale,
        activations quantized per call, float32 in and out. CPU only; the models must be float32 (do not combine with
        `dtype=torch.bfloat16`).

        Dynamic quantization covers linear layers only: the `nn.Conv1d` layers (the WaveNets' dilated and 1x1
        convolutions and the prosody predictors' convolutions, most of their compute) and the attention output
        projections stay in float32, so the speed-up is limited. The quantized pipeline cannot be saved with
        `save_pretrained` (int8 packed weights are not safetensors); save the float pipeline and quantize after
        loading (`from_pretrained(..., quantization="int8")`), and do not cast it with `.to(dtype)` afterwards.

        Args:
            components (`Sequence[str]`, defaults to `("denoiser", "prosody_generator")`): Components to quantize.

        Returns:
            `self`.

        Examples:

        ```py
        >>> from flashspeech_hf import FlashSpeechPipeline

        >>> pipe = FlashSpeechPipeline.from_named_config("tiny").enable_int8_dynamic_quantization()
        >>> pipe.denoiser.backbone.layers[0].noise_proj._get_name()
        'DynamicQuantizedLinear'
        ```
        """
        if isinstance(components, str):
            components = [components]
        known = [name for name, c in self.components.items() if isinstance(c, torch.nn.Module)]
        unknown = [name for name in components if name not in known]
        if unknown:
            raise ValueError(f"Cannot quantize {unknown}: the pipeline's models are {known}.")
        for name in components:
            if not is_int8_quantized(getattr(self, name)):
                quantize_dynamic_int8(getattr(self, name))
        return self

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        """
        Saves the pipeline like [`DiffusionPipeline.save_pretrained`]; raises for an int8-quantized pipeline.

        The weights are written in their dtype: a pipeline cast to bfloat16 (or float16) is saved in bfloat16 (the
        parts kept in float32 stay float32), half the size of float32, and `model_index.json` records it as
        `"_torch_dtype": "bfloat16"`, so that `from_pretrained` loads it in bfloat16 unless another `dtype` is asked.
        """
        quantized = [n for n, c in self.components.items() if isinstance(c, torch.nn.Module) and is_int8_quantized(c)]
        if quantized:
            raise ValueError(
                f"The component(s) {quantized} are int8 dynamically quantized, which cannot be saved: save the float "
                "pipeline and pass `quantization='int8'` to `from_pretrained`."
            )
        super().save_pretrained(save_directory, *args, **kwargs)
        dtype = self.denoiser.dtype if self.denoiser is not None else torch.float32
        if dtype != torch.float32:
            index_file = os.path.join(save_directory, "model_index.json")
            with open(index_file, encoding="utf-8") as f:
                index = json.load(f)
            index[SAVED_DTYPE_KEY] = str(dtype).removeprefix("torch.")
            temporary = f"{index_file}.{os.getpid()}.partial"
            with open(temporary, "w", encoding="utf-8") as f:
                json.dump(index, f, indent=2, sort_keys=True)
                f.write("\n")
            os.replace(temporary, index_file)

    @staticmethod
    def _saved_dtype(path: str) -> torch.dtype | None:
        """The dtype a saved pipeline records in `model_index.json` (`SAVED_DTYPE_KEY`), or None (float32)."""
        with open(os.path.join(path, "model_index.json"), encoding="utf-8") as f:
            name = json.load(f).get(SAVED_DTYPE_KEY)
        if name is None:
            return None
        if name not in ("float32", "bfloat16", "float16"):
            raise ValueError(
                f"{path}/model_index.json records {SAVED_DTYPE_KEY}={name!r}; expected bfloat16 or float16."
            )
        return getattr(torch, name)

    @classmethod
    def _check_checkpoint(cls, path: str) -> None:
        """Raises a `ValueError` naming what is missing when `path` is not a complete saved pipeline."""
        index_file = os.path.join(path, "model_index.json")
        if not os.path.isfile(index_file):
            raise ValueError(f"{path} is not a saved {cls.__name__}: it has no model_index.json.")
        try:
            with open(index_file, encoding="utf-8") as f:
                index = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{index_file} is not valid JSON: {err}") from err
        expected = [name for name in cls._get_signature_keys(cls)[0] if name not in cls._optional_components]
        missing = [name for name in expected if name not in index or index[name] in (None, [None, None])]
        if missing:
            raise ValueError(f"{index_file} lacks the component(s) {missing}; a {cls.__name__} needs {expected}.")
        absent = [name for name in expected if not os.path.isdir(os.path.join(path, name))]
        optional = [
            name
            for name in cls._optional_components
            if index.get(name) not in (None, [None, None]) and not os.path.isdir(os.path.join(path, name))
        ]
        absent += optional
        if absent:
            raise ValueError(f"The checkpoint {path} is missing the folder(s) of component(s) {absent}.")

    @classmethod
    def from_named_config(
        cls,
        name: str,
        tokenizer: PreTrainedTokenizer | None = None,
        codec: torch.nn.Module | None = None,
        **overrides: dict,
    ) -> FlashSpeechBasePipeline:
        """
        Builds a randomly initialised pipeline of a named size (`flashspeech_hf.configs.build_pipeline_components`).

        Args:
            name (`str`): `"tiny"` (tests, seconds on a CPU) or `"paper"` (the published sizes).
            tokenizer ([`FlashSpeechTokenizer`], *optional*): Defaults to the built-in English phoneme tokenizer.
            codec (*optional*): A codec to use instead of the config's randomly initialised one (e.g.
                `EncodecCodec.from_transformers("facebook/encodec_24khz")`); the latent size follows it.
            **overrides (`dict`): Per-component config updates, e.g. `denoiser={"num_layers": 20}`; `aligner=None`
                builds the pipeline without its optional aligner.

        Returns:
            An instance of the class it is called on, e.g. [`FlashSpeechPipeline`].

        Examples:

        ```py
        >>> from flashspeech_hf import FlashSpeechPipeline

        >>> pipe = FlashSpeechPipeline.from_named_config("tiny")
        >>> pipe.denoiser.config.num_layers
        3
        ```
        """
        from ..configs import build_pipeline_components

        return cls(**build_pipeline_components(name, tokenizer=tokenizer, codec=codec, **overrides))

    # ------------------------------------------------------------------------------------------------------------
    # Inputs
    # ------------------------------------------------------------------------------------------------------------

    def load_prompt(
        self,
        prompt_audio: AudioInput,
        sampling_rate: int | None = None,
        name: str = "prompt_audio",
        max_prompt_seconds: float = MAX_PROMPT_SECONDS,
    ):
        """
        Reads and checks one speech prompt at the codec's sample rate.

        Args:
            prompt_audio (`str`, `os.PathLike`, `np.ndarray` or `torch.Tensor`): A path or a 1-D waveform (integer
                PCM arrays are scaled like files: `int16 / 32768`).
            sampling_rate (`int`, *optional*): Sample rate of an array prompt in Hz, 4-192 kHz (required for arrays).
            name (`str`): Argument name for error messages.
            max_prompt_seconds (`float`, defaults to 30.0): Longest prompt accepted.

        Returns:
            `torch.Tensor` of shape `(num_samples,)` at `self.sampling_rate`.
        """
        waveform, _ = load_audio(
            prompt_audio, sampling_rate, self.sampling_rate, name, max_prompt_seconds, "max_prompt_seconds"
        )
        check_speech(waveform, self.sampling_rate, MIN_PROMPT_SECONDS, name=name)
        return waveform

    @torch.no_grad()
    def encode_voice(
        self,
        prompt_audio: AudioInput,
        prompt_sampling_rate: int | None = None,
        max_prompt_seconds: float = MAX_PROMPT_SECONDS,
        name: str = "prompt_audio",
    ) -> FlashSpeechVoice:
        r"""
        Encodes a speech prompt once: its codec latents and the prior encoder's prompt states, to pass as `voice=`
        to any FlashSpeech pipeline instead of `prompt_audio=` (the same audio, bit for bit, without encoding the
        prompt again) or to save with [`FlashSpeechVoice.save`].

        Args:
            prompt_audio (`str`, `os.PathLike`, `np.ndarray` or `torch.Tensor`): A path or a 1-D waveform, 1 s at
                least.
            prompt_sampling_rate (`int`, *optional*): Sample rate of an array prompt in Hz (required for arrays).
            max_prompt_seconds (`float`, defaults to 30.0): Longest prompt accepted.
            name (`str`): Argument name for error messages.

        Returns:
            [`FlashSpeechVoice`] with CPU tensors `prompt_latents` `(latent_dim, frames)` and `prompt_hidden`
            `(frames, hidden_size)` in the pipeline's dtypes.

        Examples:

        ```py
        >>> from flashspeech_hf import FlashSpeechPipeline

        >>> pipe = FlashSpeechPipeline.from_pretrained("checkpoints/flashspeech-demo")
        >>> voice = pipe.encode_voice("prompt.wav")
        >>> voice.save("prompt.voice.safetensors")
        >>> audio = pipe("Hello there.", voice=voice, generator=0).audios[0]
        ```
        """
        _check_float(max_prompt_seconds, "max_prompt_seconds", MIN_PROMPT_SECONDS)
        check_audio_input(prompt_audio, prompt_sampling_rate, name, max_prompt_seconds, "max_prompt_seconds")
        waveform = self.load_prompt(prompt_audio, prompt_sampling_rate, name, max_prompt_seconds)
        device = self._execution_device
        latents = self.codec.encode(waveform.to(device)[None], self.sampling_rate)[0]
        return self._voice_from_latents(latents, waveform.shape[-1] / self.sampling_rate)

    def _voice_from_latents(self, latents: torch.Tensor, duration_seconds: float) -> FlashSpeechVoice:
        """The voice of prompt latents `(latent_dim, frames)`: cast to the denoiser's dtype, prompt-encoded alone."""
        prompt_latents, prompt_mask = self._pad_frames([latents], self._execution_device, self.denoiser.dtype)
        prompt_hidden = self.prior_encoder.encode_prompt(prompt_latents, prompt_mask)
        return FlashSpeechVoice(
            prompt_latents=prompt_latents[0].cpu(),
            prompt_hidden=prompt_hidden[0].cpu(),
            sampling_rate=self.sampling_rate,
            duration_seconds=float(duration_seconds),
            fingerprint=voice_fingerprint(self),
        )

    def _voice_states(self, voices: Sequence[FlashSpeechVoice]) -> tuple[torch.Tensor, torch.Tensor]:
        """
        The padded prompt states of voices (checked against this pipeline).

        Returns:
            `(prompt_hidden, prompt_mask)` of shapes `(len(voices), max_frames, hidden_size)` and
            `(len(voices), max_frames)`, on the execution device; zero past each voice's frames, as `encode_prompt`
            leaves padded frames.
        """
        device = self._execution_device
        for voice in {id(v): v for v in voices}.values():
            voice.check_compatible(self)
        lengths = [v.num_frames for v in voices]
        hidden = torch.zeros(
            len(voices), max(lengths), voices[0].prompt_hidden.shape[-1], dtype=voices[0].prompt_hidden.dtype
        )
        for i, voice in enumerate(voices):
            hidden[i, : lengths[i]] = voice.prompt_hidden
        mask = torch.arange(max(lengths), device=device)[None] < torch.tensor(lengths, device=device)[:, None]
        return hidden.to(device), mask

    @staticmethod
    def _check_voice_or_audio(voice, audio, audio_name: str) -> None:
        """Raises unless exactly one of `voice` and the prompt audio argument `audio_name` is given."""
        if voice is None and audio is None:
            raise ValueError(f"Give the target voice: `{audio_name}` (audio) or `voice` (from `pipe.encode_voice`).")
        if voice is not None and audio is not None:
            raise ValueError(f"Give either `{audio_name}` or `voice`, not both.")
        for i, v in enumerate(voice if isinstance(voice, (list, tuple)) else [voice]):
            if v is not None and not isinstance(v, FlashSpeechVoice):
                raise TypeError(
                    f"`voice` must be a FlashSpeechVoice (`pipe.encode_voice(...)` or `FlashSpeechVoice.load(path)`), "
                    f"got {type(v).__name__}" + (f" at index {i}." if isinstance(voice, (list, tuple)) else ".")
                )

    @staticmethod
    def _pad_frames(
        items: Sequence[torch.Tensor], device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = [item.shape[-1] for item in items]
        out = torch.zeros(len(items), items[0].shape[0], max(lengths), device=device, dtype=dtype)
        for i, item in enumerate(items):
            out[i, :, : item.shape[-1]] = item
        mask = torch.arange(max(lengths), device=device)[None] < torch.tensor(lengths, device=device)[:, None]
        return out, mask

    @staticmethod
    def _as_list(value, name: str) -> list:
        if isinstance(value, (list, tuple)):
            if len(value) == 0:
                raise ValueError(f"`{name}` is an empty list.")
            return list(value)
        return [value]

    def _check_output_length(
        self, durations: torch.Tensor, max_output_seconds: float | None, at_least: bool = False
    ) -> None:
        """
        Raises when a waveform of `durations` `(B, L)` frames would exceed `max_output_seconds` (with `at_least`,
        `durations` is a lower bound: one frame per phoneme).
        """
        if max_output_seconds is None:
            return
        frames_per_second = self.sampling_rate / self.codec.hop_length
        longest, index = durations.sum(dim=1).max(dim=0)
        seconds = int(longest) / frames_per_second
        if seconds > max_output_seconds:
            where = f" (waveform {int(index)})" if durations.shape[0] > 1 else ""
            length = (
                f"at least {seconds:.1f} s long (one latent frame per phoneme)"
                if at_least
                else f"{seconds:.1f} s long"
            )
            raise ValueError(
                f"The output{where} would be {length}, over `max_output_seconds`={max_output_seconds:g} s: "
                "split the text into sentences with `pipe.long_form(text, prompt_audio)` (or synthesize them one at a "
                "time), or raise `max_output_seconds` (time and memory grow with the output length)."
            )

    @staticmethod
    def _randn(
        channels: int, lengths: Sequence[int], generators: Sequence[torch.Generator | None], device, dtype
    ) -> torch.Tensor:
        """Draws each item's noise at its own length with its own generator, then pads: `(B, channels, max_len)`."""
        out = torch.zeros(len(lengths), channels, max(lengths), device=device, dtype=dtype)
        for i, (n, g) in enumerate(zip(lengths, generators)):
            gen_device = g.device if g is not None else device
            out[i, :, :n] = torch.randn((channels, n), generator=g, device=gen_device, dtype=dtype).to(device)
        return out

    # ------------------------------------------------------------------------------------------------------------
    # Sampling
    # ------------------------------------------------------------------------------------------------------------

    def prepare_latents(
        self,
        num_channels: int,
        mask: torch.Tensor,
        generators: Sequence[torch.Generator | None],
        latents: torch.Tensor | None = None,
        start: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        The sample that sampling starts from, at the first sigma of the scheduler (call `set_timesteps` first):
        `sigma_max * noise` or, with `start`, `start + sigma_0 * noise`.

        Args:
            num_channels (`int`): Channels of the sample.
            mask (`torch.Tensor` of shape `(batch_size, T)`): True on valid positions.
            generators (`list[torch.Generator | None]`): One per item; each item's noise is drawn at its own length.
            latents (`torch.Tensor` of shape `(batch_size, num_channels, frames)`, *optional*): Standard Gaussian noise
                to use instead of drawing it, with `frames >= T` (positions past an item's length are ignored).
            start (`torch.Tensor` of shape `(batch_size, num_channels, T)`, *optional*): A clean sample to noise.

        Returns:
            Float32 `torch.Tensor` of shape `(batch_size, num_channels, T)`.
        """
        device, dtype = mask.device, torch.float32
        lengths = mask.sum(dim=1).tolist()
        if latents is None:
            noise = self._randn(num_channels, lengths, generators, device, dtype)
        else:
            if latents.shape[-1] < mask.shape[1]:
                raise ValueError(
                    f"`latents` has {latents.shape[-1]} frames but the longest output needs {mask.shape[1]}: pass at "
                    "least that many (extra frames are ignored)."
                )
            noise = latents[..., : mask.shape[1]].to(device, dtype) * mask[:, None, :].to(dtype)
        if start is None:
            return noise * self.scheduler.init_noise_sigma
        return self.scheduler.add_noise(start, noise, self.scheduler.timesteps[0])

    def sample_latents(
        self,
        condition: torch.Tensor,
        prompt_hidden: torch.Tensor,
        frame_mask: torch.Tensor,
        prompt_mask: torch.Tensor,
        num_inference_steps: int,
        generators: Sequence[torch.Generator | None],
        **sampling_kwargs,
    ) -> torch.Tensor:
        """
        The denoiser's consistency sampling of codec latents: its step-independent work
        ([`FlashSpeechDenoiser.prepare_condition`]) once, then [`~FlashSpeechBasePipeline.sample_consistency`].

        Args:
            condition (`torch.Tensor` of shape `(batch_size, T, condition_dim)`): Frame-level condition.
            prompt_hidden (`torch.Tensor` of shape `(batch_size, Fp, H)`), prompt_mask (`(batch_size, Fp)`): Prompt.
            frame_mask (`torch.Tensor` of shape `(batch_size, T)`): True on valid frames.
            num_inference_steps (`int`), generators (`list`), **sampling_kwargs: As in `sample_consistency`.

        Returns:
            Float32 `torch.Tensor` of shape `(batch_size, latent_dim, T)`.
        """
        prepared = self.denoiser.prepare_condition(condition, prompt_hidden, frame_mask, prompt_mask)
        return self.sample_consistency(
            lambda x, s: self.denoiser(x, s, prepared).sample,
            self.denoiser.config.latent_dim,
            frame_mask,
            num_inference_steps,
            generators,
            **sampling_kwargs,
        )

    def sample_consistency(
        self,
        consistency_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        channels: int,
        mask: torch.Tensor,
        num_inference_steps: int,
        generators: Sequence[torch.Generator | None],
        start: torch.Tensor | None = None,
        sigmas: list[float] | None = None,
        progress: bool = False,
        strength: float = 1.0,
        latents: torch.Tensor | None = None,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ) -> torch.Tensor:
        """
        Multistep consistency sampling (Song et al. 2023, Algorithm 1) with the pipeline's scheduler.

        Args:
            consistency_fn (`Callable`): `(x (B, channels, T), sigma (B,)) -> denoised (B, channels, T)`.
            channels (`int`): Channels of the sample.
            mask (`torch.Tensor` of shape `(batch_size, T)`): True on valid positions.
            num_inference_steps (`int`): Network evaluations (ignored when `sigmas` is given).
            generators (`list[torch.Generator | None]`): One per item.
            start (`torch.Tensor` of shape `(batch_size, channels, T)`, *optional*): A clean sample to start from,
                noised to the first sigma (voice conversion, editing); pure noise when omitted.
            sigmas (`list[float]`, *optional*): Explicit decreasing sigmas.
            progress (`bool`): Show a progress bar.
            strength (`float`, defaults to 1.0): With `start`, how far down the noise scale sampling starts (see
                [`FlashSpeechScheduler.set_timesteps`]).
            latents (`torch.Tensor`, *optional*): Initial noise instead of a draw (see
                [`~FlashSpeechBasePipeline.prepare_latents`]).
            callback_on_step_end (`Callable`, *optional*): Called after every step as
                `callback_on_step_end(self, i, t, callback_kwargs)` with the tensors named in
                `callback_on_step_end_tensor_inputs` (`"latents"`: the sample for the next step, `"denoised"`: this
                step's estimate); a `"latents"` entry of the returned dict replaces the sample.
            callback_on_step_end_tensor_inputs (`Sequence[str]`, defaults to `("latents",)`): Names passed to the
                callback, from `_callback_tensor_inputs`.

        Returns:
            Float32 `torch.Tensor` of shape `(batch_size, channels, T)`, zero where `mask` is False.

        The sampling state (noise, noisy samples, scheduler arithmetic) is float32 whatever the models' dtype, so a
        seed draws the same noise at every precision; `consistency_fn` gets float32 samples.
        """
        device, dtype = mask.device, torch.float32
        lengths = mask.sum(dim=1).tolist()
        self.scheduler.set_timesteps(num_inference_steps, device=device, sigmas=sigmas, strength=strength)
        timesteps = self.scheduler.timesteps
        sample = self.prepare_latents(channels, mask, generators, latents=latents, start=start)
        m = mask[:, None, :].to(dtype)
        with self.progress_bar(total=len(timesteps)) if progress else nullcontext() as bar:
            for i, t in enumerate(timesteps):
                denoised = consistency_fn(sample * m, t.expand(mask.shape[0]))
                step_noise = None
                if i + 1 < len(timesteps):
                    step_noise = self._randn(channels, lengths, generators, device, dtype)
                sample = self.scheduler.step(denoised, t, sample, noise=step_noise).prev_sample
                if callback_on_step_end is not None:
                    tensors = {"latents": sample, "denoised": denoised}
                    callback_kwargs = {name: tensors[name] for name in callback_on_step_end_tensor_inputs}
                    callback_outputs = callback_on_step_end(self, i, t, callback_kwargs)
                    sample = callback_outputs.pop("latents", sample)
                if bar is not None:
                    bar.update()
        return sample * m

    def _refine(
        self,
        regression: torch.Tensor,
        refine_fn: Callable,
        hidden: torch.Tensor,
        mask: torch.Tensor,
        prosody_alpha: float,
        num_inference_steps: int,
        generators: Sequence[torch.Generator | None],
    ) -> torch.Tensor:
        """`regression + prosody_alpha * residual`, the residual sampled from a prosody refinement model; shapes
        `(B, T)`. With `prosody_alpha == 0` nothing is sampled (and no random number drawn)."""
        if prosody_alpha == 0:
            return regression
        residual = self.sample_consistency(
            lambda x, s: refine_fn(x, s, hidden, mask), 1, mask, num_inference_steps, generators
        )
        return regression + prosody_alpha * residual[:, 0]

    def predict_durations(
        self,
        phoneme_hidden: torch.Tensor,
        phoneme_mask: torch.Tensor,
        prompt_hidden: torch.Tensor,
        prompt_mask: torch.Tensor,
        prosody_alpha: float,
        speed: float,
        num_inference_steps: int,
        generators: Sequence[torch.Generator | None],
    ) -> torch.Tensor:
        """
        Frames per phoneme: `regression + prosody_alpha * refinement` of `log(1 + frames)`, rounded.

        Args:
            phoneme_hidden, phoneme_mask, prompt_hidden, prompt_mask, prosody_alpha, speed, num_inference_steps,
            generators: As in [`~FlashSpeechBasePipeline.predict_prosody`].

        Returns:
            `torch.LongTensor` of shape `(B, L)`: at least one frame per real phoneme, zero on padding.
        """
        prosody = self.prosody_generator
        log_dur, dur_hidden = prosody.predict_durations(phoneme_hidden, phoneme_mask, prompt_hidden, prompt_mask)
        log_dur = self._refine(
            log_dur, prosody.refine_durations, dur_hidden, phoneme_mask, prosody_alpha, num_inference_steps, generators
        )
        return prosody.durations_to_frames(log_dur, phoneme_mask, speed)

    def predict_prosody(
        self,
        phoneme_hidden: torch.Tensor,
        phoneme_mask: torch.Tensor,
        prompt_hidden: torch.Tensor,
        prompt_mask: torch.Tensor,
        prosody_alpha: float,
        speed: float,
        num_inference_steps: int,
        generators: Sequence[torch.Generator | None],
        durations: torch.Tensor | None = None,
        max_output_seconds: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Durations, length regulation and pitch: `regression + prosody_alpha * refinement`.

        Args:
            phoneme_hidden (`torch.Tensor` of shape `(B, L, H)`), phoneme_mask (`(B, L)`): Phoneme features.
            prompt_hidden (`torch.Tensor` of shape `(B, Fp, H)`), prompt_mask (`(B, Fp)`): Prompt features.
            prosody_alpha (`float`): Weight of the refinement residual (0 = deterministic regression).
            speed (`float`): Speaking rate.
            num_inference_steps (`int`): Evaluations of each refinement model.
            generators (`list`): One generator per item.
            durations (`torch.LongTensor` of shape `(B, L)`, *optional*): Given durations (skips duration prediction).
            max_output_seconds (`float`, *optional*): Raise a `ValueError` before length regulation when a waveform
                would be longer.

        Returns:
            `(durations (B, L), condition (B, F, H), frame_mask (B, F), log_pitch (B, F))`.
        """
        prosody = self.prosody_generator
        if durations is None:
            durations = self.predict_durations(
                phoneme_hidden, phoneme_mask, prompt_hidden, prompt_mask, prosody_alpha, speed, num_inference_steps,
                generators,
            )  # fmt: skip
        self._check_output_length(durations, max_output_seconds)
        frame_hidden, frame_mask = length_regulate(phoneme_hidden, durations)
        log_pitch, pitch_hidden = prosody.predict_pitch(frame_hidden, frame_mask, prompt_hidden, prompt_mask)
        log_pitch = self._refine(
            log_pitch, prosody.refine_pitch, pitch_hidden, frame_mask, prosody_alpha, num_inference_steps, generators
        )
        condition = frame_hidden + prosody.embed_pitch(log_pitch, frame_mask)
        return durations, condition, frame_mask, log_pitch

    def decode_items(self, latents: torch.Tensor, frame_mask: torch.Tensor) -> list[torch.Tensor]:
        """
        Decodes each item of a padded batch of latents at its own length.

        Args:
            latents (`torch.Tensor` of shape `(B, latent_dim, T)`), frame_mask (`torch.Tensor` of shape `(B, T)`).

        Returns:
            `list[torch.Tensor]`: B waveforms of shape `(num_samples_i,)`, on the pipeline's device and in the codec's
            output dtype.
        """
        frames = frame_mask.sum(dim=1).tolist()
        return [self.codec.decode(latents[i : i + 1, :, :n])[0] for i, n in enumerate(frames)]

    def _postprocess(
        self,
        latents: torch.Tensor,
        frame_mask: torch.Tensor,
        durations: torch.Tensor,
        phoneme_mask: torch.Tensor,
        log_pitch: torch.Tensor,
        output_type: str,
        return_dict: bool,
    ):
        """Decodes each item at its own length (or keeps the latents for `output_type="latent"`) and packs the output."""
        frames = frame_mask.sum(dim=1).tolist()
        if output_type == "latent":
            audios, lengths = latents, frames
        else:
            waveforms = self.decode_items(latents, frame_mask)
            lengths = [w.shape[-1] for w in waveforms]
            audios = torch.zeros(len(waveforms), max(lengths), dtype=torch.float32)
            for i, w in enumerate(waveforms):
                audios[i, : w.shape[-1]] = w.float().cpu()
            if output_type == "np":  # validated before any work by the callers
                audios = audios.numpy()
        self.maybe_free_model_hooks()
        if not return_dict:
            return (audios,)
        n_ph = phoneme_mask.sum(dim=1).tolist()
        return FlashSpeechPipelineOutput(
            audios=audios,
            audio_lengths=lengths,
            durations=[durations[i, :n].cpu() for i, n in enumerate(n_ph)],
            log_pitch=[log_pitch[i, :n].float().cpu() for i, n in enumerate(frames)],
        )

    @staticmethod
    def _check_common(num_inference_steps: int, prosody_alpha: float, name: str = "num_inference_steps") -> None:
        _check_int(num_inference_steps, name, 1, MAX_INFERENCE_STEPS)
        _check_float(
            prosody_alpha, "prosody_alpha", 0.0, 1.0, note=" 0 is the regression prosody, 1 the full sampled residual."
        )

    def _check_aligner(self) -> None:
        if self.aligner is None:
            raise ValueError(
                "This pipeline has no `aligner` component, which voice conversion and speech editing need to find the "
                "phoneme durations of real audio. Load a checkpoint that carries one, or pass a trained aligner: "
                f"`{type(self).__name__}.from_pretrained(path, aligner=FlashSpeechAligner.from_pretrained(...))` (the "
                "dataset preparation step saves one under `OUT/aligner`)."
            )

    @torch.no_grad()
    def align(
        self,
        audio: AudioInput,
        text: str,
        sampling_rate: int | None = None,
        name: str = "audio",
        max_seconds: float | None = MAX_OUTPUT_SECONDS,
    ) -> FlashSpeechAlignment:
        r"""
        Phoneme durations of a recording of `text`, in latent frames, from the pipeline's aligner.

        The text is phonemized by the tokenizer, the audio encoded by the codec, and the aligner's monotonic alignment
        search gives every phoneme at least one frame; the durations sum to the recording's number of latent frames.

        Args:
            audio (`str`, `os.PathLike`, `np.ndarray` or `torch.Tensor`): A path or a 1-D waveform.
            text (`str`): What is said in `audio`.
            sampling_rate (`int`, *optional*): Sample rate of an array `audio` (required for arrays).
            name (`str`, defaults to `"audio"`): Argument name used in error messages.
            max_seconds (`float`, *optional*, defaults to 60.0): Longest recording accepted (None: no limit).

        Returns:
            [`FlashSpeechAlignment`] with `phonemes`, `durations` `(num_phonemes,)`, `input_ids`, `latents`
            `(latent_dim, num_frames)` and `waveform` `(num_samples,)` at `self.sampling_rate`.

        Examples:

        ```py
        >>> from flashspeech_hf import FlashSpeechPipeline

        >>> pipe = FlashSpeechPipeline.from_pretrained("path/or/org/flashspeech")
        >>> alignment = pipe.align("speech.wav", "Hello world.")
        >>> list(zip(alignment.phonemes, alignment.durations.tolist()))[:3]
        ```
        """
        self._check_aligner()
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"The text of `{name}` is empty: give the words spoken in it.")
        waveform, _ = load_audio(audio, sampling_rate, self.sampling_rate, name, max_seconds, "max_seconds")
        check_speech(waveform, self.sampling_rate, MIN_SOURCE_SECONDS, name=name)
        phonemes = self.tokenizer.phonemize(text)[0]
        device = self._execution_device
        input_ids = torch.tensor(self.tokenizer.convert_tokens_to_ids(phonemes), dtype=torch.long, device=device)
        latents = self.codec.encode(waveform.to(device)[None], self.sampling_rate)[0]
        num_frames, num_phonemes = latents.shape[-1], len(phonemes)
        if num_frames < num_phonemes:
            raise ValueError(
                f"`{name}` has {num_frames} latent frames but its text has {num_phonemes} phonemes: the audio is too "
                "short for the text (is it the right text?)."
            )
        durations = self.aligner.durations(input_ids[None], None, latents[None].to(self.aligner.dtype))[0]
        return FlashSpeechAlignment(
            phonemes=phonemes,
            durations=durations.long(),
            input_ids=input_ids,
            latents=latents.float(),
            waveform=waveform,
        )
