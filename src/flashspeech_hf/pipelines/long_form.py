"""Long-form and streaming synthesis: a text of any length, split into sentences, spoken in one voice."""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from diffusers.pipelines.pipeline_utils import AudioPipelineOutput

from ..audio import AudioInput
from ..text.sentence_splitting import (
    CLAUSE_MARKS,
    DEFAULT_MAX_SENTENCE_CHARACTERS,
    SENTENCE_END_MARKS,
    split_sentences,
)
from .utils import MAX_OUTPUT_SECONDS, MAX_PROMPT_SECONDS
from .voice import FlashSpeechVoice

DEFAULT_PAUSE_SECONDS = 0.3
"""Default silence after a sentence; half of it follows a clause of an over-long sentence."""
FADE_SECONDS = 0.01
"""Linear fade at each join between pieces, so that no piece starts or stops with a click."""


@dataclass
class FlashSpeechAudioChunk:
    """
    One piece of audio from [`~FlashSpeechLongFormMixin.stream`]: a sentence and the pause after it.

    Args:
        audio (`np.ndarray` or `torch.Tensor` of shape `(num_samples,)`): Mono float32 waveform at `sampling_rate`:
            the sentence's speech (`audio[:num_speech_samples]`), then the silence that separates it from the next.
        text (`str`): The sentence, as normalized by the tokenizer's text normalization (for a one-sentence text:
            the text as given).
        index (`int`): Position of the sentence in the text, from 0.
        num_sentences (`int`): Number of sentences in the text.
        num_speech_samples (`int`): Samples of speech at the start of `audio`.
        sampling_rate (`int`): Sample rate of `audio` in Hz.
    """

    audio: np.ndarray | torch.Tensor
    text: str
    index: int
    num_sentences: int
    num_speech_samples: int
    sampling_rate: int


@dataclass
class FlashSpeechLongFormOutput(AudioPipelineOutput):
    """
    Output of [`~FlashSpeechLongFormMixin.long_form`].

    Args:
        audios (`np.ndarray` or `torch.Tensor` of shape `(1, num_samples)`): The whole text as one waveform.
        sentences (`list[str]`): The normalized sentences, in order.
        sentence_spans (`list[tuple[int, int]]`): `(start, end)` sample of each sentence's speech in `audios[0]`.
    """

    sentences: list[str] | None = None
    sentence_spans: list[tuple[int, int]] | None = None


def _sentence_generators(generator, num_sentences: int) -> list:
    """
    One generator (or seed, or None) per sentence, so that a sentence's audio does not depend on how the sentences are
    batched: a list is used as given (one per sentence); an int seed `s` gives sentence `i` the seed `s + i`; a single
    `torch.Generator` is used as is for a one-sentence text and otherwise seeds one generator per sentence from its
    draws; `None` uses the global random state.
    """
    if isinstance(generator, (list, tuple)):
        if len(generator) != num_sentences:
            raise ValueError(
                f"Got {len(generator)} generators for {num_sentences} sentences; pass one per sentence (see "
                "`pipe.split_text(text)`), a single generator or an int seed."
            )
        return list(generator)
    if isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        if not 0 <= generator and generator + num_sentences <= 2**64:
            raise ValueError(f"A seed given as `generator` must lie in [0, 2**64 - {num_sentences}], got {generator}.")
        return [int(generator) + i for i in range(num_sentences)]
    if isinstance(generator, torch.Generator) and num_sentences > 1:
        seeds = torch.randint(2**62, (num_sentences,), generator=generator, device=generator.device)
        return [int(seed) for seed in seeds]
    return [generator] * num_sentences  # None, a generator for one sentence, or a bad value `check_inputs` reports


def _pause_seconds(sentence: str, pause_seconds: float) -> float:
    """Silence after `sentence`: `pause_seconds` after a sentence end, half after a clause, none after a word."""
    last = sentence.rstrip()[-1:]
    if last and last in SENTENCE_END_MARKS:
        return pause_seconds
    if last and last in CLAUSE_MARKS:
        return pause_seconds / 2
    return 0.0


