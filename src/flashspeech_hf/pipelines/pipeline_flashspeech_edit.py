"""FlashSpeechEditPipeline: zero-shot speech editing with the FlashSpeech components."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable

import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils import replace_example_docstring

from ..audio import AudioInput, check_audio_input
from .pipeline_flashspeech_base import FlashSpeechBasePipeline
from .pipeline_output import FlashSpeechEditOutput
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
    check_text_length,
    check_voice_or_audio,
)
from .voice import FlashSpeechVoice

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import soundfile as sf
        >>> from flashspeech_hf import FlashSpeechEditPipeline

        >>> pipe = FlashSpeechEditPipeline.from_pretrained("path/or/org/flashspeech")  # a checkpoint with an aligner
        >>> out = pipe("speech.wav", "I saw a black cat today.", "I saw a big white dog today.")
        >>> sf.write("edited.wav", out.audios[0], pipe.sampling_rate)
        ```
"""


class FlashSpeechEditPipeline(FlashSpeechBasePipeline):
    r"""
    Zero-shot speech editing with FlashSpeech (Ye et al. 2024, section 4.5): regenerates the words of a recording that
    differ between its transcript and a new text, in context, and splices them in; the rest of the recording is kept
    sample for sample.

    It needs the `aligner` component. The components are those of [`FlashSpeechPipeline`]:
    `FlashSpeechEditPipeline(**pipe.components)` shares them with a loaded text-to-speech pipeline.

    Args:
        tokenizer, codec, prior_encoder, prosody_generator, denoiser, scheduler, aligner: As in
            [`FlashSpeechBasePipeline`].
    """

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

    def check_inputs(
        self,
        audio,
        original_text,
        new_text,
        sampling_rate=None,
        num_inference_steps=2,
        prosody_alpha=0.2,
        generator=None,
        crossfade_ms=10.0,
        output_type="np",
        return_dict=True,
        max_output_seconds=MAX_OUTPUT_SECONDS,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs=("latents",),
        prosody_num_inference_steps=1,
        prompt_audio=None,
        prompt_sampling_rate=None,
        voice=None,
    ) -> list[torch.Generator | None]:
        """
        Validates every argument of `__call__` before any work (no model runs, no audio is decoded).

        Returns:
            `list[torch.Generator | None]`: the one generator (or None) of the output waveform.
        """
        self._check_aligner()
        if not isinstance(original_text, str) or not original_text.strip():
            raise ValueError("The text of `audio` is empty: give the words spoken in it.")
        self._check_common(num_inference_steps, prosody_alpha)
        check_int(prosody_num_inference_steps, "prosody_num_inference_steps", 1, MAX_INFERENCE_STEPS)
        if not isinstance(new_text, str) or not new_text.strip():
            raise ValueError("`new_text` is empty: give the sentence the edited recording should say.")
        check_float(crossfade_ms, "crossfade_ms", 0.0)
        check_output_type(output_type, return_dict)
        check_float(max_output_seconds, "max_output_seconds", 0.0, low_open=True)
        check_text_length(new_text, "new_text", max_output_seconds)
        check_audio_input(audio, sampling_rate, "audio", max_output_seconds, "max_output_seconds")
        if prompt_audio is not None or voice is not None:
            check_voice_or_audio(voice, prompt_audio, "prompt_audio")
        if prompt_audio is not None:
            check_audio_input(prompt_audio, prompt_sampling_rate, "prompt_audio", MAX_PROMPT_SECONDS)
        if voice is not None:
            voice.check_compatible(self)
        check_callback(callback_on_step_end, callback_on_step_end_tensor_inputs, self._callback_tensor_inputs)
        return as_generators(generator, 1)

    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
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
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        prosody_num_inference_steps: int = 1,
        prompt_audio: AudioInput | None = None,
        prompt_sampling_rate: int | None = None,
        voice: FlashSpeechVoice | None = None,
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
            output_type (`str`, defaults to `"np"`): `"np"` or `"pt"` waveforms, or `"latent"`: the sampled latents of
                the whole edited utterance, `(1, latent_dim, num_frames)`, not decoded nor spliced (the splice
                positions are then in latent frames: `edit_start`/`edit_end` bound the regenerated frames).
            return_dict (`bool`, defaults to `True`): Return a [`FlashSpeechEditOutput`] rather than a tuple.
            max_output_seconds (`float`, defaults to 60.0): Longest recording, and longest edited output, accepted.
            callback_on_step_end (`Callable`, *optional*), callback_on_step_end_tensor_inputs (`list[str]`,
                *optional*): As in [`FlashSpeechPipeline.__call__`].
            prosody_num_inference_steps (`int`, defaults to 1): Evaluations of each prosody refinement model, as in
                [`FlashSpeechPipeline.__call__`] (sampled with [`~FlashSpeechBasePipeline.prosody_scheduler`]).
            prompt_audio (`str`, `os.PathLike`, `np.ndarray` or `torch.Tensor`, *optional*): A speech prompt of the
                voice to speak the new words in, instead of the recording's unchanged context (the default).
            prompt_sampling_rate (`int`, *optional*): Sample rate of an array `prompt_audio`.
            voice ([`FlashSpeechVoice`], *optional*): That voice encoded once by
                [`~FlashSpeechBasePipeline.encode_voice`] (or loaded), instead of `prompt_audio`: the same audio.

        Returns:
            [`FlashSpeechEditOutput`] or a tuple whose first element is the audio of shape `(1, num_samples)`.

        Examples:
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        callback_on_step_end_tensor_inputs = callback_on_step_end_tensor_inputs or ["latents"]
        generators = self.check_inputs(
            audio=audio,
            original_text=original_text,
            new_text=new_text,
            sampling_rate=sampling_rate,
            num_inference_steps=num_inference_steps,
            prosody_alpha=prosody_alpha,
            generator=generator,
            crossfade_ms=crossfade_ms,
            output_type=output_type,
            return_dict=return_dict,
            max_output_seconds=max_output_seconds,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
            prosody_num_inference_steps=prosody_num_inference_steps,
            prompt_audio=prompt_audio,
            prompt_sampling_rate=prompt_sampling_rate,
            voice=voice,
        )
        new_phonemes = self.tokenizer.phonemize(new_text)[0]
        alignment = self.align(audio, original_text, sampling_rate, "audio", max_output_seconds)
        start, end, new_end = self._edit_span(alignment.phonemes, new_phonemes)

        device = self._execution_device
        hop, rate = self.codec.hop_length, self.sampling_rate
        durations, latents = alignment.durations.to(device), alignment.latents
        num_frames = latents.shape[-1]
        frame_start, frame_end = int(durations[:start].sum()), int(durations[:end].sum())
        # The unchanged context is the speech prompt (the whole recording when the context is under a second).
        context = torch.cat([latents[:, :frame_start], latents[:, frame_end:]], dim=1)
        # Or the voice given as `prompt_audio` / `voice`.
        if voice is None and prompt_audio is not None:
            voice = self.encode_voice(prompt_audio, prompt_sampling_rate)
        if voice is None:
            prompt = context if context.shape[-1] >= math.ceil(MIN_PROMPT_SECONDS * rate / hop) else latents
            voice = self._voice_from_latents(prompt, prompt.shape[-1] * hop / rate)
        prompt_hidden, prompt_mask = self._voice_states([voice])

        input_ids = torch.tensor(self.tokenizer.convert_tokens_to_ids(new_phonemes), device=device)[None]
        phoneme_mask = torch.ones_like(input_ids, dtype=torch.bool)
        phoneme_hidden = self.prior_encoder.encode_phonemes(input_ids, phoneme_mask, prompt_hidden, prompt_mask)
        predicted = self.predict_durations(
            phoneme_hidden, phoneme_mask, prompt_hidden, prompt_mask, prosody_alpha, 1.0, prosody_num_inference_steps,
            generators,
        )[0]  # fmt: skip
        new_durations = torch.cat([durations[:start], predicted[start:new_end], durations[end:]])[None]
        new_durations, condition, frame_mask, log_pitch = self.predict_prosody(
            phoneme_hidden, phoneme_mask, prompt_hidden, prompt_mask, prosody_alpha, 1.0, prosody_num_inference_steps,
            generators, durations=new_durations, max_output_seconds=max_output_seconds,
        )  # fmt: skip
        span_end = frame_start + int(predicted[start:new_end].sum())
        total = span_end + num_frames - frame_end
        known = torch.zeros(1, latents.shape[0], total, device=device, dtype=torch.float32)  # the sampler's dtype
        known[0, :, :frame_start] = latents[:, :frame_start]
        known[0, :, span_end:] = latents[:, frame_end:]
        is_context = torch.ones(1, 1, total, dtype=torch.bool, device=device)
        is_context[..., frame_start:span_end] = False

        # consistency sampling of the whole new utterance; every estimate keeps the known context (inpainting)
        prepared = self.denoiser.prepare_condition(condition, prompt_hidden, frame_mask, prompt_mask)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        num_channels = self.denoiser.config.latent_dim
        latents = self.prepare_latents(num_channels, frame_mask, generators, start=known)
        mask = frame_mask[:, None, :].to(torch.float32)
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                latents = latents * mask
                model_input = self.scheduler.scale_model_input(latents, t)
                model_output = self.denoiser(model_input, t.expand(latents.shape[0]), prepared).sample
                step_kwargs = self.prepare_extra_step_kwargs(self.scheduler, i, num_channels, frame_mask, generators)
                output = self.scheduler.step(
                    model_output, t, latents, known_sample=known, known_mask=is_context, **step_kwargs
                )
                latents = output.prev_sample
                if callback_on_step_end is not None:
                    tensors = {"latents": latents, "denoised": getattr(output, "denoised", None)}
                    callback_kwargs = {name: tensors[name] for name in callback_on_step_end_tensor_inputs}
                    callback_outputs = callback_on_step_end(self, i, t, callback_kwargs)
                    latents = callback_outputs.pop("latents", latents)
                progress_bar.update()
        sample = latents * mask
        if output_type == "latent":  # the whole edited utterance, splice positions in latent frames
            audios, length = sample, total
            edit_start, edit_end, original_end = frame_start, span_end, frame_end
        else:
            generated = self.codec.decode(sample)[0].float().cpu()
            audio_out, edit_start, edit_end, original_end = _splice(
                alignment.waveform.float().cpu(),
                generated,
                frame_start * hop,
                frame_end * hop,
                span_end * hop,
                round(crossfade_ms * rate / 1000),
            )
            audios, length = audio_out[None], audio_out.shape[-1]
            if output_type == "np":
                audios = audios.numpy()
        self.maybe_free_model_hooks()
        if not return_dict:
            return (audios,)
        return FlashSpeechEditOutput(
            audios=audios,
            audio_lengths=[length],
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
