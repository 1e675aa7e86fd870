"""Output dataclasses of the FlashSpeech pipelines."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.pipelines.pipeline_utils import AudioPipelineOutput


@dataclass
class FlashSpeechPipelineOutput(AudioPipelineOutput):
    """
    Output of [`FlashSpeechPipeline`] and [`FlashSpeechVoiceConversionPipeline`].

    Args:
        audios (`np.ndarray` or `torch.Tensor` of shape `(batch_size, num_samples)`):
            Mono waveforms at `pipe.sampling_rate`, zero-padded to the longest; item `i` is `audios[i, :audio_lengths[i]]`.
            With `output_type="latent"`: the normalized codec latents, `torch.Tensor` of shape
            `(batch_size, latent_dim, num_frames)`.
        audio_lengths (`list[int]`): Number of valid samples of each waveform (of latent frames for `"latent"`).
        durations (`list[torch.LongTensor]`): Frames per phoneme of each waveform, shape `(num_phonemes_i,)`.
        log_pitch (`list[torch.Tensor]`): Predicted `ln F0` per latent frame of each waveform, shape `(num_frames_i,)`.
    """

    audio_lengths: list[int] | None = None
    durations: list[torch.Tensor] | None = None
    log_pitch: list[torch.Tensor] | None = None


@dataclass
class FlashSpeechEditOutput(FlashSpeechPipelineOutput):
    """
    Output of [`FlashSpeechEditPipeline`]: the fields of [`FlashSpeechPipelineOutput`] for the edited utterance, plus
    where the splice lies.

    Args:
        edit_start (`int`): First sample of the output that differs from the original (start of the left cross-fade);
            `audios[0, :edit_start]` equals the original waveform's first `edit_start` samples.
        edit_end (`int`): End (exclusive) of the spliced region in the output (end of the right cross-fade);
            `audios[0, edit_end:]` equals `original[original_end:]`.
        original_end (`int`): End (exclusive) of the replaced region in the original waveform.
        With `output_type="latent"` the three positions are latent frames of the unspliced edited utterance
        (`audios` of shape `(1, latent_dim, num_frames)`): `[edit_start, edit_end)` are the regenerated frames, which
        replace the original's `[edit_start, original_end)`.
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
    Phoneme durations of a recording, from [`~FlashSpeechBasePipeline.align`].

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