class FlashSpeechLongFormMixin:
    """
    Long-form and streaming text-to-speech for [`FlashSpeechPipeline`]: [`~FlashSpeechLongFormMixin.long_form`] speaks
    a text of any length as one waveform, [`~FlashSpeechLongFormMixin.stream`] yields it sentence by sentence.

    The text is split into sentences after the tokenizer's normalization ([`~FlashSpeechLongFormMixin.split_text`]);
    the prompt is read and encoded once; the sentences are synthesized as padded batches of `batch_size` with the
    pipeline's own steps (exactly what `pipe(batch_of_sentences, prompt)` computes) and joined with short pauses.
    Every sentence has its own generator (see `generator` below), so its audio is the same whatever the batching.
    """

    def split_text(self, text: str, max_sentence_characters: int = DEFAULT_MAX_SENTENCE_CHARACTERS) -> list[str]:
        """
        The sentences that [`~FlashSpeechLongFormMixin.long_form`] and [`~FlashSpeechLongFormMixin.stream`] speak, cut
        with [`~flashspeech_hf.text.split_sentences`] in the tokenizer's language and normalization.

        Args:
            text (`str`): The text.
            max_sentence_characters (`int`, defaults to 200): Longest piece; longer sentences are cut at clauses, then
                at words.

        Returns:
            `list[str]`: Normalized sentences.
        """
        return split_sentences(
            text,
            language=getattr(self.tokenizer, "language", "en-us"),
            normalize=getattr(self.tokenizer, "normalize", True),
            max_characters=max_sentence_characters,
        )

    def stream(
        self,
        text: str,
        prompt_audio: AudioInput | None = None,
        prompt_sampling_rate: int | None = None,
        num_inference_steps: int = 2,
        prosody_alpha: float = 0.2,
        speed: float = 1.0,
        generator: torch.Generator | int | list | None = None,
        batch_size: int = 1,
        pause_seconds: float = DEFAULT_PAUSE_SECONDS,
        max_sentence_characters: int = DEFAULT_MAX_SENTENCE_CHARACTERS,
        output_type: str = "np",
        prosody_num_inference_steps: int = 1,
        max_output_seconds: float = MAX_OUTPUT_SECONDS,
        max_prompt_seconds: float = MAX_PROMPT_SECONDS,
        voice: FlashSpeechVoice | None = None,
    ) -> Iterator[FlashSpeechAudioChunk]:
        r"""
        Speaks `text` in the voice of `prompt_audio`, yielding the audio sentence by sentence as soon as each batch of
        `batch_size` sentences is synthesized. The chunks, concatenated, are the waveform of
        [`~FlashSpeechLongFormMixin.long_form`] with the same arguments.

        Every argument, the prompt included, is checked when `stream` is called, before any audio is generated.

        Args:
            text (`str`): Text of any length. It is split into sentences after normalization (blank lines end a
                paragraph; see [`~FlashSpeechLongFormMixin.split_text`]); a one-sentence text is exactly what
                `pipe(text, prompt_audio, ...)` returns.
            prompt_audio (`str`, `os.PathLike`, `np.ndarray` or `torch.Tensor`): One speech prompt (1 s at least),
                read and encoded once for all sentences.
            prompt_sampling_rate (`int`, *optional*): Sample rate of an array prompt in Hz.
            num_inference_steps (`int`, defaults to 2), prosody_alpha (`float`, defaults to 0.2), speed (`float`,
                defaults to 1.0), prosody_num_inference_steps (`int`, defaults to 1): As in `__call__`.
            generator (`torch.Generator`, `int` or a list, *optional*): Controls every random draw; the same value
                gives the same audio whatever `batch_size`. An `int` seed `s` gives sentence `i` the seed `s + i`
                (so a one-sentence text is `pipe(text, generator=s)`); a `torch.Generator` seeds one generator per
                sentence from its draws (a one-sentence text uses it directly); a list gives one per sentence.
            batch_size (`int`, defaults to 1): Sentences synthesized together in one padded batch; 1 gives the
                earliest first audio, larger batches the shortest total time.
            pause_seconds (`float`, defaults to 0.3): Silence after each sentence (half of it after a clause of a
                sentence that was cut for length); none after the last.
            max_sentence_characters (`int`, defaults to 200): Longest piece of text synthesized at once.
            output_type (`str`, defaults to `"np"`): `"np"` or `"pt"`.
            max_output_seconds (`float`, defaults to 60.0), max_prompt_seconds (`float`, defaults to 30.0): As in
                `__call__`, per sentence.
            voice ([`FlashSpeechVoice`], *optional*): The voice encoded once by
                [`~FlashSpeechBasePipeline.encode_voice`] (or loaded), instead of `prompt_audio`: the same audio.

        Returns:
            An iterator of [`FlashSpeechAudioChunk`], one per sentence, in order.

        Examples:

        ```py
        >>> import soundfile as sf
        >>> from flashspeech_hf import FlashSpeechPipeline

        >>> pipe = FlashSpeechPipeline.from_pretrained("checkpoints/flashspeech-demo")
        >>> with sf.SoundFile("story.wav", "w", pipe.sampling_rate, 1) as f:
        ...     for chunk in pipe.stream(open("story.txt").read(), "prompt.wav", generator=0):
        ...         f.write(chunk.audio)  # or play it: the first sentence arrives long before the last
        ```
        """
        if not isinstance(text, str):
            raise TypeError(f"`text` must be a string, got {type(text).__name__}.")
        if isinstance(prompt_audio, (list, tuple)) or isinstance(voice, (list, tuple)):
            raise ValueError(
                "Long-form synthesis speaks in one voice: pass one `prompt_audio` or `voice`, not a list."
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
        if (
            isinstance(pause_seconds, bool)
            or not isinstance(pause_seconds, numbers.Real)
            or not 0 <= pause_seconds <= 10
        ):
            raise ValueError(f"`pause_seconds` must be a number of seconds in [0, 10], got {pause_seconds!r}.")
        sentences = self.split_text(text, max_sentence_characters)
        if len(sentences) == 1:
            sentences = [text]  # exactly `__call__`'s input (the splitter may have added a final `.`)
        generators = _sentence_generators(generator, len(sentences))
        settings = dict(
            prompt_sampling_rate=prompt_sampling_rate, num_inference_steps=num_inference_steps,
            prosody_alpha=prosody_alpha, speed=speed, num_waveforms_per_prompt=1, output_type=output_type,
            return_dict=True, prosody_num_inference_steps=prosody_num_inference_steps,
            max_output_seconds=max_output_seconds, max_prompt_seconds=max_prompt_seconds,
        )  # fmt: skip
        batches = []  # every batch's texts and generators are checked before any work
        for start in range(0, len(sentences), batch_size):
            texts, _, batch_generators, prosody_steps = self.check_inputs(
                text=sentences[start : start + batch_size],
                prompt_audio=prompt_audio,
                generator=generators[start : start + batch_size],
                voice=voice,
                **settings,
            )
            batches.append((texts, batch_generators))
        prompt = voice
        if voice is None:
            prompt = self.load_prompt(prompt_audio, prompt_sampling_rate, max_prompt_seconds=max_prompt_seconds)
        options = dict(
            num_inference_steps=num_inference_steps, prosody_alpha=float(prosody_alpha), speed=float(speed),
            prosody_num_inference_steps=prosody_steps, max_output_seconds=max_output_seconds,
            pause_seconds=float(pause_seconds), output_type=output_type,
        )  # fmt: skip
        return self._stream_sentences(batches, prompt, **options)

    def _synthesize_batch(
        self,
        texts: list[str],
        generators: list[torch.Generator | None],
        prompt_hidden: torch.Tensor,
        prompt_mask: torch.Tensor,
        num_inference_steps: int,
        prosody_alpha: float,
        speed: float,
        prosody_num_inference_steps: int,
        max_output_seconds: float,
    ) -> list[torch.Tensor]:
        """
        The steps of `__call__` for a batch of texts sharing one encoded prompt.

        Args:
            texts (`list[str]`): B sentences. generators (`list`): B generators (or None).
            prompt_hidden (`torch.Tensor` of shape `(1, Fp, H)`), prompt_mask (`(1, Fp)`): The encoded prompt.

        Returns:
            `list[torch.Tensor]`: B float32 CPU waveforms of shape `(num_samples_i,)`.
        """
        device = self._execution_device
        tokens = self.tokenizer(texts, padding=True, return_tensors="pt")
        self._check_output_length(tokens["attention_mask"], max_output_seconds, at_least=True)
        index = torch.zeros(len(texts), dtype=torch.long, device=device)
        prompt_hidden, prompt_mask = prompt_hidden[index], prompt_mask[index]
        input_ids = tokens["input_ids"].to(device)
        phoneme_mask = tokens["attention_mask"].to(device).bool()
        _, frame_mask, _, latents = self.text_to_latents(
            input_ids, phoneme_mask, prompt_hidden, prompt_mask, generators, num_inference_steps, prosody_alpha, speed,
            prosody_num_inference_steps, max_output_seconds,
        )  # fmt: skip
        return [waveform.float().cpu() for waveform in self.decode_items(latents, frame_mask)]

    @torch.no_grad()
    def _stream_sentences(
        self,
        batches: list[tuple[list[str], list[torch.Generator | None]]],
        prompt: torch.Tensor | FlashSpeechVoice,
        pause_seconds: float,
        output_type: str,
        **options,
    ) -> Iterator[FlashSpeechAudioChunk]:
        """
        Synthesizes checked `(texts, generators)` batches with one prompt (a waveform at the codec's rate, encoded
        here, or a voice); yields one chunk per sentence.
        """
        rate = self.sampling_rate
        num_sentences = sum(len(texts) for texts, _ in batches)
        if not isinstance(prompt, FlashSpeechVoice):
            latents = self.codec.encode(prompt.to(self._execution_device)[None], rate)[0]
            prompt = self._voice_from_latents(latents, prompt.shape[-1] / rate)
        prompt_hidden, prompt_mask = self._voice_states([prompt])
        fade = round(FADE_SECONDS * rate)
        i = 0
        for texts, generators in batches:
            waveforms = self._synthesize_batch(texts, generators, prompt_hidden, prompt_mask, **options)
            for sentence, speech in zip(texts, waveforms):
                last = i == num_sentences - 1
                pause = 0 if last else round(_pause_seconds(sentence, pause_seconds) * rate)
                n = min(fade, speech.shape[-1] // 2)
                ramp = (torch.arange(n, dtype=speech.dtype) + 0.5) / max(n, 1)
                if i > 0:
                    speech[:n] *= ramp
                if not last:
                    speech[speech.shape[-1] - n :] *= ramp.flip(0)
                audio = torch.cat([speech, speech.new_zeros(pause)])
                yield FlashSpeechAudioChunk(
                    audio=audio.numpy() if output_type == "np" else audio,
                    text=sentence,
                    index=i,
                    num_sentences=num_sentences,
                    num_speech_samples=speech.shape[-1],
                    sampling_rate=rate,
                )
                i += 1
        self.maybe_free_model_hooks()

    @torch.no_grad()
    def long_form(
        self,
        text: str,
        prompt_audio: AudioInput | None = None,
        prompt_sampling_rate: int | None = None,
        num_inference_steps: int = 2,
        prosody_alpha: float = 0.2,
        speed: float = 1.0,
        generator: torch.Generator | int | Sequence | None = None,
        batch_size: int = 8,
        pause_seconds: float = DEFAULT_PAUSE_SECONDS,
        max_sentence_characters: int = DEFAULT_MAX_SENTENCE_CHARACTERS,
        output_type: str = "np",
        return_dict: bool = True,
        prosody_num_inference_steps: int = 1,
        max_output_seconds: float = MAX_OUTPUT_SECONDS,
        max_prompt_seconds: float = MAX_PROMPT_SECONDS,
        voice: FlashSpeechVoice | None = None,
    ) -> FlashSpeechLongFormOutput | tuple:
        r"""
        Speaks a text of any length in the voice of `prompt_audio` as one waveform: the text is split into sentences
        (after the tokenizer's normalization), the sentences are synthesized in padded batches of `batch_size` with
        the prompt encoded once, and joined with short pauses; a progress bar counts sentences.

        Memory: synthesis holds one batch of sentences at a time, but the result holds the whole waveform in memory
        (4 bytes a sample: an hour at 16 kHz is 230 MB, about twice that while the pieces are joined). For very long
        texts (a book), use [`~FlashSpeechLongFormMixin.stream`] and write each chunk as it comes, as
        `flashspeech synthesize --text_file` does.

        Arguments are those of [`~FlashSpeechLongFormMixin.stream`] (whose chunks, concatenated, are this waveform),
        with `batch_size` defaulting to 8, plus `return_dict`; `voice=` replaces `prompt_audio` as there.

        Returns:
            [`FlashSpeechLongFormOutput`] (`audios` of shape `(1, num_samples)`, `sentences`, `sentence_spans`) or a
            tuple whose first element is `audios`.

        Examples:

        ```py
        >>> import soundfile as sf
        >>> from flashspeech_hf import FlashSpeechPipeline

        >>> pipe = FlashSpeechPipeline.from_pretrained("checkpoints/flashspeech-demo")
        >>> out = pipe.long_form(open("chapter.txt").read(), "prompt.wav", generator=0)
        >>> sf.write("chapter.wav", out.audios[0], pipe.sampling_rate)
        >>> out.sentences[0], out.sentence_spans[0]
        ```
        """
        if output_type not in ("np", "pt"):
            raise ValueError(f"`output_type` must be 'np' or 'pt', got {output_type!r}.")
        if not isinstance(return_dict, bool):
            raise ValueError(f"`return_dict` must be True or False, got {return_dict!r}.")
        chunks = self.stream(
            text, prompt_audio, prompt_sampling_rate, num_inference_steps, prosody_alpha, speed, generator,
            batch_size, pause_seconds, max_sentence_characters, "pt", prosody_num_inference_steps,
            max_output_seconds, max_prompt_seconds, voice,
        )  # fmt: skip
        pieces, sentences, spans, position = [], [], [], 0
        bar = None
        for chunk in chunks:
            if bar is None:
                bar = self.progress_bar(total=chunk.num_sentences)
            pieces.append(chunk.audio)
            sentences.append(chunk.text)
            spans.append((position, position + chunk.num_speech_samples))
            position += chunk.audio.shape[-1]
            bar.update()
        if bar is not None:
            bar.close()
        audios = torch.cat(pieces)[None]
        if output_type == "np":
            audios = audios.numpy()
        if not return_dict:
            return (audios,)
        return FlashSpeechLongFormOutput(audios=audios, sentences=sentences, sentence_spans=spans)
