"""FlashSpeechVoice: a speech prompt encoded once by a pipeline, to be saved and reused (a "speaker file")."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

VOICE_FORMAT = "flashspeech-voice"
VOICE_FORMAT_VERSION = 1
_METADATA_KEY = "flashspeech_voice"
_FINGERPRINT_CACHE = "_flashspeech_voice_fingerprint"


def _prompt_modules(pipeline) -> list[tuple[str, torch.nn.Module]]:
    """The modules whose weights make a voice: the whole codec, and the prior encoder's prompt encoder."""
    prior = pipeline.prior_encoder
    return [
        ("codec", pipeline.codec),
        ("prior_encoder.prompt_in", prior.prompt_in),
        ("prior_encoder.prompt_layers", prior.prompt_layers),
    ]


def voice_fingerprint(pipeline) -> str:
    """
    The identity of what a pipeline derives from a speech prompt: a SHA-256 over the codec's and the prior encoder's
    configs and the bytes (values and dtype) of the weights that encode a prompt (the codec, with its latent
    statistics, and the prior encoder's prompt encoder). Two pipelines with the same fingerprint turn the same prompt
    into the same [`FlashSpeechVoice`]; the denoiser and the prosody generator do not enter it (a voice does not
    depend on them).

    The hash of the weights is cached on the pipeline and recomputed when a weight is replaced or changed in place.

    Args:
        pipeline ([`FlashSpeechBasePipeline`]): A pipeline.

    Returns:
        `str`: 64 hexadecimal digits.
    """
    tensors = [
        (f"{prefix}.{name}", tensor)
        for prefix, module in _prompt_modules(pipeline)
        for name, tensor in module.state_dict(keep_vars=True).items()
        if isinstance(tensor, torch.Tensor)
    ]
    key = tuple((name, t.data_ptr(), t._version, t.dtype, tuple(t.shape)) for name, t in tensors)
    cached = getattr(pipeline, _FINGERPRINT_CACHE, None)
    if cached is not None and cached[0] == key:
        return cached[1]
    digest = hashlib.sha256()
    configs = {
        "codec_class": type(pipeline.codec).__name__,
        "codec": dict(pipeline.codec.config),
        "prior_encoder": dict(pipeline.prior_encoder.config),
    }
    digest.update(json.dumps(configs, sort_keys=True, default=str).encode())
    for name, tensor in tensors:
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)};".encode())
        if data.numel():
            digest.update(memoryview(data.reshape(-1).view(torch.uint8).numpy()))
    fingerprint = digest.hexdigest()
    object.__setattr__(pipeline, _FINGERPRINT_CACHE, (key, fingerprint))
    return fingerprint


