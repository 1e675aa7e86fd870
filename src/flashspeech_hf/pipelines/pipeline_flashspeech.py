"""FlashSpeechPipeline: zero-shot text-to-speech in one or two consistency-model evaluations."""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils import deprecate, replace_example_docstring

from ..audio import AudioInput, check_audio_input
from .long_form import FlashSpeechLongFormMixin
from .pipeline_flashspeech_base import FlashSpeechBasePipeline
from .pipeline_output import FlashSpeechPipelineOutput
from .utils import (
    MAX_BATCH_SIZE,
    MAX_INFERENCE_STEPS,
    MAX_OUTPUT_SECONDS,
    MAX_PROMPT_SECONDS,
    MIN_PROMPT_SECONDS,
    SPEED_RANGE,
    GeneratorInput,
    as_generators,
    check_callback,
    check_float,
    check_int,
    check_latents,
    check_output_type,
    check_text_length,
    check_voice_or_audio,
)
from .voice import FlashSpeechVoice

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


class FlashSpeechPipeline(FlashSpeechLongFormMixin, FlashSpeechBasePipeline):
    r"""
    Zero-shot text-to-speech with FlashSpeech (Ye et al. 2024).

    Text is turned into phonemes by the tokenizer and encoded by the prior encoder, conditioned on a speech prompt
    encoded by the codec; the prosody generator predicts durations and pitch (regression plus an `alpha`-weighted
    consistency refinement); the latent consistency model maps noise to codec latents in `num_inference_steps`
    evaluations; the codec decodes them to a waveform.

    Voice conversion and speech editing are [`FlashSpeechVoiceConversionPipeline`] and [`FlashSpeechEditPipeline`],
    built from the same components: `FlashSpeechEditPipeline(**pipe.components)`.

    This pipeline inherits from [`FlashSpeechBasePipeline`] and [`DiffusionPipeline`]: `save_pretrained`,
    `from_pretrained` (local folders and Hub ids) and `push_to_hub` handle every component.

    Args:
        tokenizer ([`FlashSpeechTokenizer`]): Text to phoneme ids.
        codec ([`EncodecCodec`], [`DacCodec`] or [`MelCodec`]): Waveform <-> normalized latents.
        prior_encoder ([`FlashSpeechPriorEncoder`]): Phoneme encoder and prompt encoder.
        prosody_generator ([`FlashSpeechProsodyGenerator`]): Durations and pitch.
        denoiser ([`FlashSpeechDenoiser`]): The latent consistency model.
        scheduler ([`FlashSpeechScheduler`]): Noise levels for 1-, 2- or N-step sampling.
        aligner ([`FlashSpeechAligner`], *optional*): Phoneme durations of real audio ([`~FlashSpeechBasePipeline.align`],
            voice conversion, editing); text-to-speech does not use it.
    """

    def check_inputs(
        self,
        text,
        prompt_audio=None,
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
        latents=None,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("latents",),
        voice=None,
    ) -> tuple[list[str], list, list[torch.Generator | None], int]:
        """
        Validates every argument of `__call__` before any work (no model runs, no prompt is decoded): types, ranges,
        finiteness, the prompts' sample rates (4-192 kHz) and lengths (files through their header), the text length,
        the generators, `latents` (batch and channels; its frame count is checked once durations are known) and the
        callback.

        Returns:
            `(texts, prompts, generators, prosody_num_inference_steps)`: texts and prompts (audio, or the
            [`FlashSpeechVoice`]s of `voice`, checked against this pipeline) as lists of equal length,
            one generator (or None) per output waveform, the prosody step count with its default resolved.
        """
        texts = self._as_list(text, "text")
        for t in texts:
            if not isinstance(t, str):
                raise TypeError(f"`text` must be a string or a list of strings, got {type(t).__name__}.")
            if not t.strip():
                raise ValueError("`text` is empty: give the sentence to speak.")
        check_voice_or_audio(voice, prompt_audio, "prompt_audio")
        prompts = self._as_list(prompt_audio if voice is None else voice, "prompt_audio" if voice is None else "voice")
        if len(prompts) == 1 and len(texts) > 1:
            prompts = prompts * len(texts)
        if len(prompts) != len(texts):
            raise ValueError(f"Got {len(texts)} texts but {len(prompts)} prompts; pass one prompt or one per text.")
        self._check_common(num_inference_steps, prosody_alpha)
        if prosody_num_inference_steps is None:
            prosody_num_inference_steps = num_inference_steps
        check_int(prosody_num_inference_steps, "prosody_num_inference_steps", 1, MAX_INFERENCE_STEPS)
        low, high = SPEED_RANGE
        check_float(speed, "speed", low, high, note=" 1.5 speaks 1.5 times faster than the predicted durations.")
        n = check_int(num_waveforms_per_prompt, "num_waveforms_per_prompt", 1)
        if len(texts) * n > MAX_BATCH_SIZE:
            raise ValueError(
                f"This call would generate {len(texts) * n} waveforms (len(text) * num_waveforms_per_prompt); at most "
                f"{MAX_BATCH_SIZE} are generated in one call: split the texts over several calls."
            )
        check_output_type(output_type, return_dict)
        check_float(max_output_seconds, "max_output_seconds", 0.0, low_open=True)
        check_float(max_prompt_seconds, "max_prompt_seconds", MIN_PROMPT_SECONDS)
        for i, t in enumerate(texts):
            check_text_length(t, f"text[{i}]" if len(texts) > 1 else "text", max_output_seconds)
        for p in {id(p): p for p in prompts}.values():
            if voice is None:
                check_audio_input(p, prompt_sampling_rate, "prompt_audio", max_prompt_seconds, "max_prompt_seconds")
            else:
                p.check_compatible(self)
        generators = as_generators(generator, len(texts) * n)
        check_latents(latents, len(texts) * n, self.denoiser.config.latent_dim)
        check_callback(callback_on_step_end, callback_on_step_end_tensor_inputs, self._callback_tensor_inputs)
        return texts, prompts, generators, int(prosody_num_inference_steps)

    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        text: str | list[str],
        prompt_audio: AudioInput | list[AudioInput] | None = None,
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
        latents: torch.Tensor | None = None,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        voice: FlashSpeechVoice | list[FlashSpeechVoice] | None = None,
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
            output_type (`str`, defaults to `"np"`): `"np"` or `"pt"` waveforms, or `"latent"`: the sampled
                normalized codec latents of shape `(batch_size, latent_dim, num_frames)` (float32, zero past each
                item's `audio_lengths[i]` frames), not decoded.
            return_dict (`bool`, defaults to `True`): Return a [`FlashSpeechPipelineOutput`] rather than a tuple.
            prosody_num_inference_steps (`int`, defaults to 1): Evaluations of each prosody refinement model; the
                paper samples the refiners with one step. `None` uses `num_inference_steps`.
            max_output_seconds (`float`, defaults to 60.0): Longest waveform generated: a longer predicted output
                (or a text too long to fit in it) raises a `ValueError` before the memory is allocated. Split long text
                into sentences, or raise this limit.
            max_prompt_seconds (`float`, defaults to 30.0): Longest prompt accepted (checked before it is read); trim
                longer prompts, or raise this limit.
            latents (`torch.Tensor` of shape `(batch_size * num_waveforms_per_prompt, latent_dim, num_frames)`,
                *optional*): Standard Gaussian noise the denoiser starts from (scaled by `sigma_max`) instead of a draw
                from `generator`; `num_frames` must cover the longest output (extra frames are ignored). The prosody
                refinement and the re-noising of multistep sampling still draw from `generator`.
            callback_on_step_end (`Callable`, `PipelineCallback` or `MultiPipelineCallbacks`, *optional*): Called
                after each denoiser step as `callback_on_step_end(pipe, step, timestep, callback_kwargs)`; it returns
                a dict, whose `"latents"` entry (if any) replaces the sample of the next step.
            callback_on_step_end_tensor_inputs (`list[str]`, *optional*, defaults to `["latents"]`): The tensors in
                `callback_kwargs`, from `pipe._callback_tensor_inputs` (`"latents"`, `"denoised"`).
            voice ([`FlashSpeechVoice`] or a list of them, *optional*): The target voice(s) encoded once by
                [`~FlashSpeechBasePipeline.encode_voice`] (or loaded with [`FlashSpeechVoice.load`]), instead of
                `prompt_audio`: the same audio, bit for bit, without encoding the prompt again. A voice made by an
                incompatible pipeline (another codec, prompt encoder, weights or dtype) is refused.

        Examples:

        Returns:
            [`FlashSpeechPipelineOutput`] or a tuple whose first element is the audio array of shape
            `(batch_size * num_waveforms_per_prompt, num_samples)`.
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        callback_on_step_end_tensor_inputs = callback_on_step_end_tensor_inputs or ["latents"]
        texts, prompts, generators, prosody_steps = self.check_inputs(
            text=text,
            prompt_audio=prompt_audio,
            prompt_sampling_rate=prompt_sampling_rate,
            num_inference_steps=num_inference_steps,
            prosody_alpha=prosody_alpha,
            speed=speed,
            num_waveforms_per_prompt=num_waveforms_per_prompt,
            generator=generator,
            output_type=output_type,
            return_dict=return_dict,
            prosody_num_inference_steps=prosody_num_inference_steps,
            max_output_seconds=max_output_seconds,
            max_prompt_seconds=max_prompt_seconds,
            latents=latents,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            voice=voice,
        )
        device = self._execution_device
        n = num_waveforms_per_prompt
        tokens = self.tokenizer(texts, padding=True, return_tensors="pt")
        # every phoneme lasts one frame at least: a text with more phonemes than frames cannot fit
        self._check_output_length(tokens["attention_mask"], max_output_seconds, at_least=True)
        # read, encode and run the prompt encoder once per distinct prompt (one prompt is often shared by all texts)
        distinct = list({id(p): p for p in prompts}.values())
        position = {id(p): i for i, p in enumerate(distinct)}
        index = torch.tensor([position[id(p)] for p in prompts], device=device).repeat_interleave(n)
        voices = [
            p if voice is not None else self.encode_voice(p, prompt_sampling_rate, max_prompt_seconds)
            for p in distinct
        ]
        prompt_hidden, prompt_mask = self._voice_states(voices)
        prompt_hidden, prompt_mask = prompt_hidden[index], prompt_mask[index]
        input_ids = tokens["input_ids"].to(device).repeat_interleave(n, dim=0)
        phoneme_mask = tokens["attention_mask"].to(device).bool().repeat_interleave(n, dim=0)

        # phonemes, then prosody: durations, length regulation, pitch
        phoneme_hidden = self.prior_encoder.encode_phonemes(input_ids, phoneme_mask, prompt_hidden, prompt_mask)
        durations, condition, frame_mask, log_pitch = self.predict_prosody(
            phoneme_hidden, phoneme_mask, prompt_hidden, prompt_mask, prosody_alpha, speed, prosody_steps, generators,
            max_output_seconds=max_output_seconds,
        )  # fmt: skip

        # consistency sampling: the scheduler scales the input, turns the denoiser's output into the estimate and
        # re-noises it; the condition's projections are computed once
        prepared = self.denoiser.prepare_condition(condition, prompt_hidden, frame_mask, prompt_mask)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        num_channels = self.denoiser.config.latent_dim
        latents = self.prepare_latents(num_channels, frame_mask, generators, latents=latents)
        mask = frame_mask[:, None, :].to(torch.float32)
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                latents = latents * mask
                model_input = self.scheduler.scale_model_input(latents, t)
                model_output = self.denoiser(model_input, t.expand(latents.shape[0]), prepared).sample
                step_kwargs = self.prepare_extra_step_kwargs(self.scheduler, i, num_channels, frame_mask, generators)
                output = self.scheduler.step(model_output, t, latents, **step_kwargs)
                latents = output.prev_sample
                if callback_on_step_end is not None:
                    tensors = {"latents": latents, "denoised": getattr(output, "denoised", None)}
                    callback_kwargs = {name: tensors[name] for name in callback_on_step_end_tensor_inputs}
                    callback_outputs = callback_on_step_end(self, i, t, callback_kwargs)
                    latents = callback_outputs.pop("latents", latents)
                progress_bar.update()
        latents = latents * mask
        return self._postprocess(latents, frame_mask, durations, phoneme_mask, log_pitch, output_type, return_dict)

    def text_to_latents(
        self,
        input_ids: torch.Tensor,
        phoneme_mask: torch.Tensor,
        prompt_hidden: torch.Tensor,
        prompt_mask: torch.Tensor,
        generators: list[torch.Generator | None],
        num_inference_steps: int,
        prosody_alpha: float,
        speed: float,
        prosody_num_inference_steps: int,
        max_output_seconds: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        The steps from phoneme ids and an encoded prompt to codec latents: phoneme encoding, prosody (durations, length
        regulation, pitch) and consistency sampling, for the long-form methods (`__call__` shows the same steps, its
        sampling loop written out).

        Args:
            input_ids (`torch.LongTensor` of shape `(B, L)`), phoneme_mask (`torch.BoolTensor` of shape `(B, L)`).
            prompt_hidden (`torch.Tensor` of shape `(B, Fp, H)`), prompt_mask (`torch.BoolTensor` of shape `(B, Fp)`):
                The prompt encoder's output, one row per item.
            generators (`list`), num_inference_steps, prosody_alpha, speed, prosody_num_inference_steps,
            max_output_seconds: As in `__call__` (checked by `check_inputs`).

        Returns:
            `(durations (B, L), frame_mask (B, T), log_pitch (B, T), latents (B, latent_dim, T))`.
        """
        phoneme_hidden = self.prior_encoder.encode_phonemes(input_ids, phoneme_mask, prompt_hidden, prompt_mask)
        durations, condition, frame_mask, log_pitch = self.predict_prosody(
            phoneme_hidden, phoneme_mask, prompt_hidden, prompt_mask, prosody_alpha, speed,
            prosody_num_inference_steps, generators, max_output_seconds=max_output_seconds,
        )  # fmt: skip
        latents = self.sample_latents(
            condition, prompt_hidden, frame_mask, prompt_mask, num_inference_steps, generators
        )
        return durations, frame_mask, log_pitch, latents

    def voice_conversion(self, *args, **kwargs):
        """Deprecated: use [`FlashSpeechVoiceConversionPipeline`] (`FlashSpeechVoiceConversionPipeline(**pipe.components)`)."""
        from .pipeline_flashspeech_voice_conversion import FlashSpeechVoiceConversionPipeline

        return self._forward_to(FlashSpeechVoiceConversionPipeline, "voice_conversion", *args, **kwargs)

    def edit(self, *args, **kwargs):
        """Deprecated: use [`FlashSpeechEditPipeline`] (`FlashSpeechEditPipeline(**pipe.components)`)."""
        from .pipeline_flashspeech_edit import FlashSpeechEditPipeline

        return self._forward_to(FlashSpeechEditPipeline, "edit", *args, **kwargs)

    def _forward_to(self, pipeline_class: type, method: str, *args, **kwargs):
        deprecate(
            f"FlashSpeechPipeline.{method}",
            "1.0.0",
            f"Use `{pipeline_class.__name__}(**pipe.components)(...)` (same arguments).",
            stacklevel=4,
        )
        pipe = pipeline_class(**self.components)
        pipe.set_progress_bar_config(**getattr(self, "_progress_bar_config", {}))
        return pipe(*args, **kwargs)
