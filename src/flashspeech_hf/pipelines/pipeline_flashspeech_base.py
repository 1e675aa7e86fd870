"""Shared parts of the FlashSpeech pipelines: loading, input checks, prompt encoding, prosody, sampling, decoding."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence

import torch
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils import logging
from transformers import PreTrainedTokenizer

from ..audio import AudioInput, check_audio_input, check_speech, load_audio
from ..codecs import DacCodec, EncodecCodec, MelCodec
from ..models.modeling_aligner import FlashSpeechAligner
from ..models.modeling_denoiser import FlashSpeechDenoiser
from ..models.modeling_prior import FlashSpeechPriorEncoder
from ..models.modeling_prosody import FlashSpeechProsodyGenerator, length_regulate
from ..precision import INT8_COMPONENTS, is_int8_quantized, quantize_dynamic_int8
from ..schedulers.scheduling_flashspeech import PAPER_TWO_STEP_SIGMA, FlashSpeechScheduler
from .pipeline_loading_utils import (
    check_checkpoint,
    check_load_kwargs,
    check_saveable,
    own_aligned_weights,
    record_saved_dtype,
    resolve_pretrained_path,
    saved_dtype,
)
from .pipeline_output import FlashSpeechAlignment, FlashSpeechPipelineOutput
from .utils import (
    MAX_INFERENCE_STEPS,
    MAX_OUTPUT_SECONDS,
    MAX_PROMPT_SECONDS,
    MIN_PROMPT_SECONDS,
    MIN_SOURCE_SECONDS,
    check_float,
    check_int,
)
from .voice import FlashSpeechVoice, voice_fingerprint

logger = logging.get_logger(__name__)


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
        scheduler ([`FlashSpeechScheduler`]): Noise levels for 1-, 2- or N-step sampling and the consistency
            scalings around the denoiser's and the prosody refiners' raw outputs.
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

    @property
    def sampling_rate(self) -> int:
        """Sample rate of the generated audio (the codec's)."""
        return self.codec.sampling_rate

    @property
    def prosody_scheduler(self) -> FlashSpeechScheduler:
        """
        The scheduler the prosody refiners sample with: the pipeline's, but at the paper's two-step level
        (`two_step_sigma = 2.0`), since a checkpoint's `two_step_sigma` is tuned for its denoiser (the demo's: 10),
        not for the refiners. The pipeline's own scheduler when it already has that level.
        """
        if not isinstance(self.scheduler, FlashSpeechScheduler):
            return self.scheduler
        if self.scheduler.config.two_step_sigma == PAPER_TWO_STEP_SIGMA:
            return self.scheduler
        return type(self.scheduler).from_config(self.scheduler.config, two_step_sigma=PAPER_TWO_STEP_SIGMA)

    # ------------------------------------------------------------------------------------------------------------
    # Loading
    # ------------------------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> FlashSpeechBasePipeline:
        """
        Loads a pipeline saved with `save_pretrained` from a local folder or a Hugging Face Hub repository id.

        Why this override exists (each step is a function of `flashspeech_hf.pipelines.pipeline_loading_utils`):

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
        quantization = check_load_kwargs(kwargs)
        path = resolve_pretrained_path(pretrained_model_name_or_path, kwargs, cls.__name__)
        cls._check_checkpoint(path)
        if kwargs.get("dtype") is None and kwargs.get("torch_dtype") is None and quantization in (None, "none"):
            dtype = saved_dtype(path)
            if dtype is not None:  # a low-precision pipeline saved as such loads as such
                kwargs["dtype"] = dtype
        pipe = super().from_pretrained(path, **kwargs)
        for name, component in pipe.components.items():
            if isinstance(component, torch.nn.Module):
                own_aligned_weights(component, os.path.join(path, name), kwargs.get("variant"))
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
        check_saveable(self.components)
        super().save_pretrained(save_directory, *args, **kwargs)
        record_saved_dtype(save_directory, self.denoiser.dtype if self.denoiser is not None else torch.float32)

    @classmethod
    def _check_checkpoint(cls, path: str) -> None:
        """Raises a `ValueError` naming what is missing when `path` is not a complete saved pipeline."""
        required = [name for name in cls._get_signature_keys(cls)[0] if name not in cls._optional_components]
        check_checkpoint(path, cls.__name__, required, list(cls._optional_components))

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
        check_float(max_prompt_seconds, "max_prompt_seconds", MIN_PROMPT_SECONDS)
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
        scheduler: FlashSpeechScheduler | None = None,
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
            scheduler (`FlashSpeechScheduler`, *optional*): Defaults to `self.scheduler`.

        Returns:
            Float32 `torch.Tensor` of shape `(batch_size, num_channels, T)`.
        """
        scheduler = self.scheduler if scheduler is None else scheduler
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
            return noise * scheduler.init_noise_sigma
        return scheduler.add_noise(start, noise, scheduler.sigmas[0])

    def prepare_extra_step_kwargs(
        self,
        scheduler: FlashSpeechScheduler,
        step: int,
        num_channels: int,
        mask: torch.Tensor,
        generators: Sequence[torch.Generator | None],
    ) -> dict:
        """
        The randomness of `scheduler.step` at step `step`: each item's own noise draw (float32, at its own length) for
        the re-noising of every step but the last, or, for a compatible scheduler that draws its noise itself
        (`CMStochasticIterativeScheduler`), the first item's generator.

        Returns:
            `dict` of keyword arguments for `scheduler.step`.
        """
        if "noise" not in inspect.signature(scheduler.step).parameters:
            return {"generator": generators[0]}
        if step + 1 == len(scheduler.timesteps):
            return {}
        lengths = mask.sum(dim=1).tolist()
        return {"noise": self._randn(num_channels, lengths, generators, mask.device, torch.float32)}

    def sample_latents(
        self,
        condition: torch.Tensor,
        prompt_hidden: torch.Tensor,
        frame_mask: torch.Tensor,
        prompt_mask: torch.Tensor,
        num_inference_steps: int,
        generators: Sequence[torch.Generator | None],
    ) -> torch.Tensor:
        """
        The denoiser's consistency sampling of codec latents: its step-independent work
        ([`FlashSpeechDenoiser.prepare_condition`]) once, then [`~FlashSpeechBasePipeline.sample_consistency`].

        Args:
            condition (`torch.Tensor` of shape `(batch_size, T, condition_dim)`): Frame-level condition.
            prompt_hidden (`torch.Tensor` of shape `(batch_size, Fp, H)`), prompt_mask (`(batch_size, Fp)`): Prompt.
            frame_mask (`torch.Tensor` of shape `(batch_size, T)`): True on valid frames.
            num_inference_steps (`int`), generators (`list`): As in `sample_consistency`.

        Returns:
            Float32 `torch.Tensor` of shape `(batch_size, latent_dim, T)`.
        """
        prepared = self.denoiser.prepare_condition(condition, prompt_hidden, frame_mask, prompt_mask)
        return self.sample_consistency(
            lambda x, t: self.denoiser(x, t, prepared).sample,
            self.denoiser.config.latent_dim,
            frame_mask,
            num_inference_steps,
            generators,
        )

    def sample_consistency(
        self,
        model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        channels: int,
        mask: torch.Tensor,
        num_inference_steps: int,
        generators: Sequence[torch.Generator | None],
        scheduler: FlashSpeechScheduler | None = None,
    ) -> torch.Tensor:
        """
        Multistep consistency sampling (Song et al. 2023, Algorithm 1) from noise, as the task pipelines' `__call__`
        loops do it: at each step the model gets `scheduler.scale_model_input(x, t)` and `t`, and `scheduler.step`
        turns its raw output into the denoised estimate and re-noises it. The prosody refiners and long-form
        synthesis sample through it.

        Args:
            model_fn (`Callable`): `(scaled x (B, channels, T), timestep (B,)) -> raw model output F (B, channels, T)`.
            channels (`int`): Channels of the sample.
            mask (`torch.Tensor` of shape `(batch_size, T)`): True on valid positions.
            num_inference_steps (`int`): Network evaluations.
            generators (`list[torch.Generator | None]`): One per item.
            scheduler (`FlashSpeechScheduler`, *optional*): Defaults to `self.scheduler` (the prosody refiners sample
                with [`~FlashSpeechBasePipeline.prosody_scheduler`]).

        Returns:
            Float32 `torch.Tensor` of shape `(batch_size, channels, T)`, zero where `mask` is False.

        The sampling state (noise, noisy samples, scheduler arithmetic) is float32 whatever the models' dtype, so a
        seed draws the same noise at every precision; `model_fn` gets float32 samples.
        """
        scheduler = self.scheduler if scheduler is None else scheduler
        scheduler.set_timesteps(num_inference_steps, device=mask.device)
        sample = self.prepare_latents(channels, mask, generators, scheduler=scheduler)
        m = mask[:, None, :].to(torch.float32)
        for i, t in enumerate(scheduler.timesteps):
            sample = sample * m
            model_output = model_fn(scheduler.scale_model_input(sample, t), t.expand(mask.shape[0]))
            step_kwargs = self.prepare_extra_step_kwargs(scheduler, i, channels, mask, generators)
            sample = scheduler.step(model_output, t, sample, **step_kwargs).prev_sample
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
            lambda x, t: refine_fn(x, t, hidden, mask),
            1,
            mask,
            num_inference_steps,
            generators,
            scheduler=self.prosody_scheduler,
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
        check_int(num_inference_steps, name, 1, MAX_INFERENCE_STEPS)
        check_float(
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
