"""FlashSpeechVoiceConversionPipeline: zero-shot voice conversion with the FlashSpeech components."""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils import replace_example_docstring

from ..audio import AudioInput, check_audio_input
from .pipeline_flashspeech_base import FlashSpeechBasePipeline
from .pipeline_output import FlashSpeechPipelineOutput
from .utils import (
    MAX_INFERENCE_STEPS,
    MAX_OUTPUT_SECONDS,
    MAX_PROMPT_SECONDS,
    MIN_PROMPT_SECONDS,
    GeneratorInput,
    as_generators,
    check_callback,
    check_float,
    check_int,
    check_output_type,
    check_voice_or_audio,
)
from .voice import FlashSpeechVoice

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import soundfile as sf
        >>> import torch
        >>> from flashspeech_hf import FlashSpeechPipeline, FlashSpeechVoiceConversionPipeline

        >>> tts = FlashSpeechPipeline.from_pretrained("path/or/org/flashspeech")  # a checkpoint with an aligner
        >>> pipe = FlashSpeechVoiceConversionPipeline(**tts.components)  # or .from_pretrained(...)
        >>> audio = pipe(
        ...     "source.wav", "The words spoken in the source.", "reference.wav", generator=torch.Generator().manual_seed(0)
        ... ).audios[0]
        >>> sf.write("converted.wav", audio, pipe.sampling_rate)
        ```
"""


class FlashSpeechVoiceConversionPipeline(FlashSpeechBasePipeline):
    r"""
    Zero-shot voice conversion with FlashSpeech (Ye et al. 2024, section 4.5): what a source recording says, with its
    timing, in the voice of a reference recording.

    It needs the `aligner` component (the phoneme durations of the source). The components are those of
    [`FlashSpeechPipeline`]: `FlashSpeechVoiceConversionPipeline(**pipe.components)` shares them with a loaded
    text-to-speech pipeline.

    Args:
        tokenizer, codec, prior_encoder, prosody_generator, denoiser, scheduler, aligner: As in
            [`FlashSpeechBasePipeline`].
    """

    def check_inputs(
        self,
        source_audio,
        source_text,
        reference_audio=None,
        strength=0.7,
        num_inference_steps=2,
        prosody_alpha=0.2,
        generator=None,
        sampling_rate=None,
        reference_sampling_rate=None,
        output_type="np",
        return_dict=True,
        max_output_seconds=MAX_OUTPUT_SECONDS,
        max_prompt_seconds=MAX_PROMPT_SECONDS,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("latents",),
        prosody_num_inference_steps=1,
        voice=None,
    ) -> list[torch.Generator | None]:
        """
        Validates every argument of `__call__` before any work (no model runs, no audio is decoded).

        Returns:
            `list[torch.Generator | None]`: the one generator (or None) of the output waveform.
        """
        self._check_aligner()
        self._check_common(num_inference_steps, prosody_alpha)
        check_int(prosody_num_inference_steps, "prosody_num_inference_steps", 1, MAX_INFERENCE_STEPS)
        check_float(strength, "strength", 0.0, 1.0, low_open=True)
        if not isinstance(source_text, str) or not source_text.strip():
            raise ValueError("`source_text` is empty: give the words spoken in `source_audio`.")
        check_output_type(output_type, return_dict)
        check_float(max_output_seconds, "max_output_seconds", 0.0, low_open=True)
        check_float(max_prompt_seconds, "max_prompt_seconds", MIN_PROMPT_SECONDS)
        if reference_sampling_rate is None:
            reference_sampling_rate = sampling_rate
        check_audio_input(source_audio, sampling_rate, "source_audio", max_output_seconds, "max_output_seconds")
        check_voice_or_audio(voice, reference_audio, "reference_audio")
        if voice is None:
            check_audio_input(
                reference_audio, reference_sampling_rate, "reference_audio", max_prompt_seconds, "max_prompt_seconds"
            )
        else:
            voice.check_compatible(self)
        check_callback(callback_on_step_end, callback_on_step_end_tensor_inputs, self._callback_tensor_inputs)
        return as_generators(generator, 1)

    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        source_audio: AudioInput,
        source_text: str,
        reference_audio: AudioInput | None = None,
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
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        prosody_num_inference_steps: int = 1,
        voice: FlashSpeechVoice | None = None,
    ) -> FlashSpeechPipelineOutput | tuple:
        r"""
        Zero-shot voice conversion: says what `source_audio` says, with its timing, in the voice of `reference_audio`.

        As in the FlashSpeech paper: the source's phonemes and durations (from the aligner) are kept, the pitch is
        predicted by the prosody generator conditioned on the reference prompt, and the consistency sampler starts from
        the source latents noised to a level set by `strength` (see [`FlashSpeechScheduler.set_timesteps`]), with
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
            output_type (`str`, defaults to `"np"`): `"np"` or `"pt"` waveforms, or `"latent"` (the sampled latents of
                shape `(1, latent_dim, num_frames)`, not decoded).
            return_dict (`bool`, defaults to `True`): Return a [`FlashSpeechPipelineOutput`] rather than a tuple.
            max_output_seconds (`float`, defaults to 60.0): Longest `source_audio` (the output has its length).
            max_prompt_seconds (`float`, defaults to 30.0): Longest `reference_audio`.
            callback_on_step_end (`Callable`, *optional*), callback_on_step_end_tensor_inputs (`list[str]`,
                *optional*): As in [`FlashSpeechPipeline.__call__`].
            prosody_num_inference_steps (`int`, defaults to 1): Evaluations of each prosody refinement model, as in
                [`FlashSpeechPipeline.__call__`] (sampled with [`~FlashSpeechBasePipeline.prosody_scheduler`]).
            voice ([`FlashSpeechVoice`], *optional*): The target voice encoded once by
                [`~FlashSpeechBasePipeline.encode_voice`] (or loaded), instead of `reference_audio`: the same audio.

        Returns:
            [`FlashSpeechPipelineOutput`] (durations are the source's) or a tuple whose first element is the audio of
            shape `(1, num_frames * hop_length)` at `self.sampling_rate`.

        Examples:
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        callback_on_step_end_tensor_inputs = callback_on_step_end_tensor_inputs or ["latents"]
        generators = self.check_inputs(
            source_audio=source_audio,
            source_text=source_text,
            reference_audio=reference_audio,
            strength=strength,
            num_inference_steps=num_inference_steps,
            prosody_alpha=prosody_alpha,
            generator=generator,
            sampling_rate=sampling_rate,
            reference_sampling_rate=reference_sampling_rate,
            output_type=output_type,
            return_dict=return_dict,
            max_output_seconds=max_output_seconds,
            max_prompt_seconds=max_prompt_seconds,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            prosody_num_inference_steps=prosody_num_inference_steps,
            voice=voice,
        )
        if reference_sampling_rate is None:
            reference_sampling_rate = sampling_rate
        alignment = self.align(source_audio, source_text, sampling_rate, "source_audio", max_output_seconds)
        if voice is None:
            voice = self.encode_voice(reference_audio, reference_sampling_rate, max_prompt_seconds, "reference_audio")
        prompt_hidden, prompt_mask = self._voice_states([voice])

        input_ids = alignment.input_ids[None]
        phoneme_mask = torch.ones_like(input_ids, dtype=torch.bool)
        phoneme_hidden = self.prior_encoder.encode_phonemes(input_ids, phoneme_mask, prompt_hidden, prompt_mask)
        durations, condition, frame_mask, log_pitch = self.predict_prosody(
            phoneme_hidden, phoneme_mask, prompt_hidden, prompt_mask, prosody_alpha, 1.0, prosody_num_inference_steps,
            generators, durations=alignment.durations[None].to(input_ids.device),
        )  # fmt: skip

        # consistency sampling from the source latents noised to the level `strength` sets
        prepared = self.denoiser.prepare_condition(condition, prompt_hidden, frame_mask, prompt_mask)
        self.scheduler.set_timesteps(num_inference_steps, device=frame_mask.device, strength=float(strength))
        timesteps = self.scheduler.timesteps
        num_channels = self.denoiser.config.latent_dim
        latents = self.prepare_latents(num_channels, frame_mask, generators, start=alignment.latents[None])
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
