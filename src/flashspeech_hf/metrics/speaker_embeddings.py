"""Speaker embeddings for speaker similarity (Sim-O / Sim-R): the backend of the `speaker_similarity.py` metric.

The paper scores speaker similarity with WavLM-TDNN, a WavLM-large speaker verification model from the UniSpeech
repository that is not on the Hugging Face Hub. The closest Hub model is `microsoft/wavlm-base-plus-sv` (WavLM base+
with an x-vector head, loaded with `AutoModelForAudioXVector`), the default backend here; any other x-vector
checkpoint loads by id or path. `"resemblyzer"` selects the Resemblyzer GE2E encoder, whose wheel ships its weights,
for machines that cannot download checkpoints. Scores from different backends are not comparable (Resemblyzer's
embeddings are non-negative, so even different speakers score around 0.5-0.7).
"""

from __future__ import annotations

import functools

import torch

DEFAULT_SPEAKER_BACKEND = "microsoft/wavlm-base-plus-sv"
RESEMBLYZER = "resemblyzer"


class SpeakerEncoder:
    """Maps 16 kHz speech to unit-norm speaker embeddings.

    Args:
        backend (`str`, *optional*, defaults to `"microsoft/wavlm-base-plus-sv"`):
            `"resemblyzer"`, or the Hub id or local path of a transformers x-vector model (a checkpoint that
            `AutoModelForAudioXVector` and `AutoFeatureExtractor` load).
        device (`str` or `torch.device`, *optional*, defaults to `"cpu"`): Device of the model.

    Examples:

    ```py
    >>> from flashspeech_hf import load_audio
    >>> from flashspeech_hf.metrics import SpeakerEncoder
    >>> encoder = SpeakerEncoder("resemblyzer")
    >>> speech, _ = load_audio("speaker.wav", target_sampling_rate=16000)  # doctest: +SKIP
    >>> encoder([speech]).shape  # doctest: +SKIP
    torch.Size([1, 256])
    ```
    """

    sampling_rate = 16000

    def __init__(self, backend: str = DEFAULT_SPEAKER_BACKEND, device: str | torch.device | None = None):
        if not isinstance(backend, str) or not backend:
            raise ValueError(
                f"`backend` must be 'resemblyzer' or a transformers x-vector model id or path, got {backend!r}."
            )
        self.backend = backend
        self.device = torch.device(device if device is not None else "cpu")
        if backend == RESEMBLYZER:
            try:
                from resemblyzer import VoiceEncoder
            except ImportError as err:
                raise ImportError(
                    "The 'resemblyzer' backend needs `pip install --no-deps resemblyzer librosa webrtcvad-wheels`."
                ) from err
            self._encoder = VoiceEncoder(self.device, verbose=False)
        else:
            from transformers import AutoFeatureExtractor, AutoModelForAudioXVector

            self._feature_extractor = AutoFeatureExtractor.from_pretrained(backend)
            if self._feature_extractor.sampling_rate != self.sampling_rate:
                raise ValueError(
                    f"{backend} expects {self._feature_extractor.sampling_rate} Hz audio; speaker similarity uses "
                    f"{self.sampling_rate} Hz models."
                )
            self._model = AutoModelForAudioXVector.from_pretrained(backend).to(self.device).eval()

    @torch.no_grad()
    def embed(self, waveform: torch.Tensor) -> torch.Tensor:
        """Embeds one clip.

        Args:
            waveform (`torch.Tensor` of shape `(num_samples,)`): Mono speech at 16 kHz.

        Returns:
            `torch.Tensor` of shape `(embedding_dim,)`: the L2-normalized speaker embedding, on the CPU.

        Raises:
            `ValueError`: when the backend finds no speech in the clip.
        """
        if waveform.ndim != 1:
            raise ValueError(f"`waveform` must have shape (num_samples,), got {tuple(waveform.shape)}.")
        if self.backend == RESEMBLYZER:
            from resemblyzer import preprocess_wav

            # Volume normalization and voice-activity trimming; the clip is already at 16 kHz.
            speech = preprocess_wav(waveform.detach().cpu().float().numpy())
            if speech.size == 0:
                raise ValueError("no speech found by voice activity detection.")
            embedding = torch.from_numpy(self._encoder.embed_utterance(speech))
        else:
            inputs = self._feature_extractor(
                waveform.detach().cpu().float().numpy(), sampling_rate=self.sampling_rate, return_tensors="pt"
            )
            embedding = self._model(**inputs.to(self.device)).embeddings[0].float().cpu()
        return torch.nn.functional.normalize(embedding, dim=-1)

    def __call__(self, waveforms: list[torch.Tensor]) -> torch.Tensor:
        """Embeds a list of clips (each on its own, so that padding never changes a score).

        Args:
            waveforms (`list[torch.Tensor]`): Mono 16 kHz clips of shape `(num_samples,)`.

        Returns:
            `torch.Tensor` of shape `(num_clips, embedding_dim)`.
        """
        return torch.stack([self.embed(waveform) for waveform in waveforms])


@functools.lru_cache(maxsize=2)
def load_speaker_encoder(backend: str = DEFAULT_SPEAKER_BACKEND, device: str | None = None) -> SpeakerEncoder:
    """Returns a [`SpeakerEncoder`], kept for the next call with the same backend and device."""
    return SpeakerEncoder(backend, device=device)
