"""FlashSpeechPipeline: zero-shot speech synthesis in one or two consistency-model evaluations."""

from __future__ import annotations

import difflib
import json
import math
import numbers
import os
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from diffusers.pipelines.pipeline_utils import AudioPipelineOutput, DiffusionPipeline
from diffusers.utils import logging, replace_example_docstring
from huggingface_hub import snapshot_download
from transformers import PreTrainedTokenizer

from ..audio import AudioInput, check_audio_input, check_speech, load_audio
from ..models.modeling_aligner import FlashSpeechAligner
from ..models.modeling_denoiser import FlashSpeechDenoiser
from ..models.modeling_prior import FlashSpeechPriorEncoder
from ..models.modeling_prosody import FlashSpeechProsodyGenerator, length_regulate
from ..precision import INT8_COMPONENTS, is_int8_quantized, quantize_dynamic_int8
from ..schedulers.scheduling_flashspeech import FlashSpeechScheduler
from .long_form import FlashSpeechLongFormMixin

logger = logging.get_logger(__name__)

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import soundfile as sf
        >>> import torch
        >>> from flashspeech_hf import FlashSpeechPipeline

        >>> pipe = FlashSpeechPipeline.from_pretrained("path/or/org/flashspeech")  # a saved pipeline or a Hub id
        >>> generator = torch.Generator().manual_seed(0)
        >>> audio = pipe(
        ...     "Speech synthesis in two steps.",
        ...     prompt_audio="prompt.wav",  # three seconds or more of the target voice
        ...     num_inference_steps=2,
        ...     generator=generator,
        ... ).audios[0]
        >>> sf.write("output.wav", audio, pipe.sampling_rate)
        ```
"""

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


def _check_output_type(output_type, return_dict) -> None:
    if output_type not in ("np", "pt"):
        raise ValueError(f"`output_type` must be 'np' or 'pt', got {output_type!r}.")
    if not isinstance(return_dict, bool):
        raise ValueError(f"`return_dict` must be True or False, got {return_dict!r}.")


@dataclass
class FlashSpeechPipelineOutput(AudioPipelineOutput):
    """
    Output of [`FlashSpeechPipeline`].

    Args:
        audios (`np.ndarray` or `torch.Tensor` of shape `(batch_size, num_samples)`):
            Mono waveforms at `pipe.sampling_rate`, zero-padded to the longest; item `i` is `audios[i, :audio_lengths[i]]`.
        audio_lengths (`list[int]`): Number of valid samples of each waveform.
        durations (`list[torch.LongTensor]`): Frames per phoneme of each waveform, shape `(num_phonemes_i,)`.
        log_pitch (`list[torch.Tensor]`): Predicted `ln F0` per latent frame of each waveform, shape `(num_frames_i,)`.
    """

    audio_lengths: list[int] | None = None
    durations: list[torch.Tensor] | None = None
    log_pitch: list[torch.Tensor] | None = None


@dataclass
class FlashSpeechEditOutput(FlashSpeechPipelineOutput):
    """
    Output of [`FlashSpeechPipeline.edit`]: the fields of [`FlashSpeechPipelineOutput`] for the edited utterance, plus
    where the splice lies.

    Args:
        edit_start (`int`): First sample of the output that differs from the original (start of the left cross-fade);
            `audios[0, :edit_start]` equals the original waveform's first `edit_start` samples.
        edit_end (`int`): End (exclusive) of the spliced region in the output (end of the right cross-fade);
            `audios[0, edit_end:]` equals `original[original_end:]`.
        original_end (`int`): End (exclusive) of the replaced region in the original waveform.
        original_phonemes (`list[str]`): Phonemes of the original text that were replaced.
        new_phonemes (`list[str]`): Phonemes that were generated in their place.
    """

    edit_start: int = 0
    edit_end: int = 0
    original_end: int = 0
    original_phonemes: list[str] | None = None
    new_phonemes: list[str] | None = None


@dataclass
class FlashSpeechAlignment:
    """
    Phoneme durations of a recording, from [`FlashSpeechPipeline.align`].

    Args:
        phonemes (`list[str]`): Phoneme tokens of the text (word boundaries and pause marks included).
        durations (`torch.LongTensor` of shape `(num_phonemes,)`): Latent frames per phoneme; they sum to `num_frames`.
        input_ids (`torch.LongTensor` of shape `(num_phonemes,)`): Ids of `phonemes`.
        latents (`torch.Tensor` of shape `(latent_dim, num_frames)`): The recording's normalized codec latents (float32).
        waveform (`torch.Tensor` of shape `(num_samples,)`): The recording at the codec's sample rate.
    """

    phonemes: list[str]
    durations: torch.Tensor
    input_ids: torch.Tensor
    latents: torch.Tensor
    waveform: torch.Tensor


class FlashSpeechPipeline(FlashSpeechLongFormMixin, DiffusionPipeline):
    r"""
    Zero-shot text-to-speech with FlashSpeech (Ye et al. 2024).

    Text is turned into phonemes by the tokenizer and encoded by the prior encoder, conditioned on a speech prompt
    encoded by the codec; the prosody generator predicts durations and pitch (regression plus an `alpha`-weighted
    consistency refinement); the latent consistency model maps noise to codec latents in `num_inference_steps`
    evaluations; the codec decodes them to a waveform.

    This pipeline inherits from [`DiffusionPipeline`]: `save_pretrained`, `from_pretrained` (local folders and Hub ids)
    and `push_to_hub` handle every component. Texts longer than a sentence: [`~FlashSpeechLongFormMixin.long_form`]
    (one waveform) and [`~FlashSpeechLongFormMixin.stream`] (sentence by sentence).

    Args:
        tokenizer ([`FlashSpeechTokenizer`]): Text to phoneme ids.
        codec ([`EncodecCodec`], [`DacCodec`] or [`MelCodec`]): Waveform <-> normalized latents.
        prior_encoder ([`FlashSpeechPriorEncoder`]): Phoneme encoder and prompt encoder.
        prosody_generator ([`FlashSpeechProsodyGenerator`]): Durations and pitch.
        denoiser ([`FlashSpeechDenoiser`]): The latent consistency model.
        scheduler ([`FlashSpeechScheduler`]): Noise levels for 1-, 2- or N-step sampling.
        aligner ([`FlashSpeechAligner`], *optional*): Phoneme durations of real audio, needed by
            [`~FlashSpeechPipeline.voice_conversion`], [`~FlashSpeechPipeline.edit`] and
            [`~FlashSpeechPipeline.align`]; text-to-speech does not use it.
    """

    model_cpu_offload_seq = "aligner->prior_encoder->prosody_generator->denoiser->codec"
    _optional_components = ["aligner"]

    def __init__(
        self,
        tokenizer: PreTrainedTokenizer,
        codec: torch.nn.Module,
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

    @property
    def sampling_rate(self) -> int:
        """Sample rate of the generated audio (the codec's)."""
        return self.codec.sampling_rate

    # ------------------------------------------------------------------------------------------------------------
    # Loading
    # ------------------------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> FlashSpeechPipeline:
        """
        Loads a pipeline saved with `save_pretrained` from a local folder or a Hugging Face Hub repository id.

        Stock diffusers refuses to download pipelines whose components live outside diffusers/transformers, so a Hub
        id is first resolved to a local snapshot with `huggingface_hub.snapshot_download` (honouring `revision`,
        `cache_dir`, `token`, `local_files_only` and `HF_HUB_OFFLINE`), then loaded from there.

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`): A folder with `model_index.json` or a repo id.
            quantization (`str`, *optional*): `"int8"` applies
                [`~FlashSpeechPipeline.enable_int8_dynamic_quantization`] after loading (CPU, float32 weights only).
            **kwargs: Passed to [`DiffusionPipeline.from_pretrained`], e.g. `dtype=torch.bfloat16` (or the deprecated
                `torch_dtype`) to run the networks in lower precision; the numerically fragile parts stay in float32
                (see `flashspeech_hf.precision`) and the audio is float32.

        Returns:
            [`FlashSpeechPipeline`]
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
                raise ValueError(f"{path} is not a folder with a saved FlashSpeechPipeline, nor a Hub repository id.")
            try:
                path = snapshot_download(
                    path,
                    revision=kwargs.pop("revision", None),
                    cache_dir=kwargs.pop("cache_dir", None),
                    token=kwargs.pop("token", None),
                    local_files_only=kwargs.pop("local_files_only", False),
                )
            except Exception as err:
                raise OSError(
                    f"Could not resolve FlashSpeechPipeline '{pretrained_model_name_or_path}': {err}"
                ) from err
        cls._check_checkpoint(path)
        pipe = super().from_pretrained(path, **kwargs)
        # Weights come back as views into memory-mapped safetensors files, not 64-byte aligned, so SIMD kernels would
        # round differently from the saved pipeline; owned copies make a reloaded pipeline sample bit-identically.
        for component in pipe.components.values():
            if isinstance(component, torch.nn.Module):
                for tensor in (*component.parameters(), *component.buffers()):
                    tensor.data = tensor.data.clone()
        if quantization == "int8":
            pipe.enable_int8_dynamic_quantization()
        return pipe

    def enable_int8_dynamic_quantization(self, components: Sequence[str] = INT8_COMPONENTS) -> FlashSpeechPipeline:
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
            [`FlashSpeechPipeline`]: `self`.

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
        """Saves the pipeline like [`DiffusionPipeline.save_pretrained`]; raises for an int8-quantized pipeline."""
        quantized = [n for n, c in self.components.items() if isinstance(c, torch.nn.Module) and is_int8_quantized(c)]
        if quantized:
            raise ValueError(
                f"The component(s) {quantized} are int8 dynamically quantized, which cannot be saved: save the float "
                "pipeline and pass `quantization='int8'` to `from_pretrained`."
            )
        return super().save_pretrained(save_directory, *args, **kwargs)

    @classmethod
    def _check_checkpoint(cls, path: str) -> None:
        """Raises a `ValueError` naming what is missing when `path` is not a complete saved pipeline."""
        index_file = os.path.join(path, "model_index.json")
        if not os.path.isfile(index_file):
            raise ValueError(f"{path} is not a saved FlashSpeechPipeline: it has no model_index.json.")
        try:
            with open(index_file, encoding="utf-8") as f:
                index = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{index_file} is not valid JSON: {err}") from err
        expected = [name for name in cls._get_signature_keys(cls)[0] if name not in cls._optional_components]
        missing = [name for name in expected if name not in index or index[name] in (None, [None, None])]
        if missing:
            raise ValueError(f"{index_file} lacks the component(s) {missing}; a FlashSpeechPipeline needs {expected}.")
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
    ) -> FlashSpeechPipeline:
        """
        Builds a randomly initialised pipeline of a named size (see `flashspeech_hf.configs.PIPELINE_CONFIGS`).

        Args:
            name (`str`): `"tiny"` (tests, seconds on a CPU) or `"paper"` (the published sizes).
            tokenizer ([`FlashSpeechTokenizer`], *optional*): Defaults to the built-in English phoneme tokenizer.
            codec (*optional*): A codec to use instead of the config's randomly initialised one (e.g.
                `EncodecCodec.from_transformers("facebook/encodec_24khz")`); the latent size follows it.
            **overrides (`dict`): Per-component config updates, e.g. `denoiser={"num_layers": 20}`; `aligner=None`
                builds the pipeline without its optional aligner.

        Returns:
            [`FlashSpeechPipeline`]

        Examples:

        ```py
        >>> from flashspeech_hf import FlashSpeechPipeline

        >>> pipe = FlashSpeechPipeline.from_named_config("tiny")
        >>> pipe.denoiser.config.num_layers
        3
        ```
        """
        from ..configs import get_pipeline_config
        from ..text import FlashSpeechTokenizer

        config = get_pipeline_config(name)
        for component, update in overrides.items():
            if component not in config:
                raise ValueError(f"Unknown component {component!r}; components are {sorted(config)}.")
            if update is None and component == "aligner":
                config[component] = None
            else:
                config[component].update(update)
        tokenizer = tokenizer if tokenizer is not None else FlashSpeechTokenizer()
        codec = codec if codec is not None else _build_codec(config["codec"])
        hidden = config["prior_encoder"].get("hidden_size", 512)
        prior_encoder = FlashSpeechPriorEncoder(
            vocab_size=len(tokenizer),
            latent_dim=codec.latent_dim,
            pad_token_id=tokenizer.pad_token_id,
            **config["prior_encoder"],
        )
        prosody_generator = FlashSpeechProsodyGenerator(hidden_size=hidden, **config["prosody_generator"])
        denoiser = FlashSpeechDenoiser(
            latent_dim=codec.latent_dim, condition_dim=hidden, prompt_dim=hidden, **config["denoiser"]
        )
        scheduler = FlashSpeechScheduler(**config["scheduler"])
        aligner = None
        if config.get("aligner") is not None:
            aligner = FlashSpeechAligner(
                vocab_size=len(tokenizer),
                latent_dim=codec.latent_dim,
                pad_token_id=tokenizer.pad_token_id,
                **config["aligner"],
            ).eval()
        # eval mode, as `from_pretrained` returns its models
        models = [m.eval() for m in (codec, prior_encoder, prosody_generator, denoiser)]
        return cls(tokenizer, models[0], *models[1:], scheduler, aligner=aligner)

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
    def encode_audio(self, waveforms: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Encodes waveforms one by one (so padding never changes an item) and pads the latents.

        Args:
            waveforms (`list[torch.Tensor]`): 1-D waveforms at `self.sampling_rate`.

        Returns:
            `(latents, mask)` of shapes `(batch_size, latent_dim, max_frames)` and `(batch_size, max_frames)`.
        """
        device, dtype = self._execution_device, self.denoiser.dtype
        latents = [self.codec.encode(w.to(device)[None], self.sampling_rate)[0] for w in waveforms]
        return self._pad_frames(latents, device, dtype)

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

    def check_inputs(
        self,
        text,
        prompt_audio,
        prompt_sampling_rate=None,
        num_inference_steps=2,
        prosody_alpha=0.2,
        speed=1.0,
        num_waveforms_per_prompt=1,
        generator=None,
        output_type="np",
        return_dict=True,
        prosody_num_inference_steps=None,
        max_output_seconds=MAX_OUTPUT_SECONDS,
        max_prompt_seconds=MAX_PROMPT_SECONDS,
    ) -> tuple[list[str], list, list[torch.Generator | None], int]:
        """
        Validates every argument of `__call__` before any work (no model runs, no prompt is decoded): types, ranges,
        finiteness, the prompts' sample rates (4-192 kHz) and lengths (files through their header), the text length
        and the generators.

        Returns:
            `(texts, prompts, generators, prosody_num_inference_steps)`: texts and prompts as lists of equal length,
            one generator (or None) per output waveform, the prosody step count with its default resolved.
        """
        texts = self._as_list(text, "text")
        for t in texts:
            if not isinstance(t, str):
                raise TypeError(f"`text` must be a string or a list of strings, got {type(t).__name__}.")
            if not t.strip():
                raise ValueError("`text` is empty: give the sentence to speak.")
        prompts = self._as_list(prompt_audio, "prompt_audio")
        if len(prompts) == 1 and len(texts) > 1:
            prompts = prompts * len(texts)
        if len(prompts) != len(texts):
            raise ValueError(f"Got {len(texts)} texts but {len(prompts)} prompts; pass one prompt or one per text.")
        self._check_common(num_inference_steps, prosody_alpha)
        if prosody_num_inference_steps is None:
            prosody_num_inference_steps = num_inference_steps
        _check_int(prosody_num_inference_steps, "prosody_num_inference_steps", 1, MAX_INFERENCE_STEPS)
        low, high = SPEED_RANGE
        _check_float(speed, "speed", low, high, note=" 1.5 speaks 1.5 times faster than the predicted durations.")
        n = _check_int(num_waveforms_per_prompt, "num_waveforms_per_prompt", 1)
        if len(texts) * n > MAX_BATCH_SIZE:
            raise ValueError(
                f"This call would generate {len(texts) * n} waveforms (len(text) * num_waveforms_per_prompt); at most "
                f"{MAX_BATCH_SIZE} are generated in one call: split the texts over several calls."
            )
        _check_output_type(output_type, return_dict)
        _check_float(max_output_seconds, "max_output_seconds", 0.0, low_open=True)
        _check_float(max_prompt_seconds, "max_prompt_seconds", MIN_PROMPT_SECONDS)
        for i, t in enumerate(texts):
            _check_text_length(t, f"text[{i}]" if len(texts) > 1 else "text", max_output_seconds)
        for p in {id(p): p for p in prompts}.values():
            check_audio_input(p, prompt_sampling_rate, "prompt_audio", max_prompt_seconds, "max_prompt_seconds")
        generators = _as_generators(generator, len(texts) * n)
        return texts, prompts, generators, int(prosody_num_inference_steps)

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

        Returns:
            Float32 `torch.Tensor` of shape `(batch_size, channels, T)`, zero where `mask` is False.

        The sampling state (noise, noisy samples, scheduler arithmetic) is float32 whatever the models' dtype, so a
        seed draws the same noise at every precision; `consistency_fn` gets float32 samples.
        """
        device, dtype = mask.device, torch.float32
        lengths = mask.sum(dim=1).tolist()
        self.scheduler.set_timesteps(num_inference_steps, device=device, sigmas=sigmas)
        timesteps = self.scheduler.timesteps
        noise = self._randn(channels, lengths, generators, device, dtype)
        if start is None:
            sample = noise * self.scheduler.init_noise_sigma
        else:
            sample = self.scheduler.add_noise(start, noise, timesteps[0])
        m = mask[:, None, :].to(dtype)
        with self.progress_bar(total=len(timesteps)) if progress else nullcontext() as bar:
            for i, t in enumerate(timesteps):
                denoised = consistency_fn(sample * m, t.expand(mask.shape[0]))
                step_noise = None
                if i + 1 < len(timesteps):
                    step_noise = self._randn(channels, lengths, generators, device, dtype)
                sample = self.scheduler.step(denoised, t, sample, noise=step_noise).prev_sample
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
            generators: As in [`~FlashSpeechPipeline.predict_prosody`].

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
        frames = frame_mask.sum(dim=1).tolist()
        waveforms = [self.codec.decode(latents[i : i + 1, :, :n])[0] for i, n in enumerate(frames)]
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

    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        text: str | list[str],
        prompt_audio: AudioInput | list[AudioInput],
        prompt_sampling_rate: int | None = None,
        num_inference_steps: int = 2,
        prosody_alpha: float = 0.2,
        speed: float = 1.0,
        num_waveforms_per_prompt: int = 1,
        generator: GeneratorInput = None,
        output_type: str = "np",
        return_dict: bool = True,
        prosody_num_inference_steps: int = 1,
        max_output_seconds: float = MAX_OUTPUT_SECONDS,
        max_prompt_seconds: float = MAX_PROMPT_SECONDS,
    ) -> FlashSpeechPipelineOutput | tuple:
        r"""
        Synthesizes `text` in the voice of `prompt_audio`.

        Every argument is checked before any work (see [`~FlashSpeechPipeline.check_inputs`]).

        Args:
            text (`str` or `list[str]`): Sentence(s) to speak. Characters the tokenizer's language cannot pronounce
                (other scripts, emoji) are dropped with a warning that names them.
            prompt_audio (`str`, `os.PathLike`, `np.ndarray`, `torch.Tensor` or a list of them):
                Speech prompt(s) of the target voice (1 s at least; 3 s as in the paper): paths, or 1-D waveforms with
                `prompt_sampling_rate`. Float samples are expected in [-1, 1]; integer PCM arrays (`int16`, `int32`,
                `int8`, `uint8`) are scaled as files are read (`int16 / 32768`). One prompt for every text, or one per
                text.
            prompt_sampling_rate (`int`, *optional*): Sample rate of array prompts in Hz (4000-192000); resampled to
                the codec's rate.
            num_inference_steps (`int`, defaults to 2): Consistency-model evaluations (2 is the paper's default), 1 to
                1000.
            prosody_alpha (`float`, defaults to 0.2): Weight of the prosody refinement, in [0, 1]; 0 gives the
                regression prosody, 1 the full sampled residual (the paper compares 0, 0.2 and 1).
            speed (`float`, defaults to 1.0): Speaking rate, in [0.25, 4]; 1.5 speaks 1.5 times faster.
            num_waveforms_per_prompt (`int`, defaults to 1): Waveforms per text (diverse sampling); at most 256
                waveforms in one call.
            generator (`torch.Generator`, `int` or a list of them, *optional*): Controls every random draw. An `int`
                is a seed: `generator=0` is the same as `generator=torch.Generator().manual_seed(0)`. A list with one
                generator (or seed) per output waveform makes each waveform independent of the others in the batch.
            output_type (`str`, defaults to `"np"`): `"np"` or `"pt"`.
            return_dict (`bool`, defaults to `True`): Return a [`FlashSpeechPipelineOutput`] rather than a tuple.
            prosody_num_inference_steps (`int`, defaults to 1): Evaluations of each prosody refinement model; the
                paper samples the refiners with one step. `None` uses `num_inference_steps`.
            max_output_seconds (`float`, defaults to 60.0): Longest waveform generated: a longer predicted output
                (or a text too long to fit in it) raises a `ValueError` before the memory is allocated. Split long text
                into sentences, or raise this limit.
            max_prompt_seconds (`float`, defaults to 30.0): Longest prompt accepted (checked before it is read); trim
                longer prompts, or raise this limit.

        Examples:

        Returns:
            [`FlashSpeechPipelineOutput`] or a tuple whose first element is the audio array of shape
            `(batch_size * num_waveforms_per_prompt, num_samples)`.
        """
        texts, prompts, generators, prosody_steps = self.check_inputs(
            text, prompt_audio, prompt_sampling_rate, num_inference_steps, prosody_alpha, speed,
            num_waveforms_per_prompt, generator, output_type, return_dict, prosody_num_inference_steps,
            max_output_seconds, max_prompt_seconds,
        )  # fmt: skip
        device = self._execution_device
        n = num_waveforms_per_prompt
        tokens = self.tokenizer(texts, padding=True, return_tensors="pt")
        # every phoneme lasts one frame at least: a text with more phonemes than frames cannot fit
        self._check_output_length(tokens["attention_mask"], max_output_seconds, at_least=True)
        # read, encode and run the prompt encoder once per distinct prompt (one prompt is often shared by all texts)
        distinct = list({id(p): p for p in prompts}.values())
        position = {id(p): i for i, p in enumerate(distinct)}
        index = torch.tensor([position[id(p)] for p in prompts], device=device).repeat_interleave(n)
        waveforms = [
            self.load_prompt(p, prompt_sampling_rate, max_prompt_seconds=max_prompt_seconds) for p in distinct
        ]
        prompt_latents, prompt_mask = self.encode_audio(waveforms)
        prompt_hidden = self.prior_encoder.encode_prompt(prompt_latents, prompt_mask)[index]
        prompt_mask = prompt_mask[index]
        input_ids = tokens["input_ids"].to(device).repeat_interleave(n, dim=0)
        phoneme_mask = tokens["attention_mask"].to(device).bool().repeat_interleave(n, dim=0)

        phoneme_hidden = self.prior_encoder.encode_phonemes(input_ids, phoneme_mask, prompt_hidden, prompt_mask)
        durations, condition, frame_mask, log_pitch = self.predict_prosody(
            phoneme_hidden, phoneme_mask, prompt_hidden, prompt_mask, prosody_alpha, speed, prosody_steps, generators,
            max_output_seconds=max_output_seconds,
        )  # fmt: skip
        latents = self.sample_consistency(
            lambda x, s: self.denoiser(x, s, condition, prompt_hidden, frame_mask, prompt_mask).sample,
            self.denoiser.config.latent_dim,
            frame_mask,
            num_inference_steps,
            generators,
            progress=True,
        )
        return self._postprocess(latents, frame_mask, durations, phoneme_mask, log_pitch, output_type, return_dict)

    # ------------------------------------------------------------------------------------------------------------
    # Zero-shot applications: alignment, voice conversion, speech editing
    # ------------------------------------------------------------------------------------------------------------

    @staticmethod
    def _check_common(num_inference_steps: int, prosody_alpha: float, name: str = "num_inference_steps") -> None:
        _check_int(num_inference_steps, name, 1, MAX_INFERENCE_STEPS)
        _check_float(
            prosody_alpha, "prosody_alpha", 0.0, 1.0, note=" 0 is the regression prosody, 1 the full sampled residual."
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
        if self.aligner is None:
            raise ValueError(
                "This pipeline has no `aligner` component, which voice conversion and speech editing need to find the "
                "phoneme durations of real audio. Load a checkpoint that carries one, or pass a trained aligner: "
                "`FlashSpeechPipeline.from_pretrained(path, aligner=FlashSpeechAligner.from_pretrained(...))` (the "
                "dataset preparation step saves one under `OUT/aligner`)."
            )
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

    def strength_to_sigmas(self, strength: float, num_inference_steps: int) -> list[float]:
        r"""
        Noise levels of voice conversion for a given `strength`.

        The starting level interpolates the Karras scale linearly in `sigma^(1/rho)`:
        `sigma_start = (sigma_min^(1/rho) + strength * (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho`, so strength 1
        starts at `sigma_max` (text-to-speech with the source's durations) and small strengths keep more of the source.
        With the default scheduler (rho 7), strength 0.5 starts at sigma ~2.5, 0.7 at ~12, 0.9 at ~45. The later levels
        are the scheduler's own levels for `num_inference_steps` that lie below `sigma_start` (with 2 steps: 2.0), so
        a low strength may use fewer evaluations.

        Args:
            strength (`float`): In `(0, 1]`.
            num_inference_steps (`int`): Evaluations at strength 1.

        Returns:
            `list[float]`: Strictly decreasing sigmas, starting with `sigma_start`.
        """
        strength = _check_float(strength, "strength", 0.0, 1.0, low_open=True)
        config = self.scheduler.config
        if strength == 1:
            start = float(config.sigma_max)
        else:
            low, high = config.sigma_min ** (1 / config.rho), config.sigma_max ** (1 / config.rho)
            start = (low + strength * (high - low)) ** config.rho
        self.scheduler.set_timesteps(num_inference_steps)
        later = [float(s) for s in self.scheduler.sigmas[1:] if float(s) < start]
        return [start, *later]

    @torch.no_grad()
    def voice_conversion(
        self,
        source_audio: AudioInput,
        source_text: str,
        reference_audio: AudioInput,
        strength: float = 0.7,
        num_inference_steps: int = 2,
        prosody_alpha: float = 0.2,
        generator: GeneratorInput = None,
        sampling_rate: int | None = None,
        reference_sampling_rate: int | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        max_output_seconds: float = MAX_OUTPUT_SECONDS,
        max_prompt_seconds: float = MAX_PROMPT_SECONDS,
    ) -> FlashSpeechPipelineOutput | tuple:
        r"""
        Zero-shot voice conversion: says what `source_audio` says, with its timing, in the voice of `reference_audio`.

        As in the FlashSpeech paper: the source's phonemes and durations (from the aligner) are kept, the pitch is
        predicted by the prosody generator conditioned on the reference prompt, and the consistency sampler starts from
        the source latents noised to a level set by `strength` (see [`~FlashSpeechPipeline.strength_to_sigmas`]), with
        the reference as the speech prompt. The output has the source's number of latent frames.

        Args:
            source_audio (`str`, `os.PathLike`, `np.ndarray` or `torch.Tensor`): Speech to convert.
            source_text (`str`): What is said in `source_audio`.
            reference_audio (`str`, `os.PathLike`, `np.ndarray` or `torch.Tensor`): Target voice, 1 s at least.
            strength (`float`, defaults to 0.7): How much of the source is re-generated, in `(0, 1]`; 1 starts from
                pure noise (text-to-speech with the source's durations), small values keep more of the source.
            num_inference_steps (`int`, defaults to 2): Consistency-model evaluations at strength 1.
            prosody_alpha (`float`, defaults to 0.2): Weight of the pitch refinement in [0, 1] (0 = regression pitch).
            generator (`torch.Generator` or `int`, *optional*): Controls every random draw; an `int` is a seed.
            sampling_rate (`int`, *optional*): Sample rate of an array `source_audio` in Hz (4000-192000).
            reference_sampling_rate (`int`, *optional*): Sample rate of an array `reference_audio`; defaults to
                `sampling_rate`.
            output_type (`str`, defaults to `"np"`): `"np"` or `"pt"`.
            return_dict (`bool`, defaults to `True`): Return a [`FlashSpeechPipelineOutput`] rather than a tuple.
            max_output_seconds (`float`, defaults to 60.0): Longest `source_audio` (the output has its length).
            max_prompt_seconds (`float`, defaults to 30.0): Longest `reference_audio`.

        Returns:
            [`FlashSpeechPipelineOutput`] (durations are the source's) or a tuple whose first element is the audio of
            shape `(1, num_frames * hop_length)` at `self.sampling_rate`.

        Examples:

        ```py
        >>> import soundfile as sf
        >>> import torch
        >>> from flashspeech_hf import FlashSpeechPipeline

        >>> pipe = FlashSpeechPipeline.from_pretrained("path/or/org/flashspeech")  # a checkpoint with an aligner
        >>> audio = pipe.voice_conversion(
        ...     "source.wav", "The words spoken in the source.", "reference.wav", generator=torch.Generator().manual_seed(0)
        ... ).audios[0]
        >>> sf.write("converted.wav", audio, pipe.sampling_rate)
        ```
        """
        # every argument is checked before any work
        self._check_common(num_inference_steps, prosody_alpha)
        if not isinstance(source_text, str) or not source_text.strip():
            raise ValueError("`source_text` is empty: give the words spoken in `source_audio`.")
        _check_output_type(output_type, return_dict)
        _check_float(max_output_seconds, "max_output_seconds", 0.0, low_open=True)
        _check_float(max_prompt_seconds, "max_prompt_seconds", MIN_PROMPT_SECONDS)
        if reference_sampling_rate is None:
            reference_sampling_rate = sampling_rate
        check_audio_input(source_audio, sampling_rate, "source_audio", max_output_seconds, "max_output_seconds")
        check_audio_input(
            reference_audio, reference_sampling_rate, "reference_audio", max_prompt_seconds, "max_prompt_seconds"
        )
        generators = _as_generators(generator, 1)
        sigmas = self.strength_to_sigmas(strength, num_inference_steps)
        alignment = self.align(source_audio, source_text, sampling_rate, "source_audio", max_output_seconds)
        reference = self.load_prompt(
            reference_audio, reference_sampling_rate, "reference_audio", max_prompt_seconds=max_prompt_seconds
        )
        prompt_latents, prompt_mask = self.encode_audio([reference])

        input_ids = alignment.input_ids[None]
        phoneme_mask = torch.ones_like(input_ids, dtype=torch.bool)
        phoneme_hidden, prompt_hidden = self.prior_encoder(
            input_ids, phoneme_mask, prompt_latents, prompt_mask, return_dict=False
        )
        durations, condition, frame_mask, log_pitch = self.predict_prosody(
            phoneme_hidden, phoneme_mask, prompt_hidden, prompt_mask, prosody_alpha, 1.0, num_inference_steps,
            generators, durations=alignment.durations[None].to(input_ids.device),
        )  # fmt: skip
        latents = self.sample_consistency(
            lambda x, s: self.denoiser(x, s, condition, prompt_hidden, frame_mask, prompt_mask).sample,
            self.denoiser.config.latent_dim,
            frame_mask,
            len(sigmas),
            generators,
            start=alignment.latents[None],
            sigmas=sigmas,
            progress=True,
        )
        return self._postprocess(latents, frame_mask, durations, phoneme_mask, log_pitch, output_type, return_dict)

    def _edit_span(self, original: list[str], new: list[str]) -> tuple[int, int, int]:
        """
        The phoneme span to regenerate: `(start, original_end, new_end)` with `original[:start] == new[:start]` and
        `original[original_end:] == new[new_end:]`.

        Words are the phoneme groups between word-boundary tokens; `difflib` finds the changed words, and the span
        covers them together with the boundary (pause) tokens on both sides, so that insertions and deletions
        regenerate the junction too.
        """
        boundary = self.tokenizer.word_boundary

        def words(tokens: list[str]) -> list[tuple[int, int]]:
            spans, start = [], 0
            for i, token in enumerate([*tokens, boundary]):
                if token == boundary:
                    spans.append((start, i))
                    start = i + 1
            return spans

        spans_a, spans_b = words(original), words(new)
        words_a = [tuple(original[s:e]) for s, e in spans_a]
        words_b = [tuple(new[s:e]) for s, e in spans_b]
        changes = [op for op in difflib.SequenceMatcher(None, words_a, words_b, autojunk=False).get_opcodes()]
        changes = [op for op in changes if op[0] != "equal"]
        if not changes:
            raise ValueError(
                "`new_text` is pronounced exactly like `original_text` (same phonemes): the edit changes nothing."
            )
        i1, i2, j1, j2 = changes[0][1], changes[-1][2], changes[0][3], changes[-1][4]
        start = spans_a[i1 - 1][1] if i1 > 0 else 0
        end_a = spans_a[i2][0] if i2 < len(spans_a) else len(original)
        end_b = spans_b[j2][0] if j2 < len(spans_b) else len(new)
        new_start = spans_b[j1 - 1][1] if j1 > 0 else 0
        if new_start != start or original[end_a:] != new[end_b:]:  # cannot happen with equal words around the edit
            raise RuntimeError("Internal error: inconsistent edit span.")
        return start, end_a, end_b

    @torch.no_grad()
    def edit(
        self,
        audio: AudioInput,
        original_text: str,
        new_text: str,
        sampling_rate: int | None = None,
        num_inference_steps: int = 2,
        prosody_alpha: float = 0.2,
        generator: GeneratorInput = None,
        crossfade_ms: float = 10.0,
        output_type: str = "np",
        return_dict: bool = True,
        max_output_seconds: float = MAX_OUTPUT_SECONDS,
    ) -> FlashSpeechEditOutput | tuple:
        r"""
        Zero-shot speech editing: changes the words of a recording that differ between `original_text` and
        `new_text`, keeping the rest of the recording sample for sample.

        The original is aligned (phoneme durations from the aligner); the changed words are found with `difflib` on
        the phoneme words (groups between word-boundary tokens); durations are predicted for the new phonemes of the
        span and kept from the alignment elsewhere. The whole new utterance is sampled with the rest of the original
        latents fixed (the context is pasted into every denoised estimate) and as the speech prompt; the regenerated
        span is decoded and spliced into the original waveform with a linear cross-fade of `crossfade_ms` on each
        side, inside the unchanged context. Outside `[edit_start, edit_end)` the output equals the original (at
        `self.sampling_rate`: audio at another rate is resampled first).

        Args:
            audio (`str`, `os.PathLike`, `np.ndarray` or `torch.Tensor`): The recording to edit.
            original_text (`str`): What is said in `audio`.
            new_text (`str`): What it should say.
            sampling_rate (`int`, *optional*): Sample rate of an array `audio`.
            num_inference_steps (`int`, defaults to 2): Consistency-model evaluations.
            prosody_alpha (`float`, defaults to 0.2): Weight of the prosody refinement, in [0, 1].
            generator (`torch.Generator` or `int`, *optional*): Controls every random draw; an `int` is a seed.
            crossfade_ms (`float`, defaults to 10.0): Length of each cross-fade (shortened where the context is
                shorter); 0 gives a hard splice.
            output_type (`str`, defaults to `"np"`): `"np"` or `"pt"`.
            return_dict (`bool`, defaults to `True`): Return a [`FlashSpeechEditOutput`] rather than a tuple.
            max_output_seconds (`float`, defaults to 60.0): Longest recording, and longest edited output, accepted.

        Returns:
            [`FlashSpeechEditOutput`] or a tuple whose first element is the audio of shape `(1, num_samples)`.

        Examples:

        ```py
        >>> import soundfile as sf
        >>> from flashspeech_hf import FlashSpeechPipeline

        >>> pipe = FlashSpeechPipeline.from_pretrained("path/or/org/flashspeech")  # a checkpoint with an aligner
        >>> out = pipe.edit("speech.wav", "I saw a black cat today.", "I saw a big white dog today.")
        >>> sf.write("edited.wav", out.audios[0], pipe.sampling_rate)
        ```
        """
        # every argument is checked before any work
        self._check_common(num_inference_steps, prosody_alpha)
        if not isinstance(new_text, str) or not new_text.strip():
            raise ValueError("`new_text` is empty: give the sentence the edited recording should say.")
        _check_float(crossfade_ms, "crossfade_ms", 0.0)
        _check_output_type(output_type, return_dict)
        _check_float(max_output_seconds, "max_output_seconds", 0.0, low_open=True)
        _check_text_length(new_text, "new_text", max_output_seconds)
        check_audio_input(audio, sampling_rate, "audio", max_output_seconds, "max_output_seconds")
        generators = _as_generators(generator, 1)
        new_phonemes = self.tokenizer.phonemize(new_text)[0]
        alignment = self.align(audio, original_text, sampling_rate, "audio", max_output_seconds)
        start, end, new_end = self._edit_span(alignment.phonemes, new_phonemes)

        device, dtype = self._execution_device, self.denoiser.dtype
        hop, rate = self.codec.hop_length, self.sampling_rate
        durations, latents = alignment.durations.to(device), alignment.latents
        num_frames = latents.shape[-1]
        frame_start, frame_end = int(durations[:start].sum()), int(durations[:end].sum())
        # The unchanged context is the speech prompt (the whole recording when the context is under a second).
        context = torch.cat([latents[:, :frame_start], latents[:, frame_end:]], dim=1)
        prompt = context if context.shape[-1] >= math.ceil(MIN_PROMPT_SECONDS * rate / hop) else latents
        prompt_latents, prompt_mask = self._pad_frames([prompt], device, dtype)

        input_ids = torch.tensor(self.tokenizer.convert_tokens_to_ids(new_phonemes), device=device)[None]
        phoneme_mask = torch.ones_like(input_ids, dtype=torch.bool)
        phoneme_hidden, prompt_hidden = self.prior_encoder(
            input_ids, phoneme_mask, prompt_latents, prompt_mask, return_dict=False
        )
        predicted = self.predict_durations(
            phoneme_hidden, phoneme_mask, prompt_hidden, prompt_mask, prosody_alpha, 1.0, num_inference_steps,
            generators,
        )[0]  # fmt: skip
        new_durations = torch.cat([durations[:start], predicted[start:new_end], durations[end:]])[None]
        new_durations, condition, frame_mask, log_pitch = self.predict_prosody(
            phoneme_hidden, phoneme_mask, prompt_hidden, prompt_mask, prosody_alpha, 1.0, num_inference_steps,
            generators, durations=new_durations, max_output_seconds=max_output_seconds,
        )  # fmt: skip
        span_end = frame_start + int(predicted[start:new_end].sum())
        total = span_end + num_frames - frame_end
        known = torch.zeros(1, latents.shape[0], total, device=device, dtype=torch.float32)  # the sampler's dtype
        known[0, :, :frame_start] = latents[:, :frame_start]
        known[0, :, span_end:] = latents[:, frame_end:]
        is_context = torch.ones(1, 1, total, dtype=torch.bool, device=device)
        is_context[..., frame_start:span_end] = False

        def consistency_fn(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            denoised = self.denoiser(x, sigma, condition, prompt_hidden, frame_mask, prompt_mask).sample
            return torch.where(is_context, known, denoised)

        sample = self.sample_consistency(
            consistency_fn,
            self.denoiser.config.latent_dim,
            frame_mask,
            num_inference_steps,
            generators,
            start=known,
            progress=True,
        )
        generated = self.codec.decode(sample)[0].float().cpu()
        audio_out, edit_start, edit_end, original_end = _splice(
            alignment.waveform.float().cpu(),
            generated,
            frame_start * hop,
            frame_end * hop,
            span_end * hop,
            round(crossfade_ms * rate / 1000),
        )
        self.maybe_free_model_hooks()
        audios = audio_out[None]
        if output_type == "np":
            audios = audios.numpy()
        if not return_dict:
            return (audios,)
        return FlashSpeechEditOutput(
            audios=audios,
            audio_lengths=[audio_out.shape[-1]],
            durations=[new_durations[0].cpu()],
            log_pitch=[log_pitch[0].float().cpu()],
            edit_start=edit_start,
            edit_end=edit_end,
            original_end=original_end,
            original_phonemes=alignment.phonemes[start:end],
            new_phonemes=new_phonemes[start:new_end],
        )


def _splice(
    original: torch.Tensor, generated: torch.Tensor, start: int, original_end: int, generated_end: int, crossfade: int
) -> tuple[torch.Tensor, int, int, int]:
    """
    Replaces `original[start:original_end]` by `generated[start:generated_end]`, with linear cross-fades of up to
    `crossfade` samples just outside the replaced region, where `generated` re-synthesizes the unchanged context.

    Args:
        original (`torch.Tensor` of shape `(T,)`): The original waveform.
        generated (`torch.Tensor` of shape `(T',)`): Decoded edited utterance, aligned with `original` before `start`
            and with `original[original_end:]` from `generated_end` on. `start` may exceed `T` by less than a hop
            (insertion at the end of a recording that does not fill its last latent frame).
        start, original_end, generated_end (`int`): Sample positions (multiples of the hop length).
        crossfade (`int`): Cross-fade length in samples.

    Returns:
        `(audio, edit_start, edit_end, original_end)`: `audio[:edit_start] == original[:edit_start]` and
        `audio[edit_end:] == original[original_end:]`.
    """
    length = original.shape[-1]
    left, right = min(start, length), min(original_end, length)
    fade_left = min(crossfade, left)
    fade_right = max(min(crossfade, length - right, generated.shape[-1] - generated_end), 0)
    ramp_left = (torch.arange(fade_left, dtype=original.dtype) + 0.5) / max(fade_left, 1)
    ramp_right = (torch.arange(fade_right, dtype=original.dtype) + 0.5) / max(fade_right, 1)
    pieces = [
        original[: left - fade_left],
        (1 - ramp_left) * original[left - fade_left : left] + ramp_left * generated[left - fade_left : left],
        generated[left:generated_end],
        (1 - ramp_right) * generated[generated_end : generated_end + fade_right]
        + ramp_right * original[right : right + fade_right],
        original[right + fade_right :],
    ]
    audio = torch.cat(pieces)
    edit_start = left - fade_left
    return audio, edit_start, audio.shape[-1] - (length - right - fade_right), right + fade_right


def _build_codec(config: dict) -> torch.nn.Module:
    from .. import codecs

    config = dict(config)
    class_name = config.pop("class_name")
    if not hasattr(codecs, class_name):
        raise ValueError(f"Unknown codec class {class_name!r} in the pipeline config.")
    return getattr(codecs, class_name)(**config)
