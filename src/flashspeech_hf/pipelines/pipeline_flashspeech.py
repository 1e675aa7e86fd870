"""FlashSpeechPipeline: zero-shot speech synthesis in one or two consistency-model evaluations."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from diffusers.pipelines.pipeline_utils import AudioPipelineOutput, DiffusionPipeline
from diffusers.utils import logging, replace_example_docstring
from huggingface_hub import snapshot_download
from transformers import PreTrainedTokenizer

from ..audio import AudioInput, check_speech, load_audio
from ..models.modeling_denoiser import FlashSpeechDenoiser
from ..models.modeling_prior import FlashSpeechPriorEncoder
from ..models.modeling_prosody import FlashSpeechProsodyGenerator, length_regulate
from ..schedulers.scheduling_flashspeech import FlashSpeechScheduler

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
GeneratorInput = torch.Generator | list[torch.Generator] | None


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


class FlashSpeechPipeline(DiffusionPipeline):
    r"""
    Zero-shot text-to-speech with FlashSpeech (Ye et al. 2024).

    Text is turned into phonemes by the tokenizer and encoded by the prior encoder, conditioned on a speech prompt
    encoded by the codec; the prosody generator predicts durations and pitch (regression plus an `alpha`-weighted
    consistency refinement); the latent consistency model maps noise to codec latents in `num_inference_steps`
    evaluations; the codec decodes them to a waveform.

    This pipeline inherits from [`DiffusionPipeline`]: `save_pretrained`, `from_pretrained` (local folders and Hub ids)
    and `push_to_hub` handle every component.

    Args:
        tokenizer ([`FlashSpeechTokenizer`]): Text to phoneme ids.
        codec ([`EncodecCodec`], [`DacCodec`] or [`MelCodec`]): Waveform <-> normalized latents.
        prior_encoder ([`FlashSpeechPriorEncoder`]): Phoneme encoder and prompt encoder.
        prosody_generator ([`FlashSpeechProsodyGenerator`]): Durations and pitch.
        denoiser ([`FlashSpeechDenoiser`]): The latent consistency model.
        scheduler ([`FlashSpeechScheduler`]): Noise levels for 1-, 2- or N-step sampling.
    """

    model_cpu_offload_seq = "prior_encoder->prosody_generator->denoiser->codec"

    def __init__(
        self,
        tokenizer: PreTrainedTokenizer,
        codec: torch.nn.Module,
        prior_encoder: FlashSpeechPriorEncoder,
        prosody_generator: FlashSpeechProsodyGenerator,
        denoiser: FlashSpeechDenoiser,
        scheduler: FlashSpeechScheduler,
    ):
        super().__init__()
        self.register_modules(
            tokenizer=tokenizer,
            codec=codec,
            prior_encoder=prior_encoder,
            prosody_generator=prosody_generator,
            denoiser=denoiser,
            scheduler=scheduler,
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
            **kwargs: Passed to [`DiffusionPipeline.from_pretrained`] (e.g. `torch_dtype`).

        Returns:
            [`FlashSpeechPipeline`]
        """
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
        return pipe

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
        expected = cls._get_signature_keys(cls)[0]
        missing = [name for name in expected if name not in index or index[name] in (None, [None, None])]
        if missing:
            raise ValueError(f"{index_file} lacks the component(s) {missing}; a FlashSpeechPipeline needs {expected}.")
        absent = [name for name in expected if not os.path.isdir(os.path.join(path, name))]
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
            **overrides (`dict`): Per-component config updates, e.g. `denoiser={"num_layers": 20}`.

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
        # eval mode, as `from_pretrained` returns its models
        models = [m.eval() for m in (codec, prior_encoder, prosody_generator, denoiser)]
        return cls(tokenizer, models[0], *models[1:], scheduler)

    # ------------------------------------------------------------------------------------------------------------
    # Inputs
    # ------------------------------------------------------------------------------------------------------------

    def load_prompt(self, prompt_audio: AudioInput, sampling_rate: int | None = None, name: str = "prompt_audio"):
        """
        Reads and checks one speech prompt at the codec's sample rate.

        Args:
            prompt_audio (`str`, `os.PathLike`, `np.ndarray` or `torch.Tensor`): A path or a 1-D waveform.
            sampling_rate (`int`, *optional*): Sample rate of an array prompt (required for arrays).
            name (`str`): Argument name for error messages.

        Returns:
            `torch.Tensor` of shape `(num_samples,)` at `self.sampling_rate`.
        """
        waveform, _ = load_audio(prompt_audio, sampling_rate, self.sampling_rate, name=name)
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

    def check_inputs(self, text, prompt_audio, num_inference_steps: int, prosody_alpha: float, speed: float, n: int):
        """Validates arguments of `__call__`, returning `(texts, prompts)` as lists of equal length."""
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
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"`num_inference_steps` must be an integer >= 1, got {num_inference_steps}.")
        if prosody_alpha < 0:
            raise ValueError(f"`prosody_alpha` must be >= 0, got {prosody_alpha}.")
        if speed <= 0:
            raise ValueError(f"`speed` must be positive, got {speed}.")
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"`num_waveforms_per_prompt` must be an integer >= 1, got {n}.")
        return texts, prompts

    @staticmethod
    def _item_generators(generator: GeneratorInput, batch_size: int) -> list[torch.Generator | None]:
        if isinstance(generator, (list, tuple)):
            if len(generator) != batch_size:
                raise ValueError(
                    f"Got {len(generator)} generators for {batch_size} waveforms; pass one per waveform "
                    "(len(text) * num_waveforms_per_prompt) or a single generator."
                )
            return list(generator)
        return [generator] * batch_size

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
            `torch.Tensor` of shape `(batch_size, channels, T)`, zero where `mask` is False.
        """
        device, dtype = mask.device, self.denoiser.dtype
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

        Returns:
            `(durations (B, L), condition (B, F, H), frame_mask (B, F), log_pitch (B, F))`.
        """
        prosody = self.prosody_generator
        if durations is None:
            log_dur, dur_hidden = prosody.predict_durations(phoneme_hidden, phoneme_mask, prompt_hidden, prompt_mask)
            if prosody_alpha > 0:
                residual = self.sample_consistency(
                    lambda x, s: prosody.refine_durations(x, s, dur_hidden, phoneme_mask),
                    1,
                    phoneme_mask,
                    num_inference_steps,
                    generators,
                )
                log_dur = log_dur + prosody_alpha * residual[:, 0]
            durations = prosody.durations_to_frames(log_dur, phoneme_mask, speed)
        frame_hidden, frame_mask = length_regulate(phoneme_hidden, durations)
        log_pitch, pitch_hidden = prosody.predict_pitch(frame_hidden, frame_mask, prompt_hidden, prompt_mask)
        if prosody_alpha > 0:
            residual = self.sample_consistency(
                lambda x, s: prosody.refine_pitch(x, s, pitch_hidden, frame_mask),
                1,
                frame_mask,
                num_inference_steps,
                generators,
            )
            log_pitch = log_pitch + prosody_alpha * residual[:, 0]
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
        if output_type == "np":
            audios = audios.numpy()
        elif output_type != "pt":
            raise ValueError(f"`output_type` must be 'np' or 'pt', got {output_type!r}.")
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
    ) -> FlashSpeechPipelineOutput | tuple:
        r"""
        Synthesizes `text` in the voice of `prompt_audio`.

        Args:
            text (`str` or `list[str]`): Sentence(s) to speak.
            prompt_audio (`str`, `os.PathLike`, `np.ndarray`, `torch.Tensor` or a list of them):
                Speech prompt(s) of the target voice (1 s at least; 3 s as in the paper): paths, or 1-D waveforms with
                `prompt_sampling_rate`. One prompt for every text, or one per text.
            prompt_sampling_rate (`int`, *optional*): Sample rate of array prompts; resampled to the codec's rate.
            num_inference_steps (`int`, defaults to 2): Consistency-model evaluations (2 is the paper's default).
            prosody_alpha (`float`, defaults to 0.2): Weight of the prosody refinement; 0 gives the regression
                prosody, larger values more diverse prosody.
            speed (`float`, defaults to 1.0): Speaking rate; 1.5 speaks 1.5 times faster.
            num_waveforms_per_prompt (`int`, defaults to 1): Waveforms per text (diverse sampling).
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*): Controls every random draw. A list
                with one generator per output waveform makes each waveform independent of the others in the batch.
            output_type (`str`, defaults to `"np"`): `"np"` or `"pt"`.
            return_dict (`bool`, defaults to `True`): Return a [`FlashSpeechPipelineOutput`] rather than a tuple.

        Examples:

        Returns:
            [`FlashSpeechPipelineOutput`] or a tuple whose first element is the audio array of shape
            `(batch_size * num_waveforms_per_prompt, num_samples)`.
        """
        texts, prompts = self.check_inputs(
            text, prompt_audio, num_inference_steps, prosody_alpha, speed, num_waveforms_per_prompt
        )
        device = self._execution_device
        n = num_waveforms_per_prompt
        waveforms = [self.load_prompt(p, prompt_sampling_rate) for p in prompts]
        prompt_latents, prompt_mask = self.encode_audio(waveforms)
        tokens = self.tokenizer(texts, padding=True, return_tensors="pt")
        input_ids = tokens["input_ids"].to(device).repeat_interleave(n, dim=0)
        phoneme_mask = tokens["attention_mask"].to(device).bool().repeat_interleave(n, dim=0)
        prompt_latents = prompt_latents.repeat_interleave(n, dim=0)
        prompt_mask = prompt_mask.repeat_interleave(n, dim=0)
        generators = self._item_generators(generator, len(texts) * n)

        phoneme_hidden, prompt_hidden = self.prior_encoder(
            input_ids, phoneme_mask, prompt_latents, prompt_mask, return_dict=False
        )
        durations, condition, frame_mask, log_pitch = self.predict_prosody(
            phoneme_hidden, phoneme_mask, prompt_hidden, prompt_mask, prosody_alpha, speed, num_inference_steps,
            generators,
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


def _build_codec(config: dict) -> torch.nn.Module:
    from .. import codecs

    config = dict(config)
    class_name = config.pop("class_name")
    if not hasattr(codecs, class_name):
        raise ValueError(f"Unknown codec class {class_name!r} in the pipeline config.")
    return getattr(codecs, class_name)(**config)
