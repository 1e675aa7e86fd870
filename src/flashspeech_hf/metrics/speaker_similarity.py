"""Speaker similarity (Sim-O / Sim-R) of synthesized speech to a reference, as an `evaluate` metric."""

import itertools
import math

import datasets
import evaluate
import torch

from flashspeech_hf.metrics.speaker_embeddings import DEFAULT_SPEAKER_BACKEND, load_speaker_encoder
from flashspeech_hf.metrics.utils import FLASHSPEECH_CITATION, load_audio_items, merge_errors

_DESCRIPTION = """\
Speaker similarity is the cosine similarity between the speaker embeddings of a synthesized clip and of a reference
clip of the target speaker, averaged over pairs; 1 means the same voice. Which reference is passed decides which of
the paper's two scores this is:

- Sim-O: the reference is the original recording (the speech prompt as recorded). It measures similarity to the
  real speaker, including the codec's own loss.
- Sim-R: the reference is the prompt reconstructed by the codec (encode then decode the prompt with the same codec the
  TTS model generates in). It factors out the codec and measures how well the model continues the prompt.

Embeddings come from `microsoft/wavlm-base-plus-sv` by default (the paper's WavLM-TDNN is not on the Hub), from any
transformers x-vector model by id or path, or offline from Resemblyzer (`backend="resemblyzer"`). Every clip is
resampled to 16 kHz. A pair with an unusable clip (missing file, empty, silent, shorter than `min_seconds`, no speech
found) gets a NaN score and an error message and is left out of the mean.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list`): Synthesized clips: audio file paths, or 1-D float waveforms of shape `(num_samples,)`.
    references (`list`): One reference clip of the target speaker per prediction, in the same form (all items of a
        list must be of one kind).
    sampling_rate (`int`, *optional*): Sample rate of waveform inputs in Hz; required for arrays, ignored for files.
    reference_sampling_rate (`int`, *optional*): Sample rate of waveform references when it differs from
        `sampling_rate`.
    backend (`str`, *optional*, defaults to `"microsoft/wavlm-base-plus-sv"`): `"resemblyzer"` or a transformers
        x-vector model id or path. The loaded model is cached between calls.
    device (`str`, *optional*): Device of the embedding model.
    min_seconds (`float`, *optional*, defaults to 0.5): Shortest clip accepted.
Returns:
    speaker_similarity (`float`): Mean cosine similarity over the pairs that could be scored (NaN if none).
    speaker_similarity_per_item (`list[float]`): Cosine similarity of each pair; NaN where it could not be scored.
    num_failed (`int`): Number of pairs that could not be scored.
    errors (`list[str | None]`): Why each pair could not be scored; `None` for scored pairs.
Examples:

    >>> from flashspeech_hf.metrics import load_metric
    >>> sim = load_metric("speaker_similarity")
    >>> results = sim.compute(
    ...     predictions=["generated_0.wav"], references=["prompt_0.wav"], backend="resemblyzer"
    ... )  # doctest: +SKIP
    >>> results["speaker_similarity"]  # doctest: +SKIP
    0.87
"""

_AUDIO = [datasets.Sequence(datasets.Value("float32")), datasets.Value("string")]


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SpeakerSimilarity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=FLASHSPEECH_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            # Waveforms or paths, on either side.
            features=[
                datasets.Features({"predictions": prediction, "references": reference})
                for prediction, reference in itertools.product(_AUDIO, _AUDIO)
            ],
            codebase_urls=[
                "https://huggingface.co/microsoft/wavlm-base-plus-sv",
                "https://github.com/resemble-ai/Resemblyzer",
            ],
            reference_urls=["https://arxiv.org/abs/2404.14700"],
        )

    def _compute(
        self,
        predictions,
        references,
        sampling_rate=None,
        reference_sampling_rate=None,
        backend=DEFAULT_SPEAKER_BACKEND,
        device=None,
        min_seconds=0.5,
    ):
        if len(predictions) == 0:
            raise ValueError("Nothing to evaluate: `predictions` and `references` are empty.")
        encoder = load_speaker_encoder(backend, None if device is None else str(device))
        reference_sampling_rate = reference_sampling_rate if reference_sampling_rate is not None else sampling_rate
        generated, generated_errors = load_audio_items(
            predictions, sampling_rate, encoder.sampling_rate, "predictions", min_seconds
        )
        prompts, prompt_errors = load_audio_items(
            references, reference_sampling_rate, encoder.sampling_rate, "references", min_seconds
        )
        errors = merge_errors(generated_errors, prompt_errors)

        scores = []
        for index, (prediction, reference) in enumerate(zip(generated, prompts)):
            if errors[index] is not None:
                scores.append(math.nan)
                continue
            try:
                prediction_embedding = encoder.embed(prediction)
                reference_embedding = encoder.embed(reference)
            except ValueError as err:
                scores.append(math.nan)
                errors[index] = f"pair {index}: {err}"
                continue
            scores.append(torch.dot(prediction_embedding, reference_embedding).item())

        valid = [score for score in scores if not math.isnan(score)]
        return {
            "speaker_similarity": sum(valid) / len(valid) if valid else math.nan,
            "speaker_similarity_per_item": scores,
            "num_failed": len(scores) - len(valid),
            "errors": errors,
        }