@dataclass
class FlashSpeechVoice:
    r"""
    Everything a FlashSpeech pipeline derives from a speech prompt, computed once by
    [`~FlashSpeechBasePipeline.encode_voice`] and passed as `voice=` instead of `prompt_audio=`: the same audio, bit
    for bit, without reading and encoding the prompt again (the codec encoding and the prior encoder's prompt encoder
    over the whole prompt). The prompt states feed the phoneme encoder (its time average), the prosody generator
    (its cross-attention) and the denoiser (its prompt query tokens).

    Args:
        prompt_latents (`torch.Tensor` of shape `(latent_dim, num_frames)`): The prompt's normalized codec latents.
        prompt_hidden (`torch.Tensor` of shape `(num_frames, hidden_size)`): The prior encoder's prompt states.
        sampling_rate (`int`): The codec's sample rate.
        duration_seconds (`float`): Length of the prompt.
        fingerprint (`str`): [`voice_fingerprint`] of the pipeline that made it; a pipeline with another refuses it.

    Examples:

    ```py
    >>> from flashspeech_hf import FlashSpeechPipeline, FlashSpeechVoice

    >>> pipe = FlashSpeechPipeline.from_pretrained("checkpoints/flashspeech-demo")
    >>> pipe.encode_voice("prompt.wav").save("alice.voice.safetensors")
    >>> voice = FlashSpeechVoice.load("alice.voice.safetensors", pipeline=pipe)  # checked against the pipeline
    >>> audio = pipe("Hello there.", voice=voice, generator=0).audios[0]
    ```
    """

    prompt_latents: torch.Tensor
    prompt_hidden: torch.Tensor
    sampling_rate: int
    duration_seconds: float
    fingerprint: str

    @property
    def num_frames(self) -> int:
        """Latent frames of the prompt."""
        return self.prompt_latents.shape[-1]

    @property
    def metadata(self) -> dict:
        """What `save` writes next to the tensors (JSON in the safetensors header)."""
        return {
            "format": VOICE_FORMAT,
            "version": VOICE_FORMAT_VERSION,
            "sampling_rate": int(self.sampling_rate),
            "duration_seconds": float(self.duration_seconds),
            "num_frames": int(self.num_frames),
            "fingerprint": self.fingerprint,
            "latents_dtype": str(self.prompt_latents.dtype).removeprefix("torch."),
            "hidden_dtype": str(self.prompt_hidden.dtype).removeprefix("torch."),
        }

    def save(self, path: str | os.PathLike) -> None:
        """
        Writes the voice as one safetensors file (`prompt_latents`, `prompt_hidden`) whose header holds the metadata
        as JSON (sample rate, duration, the pipeline's fingerprint, dtypes). The file is written under a temporary
        name in the same folder, then renamed: `path` is never half-written.

        Args:
            path (`str` or `os.PathLike`): The file, conventionally `NAME.voice.safetensors`.
        """
        path = os.path.abspath(os.fspath(path))
        folder, name = os.path.split(path)
        os.makedirs(folder, exist_ok=True)
        temporary = os.path.join(folder, f".{name}.{os.getpid()}.partial")
        tensors = {
            "prompt_latents": self.prompt_latents.detach().to("cpu").contiguous(),
            "prompt_hidden": self.prompt_hidden.detach().to("cpu").contiguous(),
        }
        try:
            save_file(tensors, temporary, metadata={_METADATA_KEY: json.dumps(self.metadata)})
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)

    @classmethod
    def load(cls, path: str | os.PathLike, pipeline=None) -> FlashSpeechVoice:
        """
        Reads a voice written by [`~FlashSpeechVoice.save`].

        Args:
            path (`str` or `os.PathLike`): The file.
            pipeline ([`FlashSpeechBasePipeline`], *optional*): Refuse the voice unless this pipeline made it (same
                codec, prompt encoder, weights and dtype); the pipelines also check it when it is used.

        Returns:
            [`FlashSpeechVoice`] with CPU tensors.

        Raises:
            `FileNotFoundError`: No such file. `ValueError`: Not a voice file, corrupt, or made by another pipeline.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Voice file not found: {path}.")
        try:
            with safe_open(path, "pt") as handle:
                header = handle.metadata() or {}
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        except (SafetensorError, OSError, ValueError) as err:
            raise ValueError(f"{path} is not a readable voice file (corrupt or not safetensors): {err}") from err
        if _METADATA_KEY not in header:
            raise ValueError(f"{path} is a safetensors file but not a FlashSpeech voice (no voice metadata).")
        try:
            meta = json.loads(header[_METADATA_KEY])
            if meta.get("format") != VOICE_FORMAT:
                raise ValueError(f"format {meta.get('format')!r}")
            if meta.get("version") != VOICE_FORMAT_VERSION:
                raise ValueError(f"format version {meta.get('version')!r}, this library reads {VOICE_FORMAT_VERSION}")
            latents, hidden = tensors["prompt_latents"], tensors["prompt_hidden"]
            if latents.ndim != 2 or hidden.ndim != 2 or not latents.shape[1] == hidden.shape[0] == meta["num_frames"]:
                raise ValueError(
                    f"shapes {tuple(latents.shape)} / {tuple(hidden.shape)} for {meta['num_frames']} frames"
                )
            if not (latents.is_floating_point() and hidden.is_floating_point()):
                raise ValueError("non-float tensors")
            if not (torch.isfinite(latents).all() and torch.isfinite(hidden).all()):
                raise ValueError("NaN or infinite values")
            voice = cls(
                # fresh (aligned) copies: CPU kernels may round differently on unaligned inputs
                prompt_latents=latents.clone(),
                prompt_hidden=hidden.clone(),
                sampling_rate=int(meta["sampling_rate"]),
                duration_seconds=float(meta["duration_seconds"]),
                fingerprint=str(meta["fingerprint"]),
            )
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as err:
            raise ValueError(f"{path} is not a valid FlashSpeech voice file: {err}.") from err
        if pipeline is not None:
            voice.check_compatible(pipeline, name=path)
        return voice

    def check_compatible(self, pipeline, name: str = "voice") -> None:
        """
        Raises a `ValueError` unless `pipeline` made this voice: same [`voice_fingerprint`] (codec and prompt
        encoder configs, weights and dtype) and sample rate.

        Args:
            pipeline ([`FlashSpeechBasePipeline`]): The pipeline about to use the voice.
            name (`str`): What to call the voice in the message (an argument name or a file).
        """
        if not isinstance(self, FlashSpeechVoice):
            raise TypeError(f"`{name}` must be a FlashSpeechVoice, got {type(self).__name__}.")
        ours = voice_fingerprint(pipeline)
        if self.fingerprint == ours and self.sampling_rate == pipeline.sampling_rate:
            return
        dtype = str(pipeline.prior_encoder.dtype).removeprefix("torch.")
        made = self.metadata["hidden_dtype"]
        hint = f" (it was made in {made}, this pipeline runs {dtype})" if made != dtype else ""
        raise ValueError(
            f"`{name}` was encoded by an incompatible pipeline{hint}: its codec, prompt encoder or their weights differ "
            f"(voice fingerprint {self.fingerprint[:12]}, this pipeline's {ours[:12]}; sample rate "
            f"{self.sampling_rate} vs {pipeline.sampling_rate} Hz). Encode the prompt again with this pipeline: "
            "`pipe.encode_voice(prompt_audio)` or `flashspeech voice --model ... --prompt ... --output ...`."
        )
