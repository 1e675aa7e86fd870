"""DNSMOS (predicted P.835 SIG/BAK/OVRL and P.808 MOS) of synthesized speech, as an `evaluate` metric."""

import math

import datasets
import evaluate

from flashspeech_hf.metrics.dnsmos_predictor import DNSMOS_KEYS, load_dnsmos_predictor, mean_dnsmos
from flashspeech_hf.metrics.utils import FLASHSPEECH_CITATION, load_audio_items

_CITATION = (
    FLASHSPEECH_CITATION
    + """\
@inproceedings{reddy2022dnsmos,
  title={DNSMOS P.835: A Non-Intrusive Perceptual Objective Speech Quality Metric to Evaluate Noise Suppressors},
  author={Reddy, Chandan K. A. and Gopal, Vishak and Cutler, Ross},
  booktitle={ICASSP 2022 - 2022 IEEE International Conference on Acoustics, Speech and Signal Processing},
  year={2022}
}
"""
)

_DESCRIPTION = """\
DNSMOS is a non-intrusive (reference-free) predictor of the mean opinion score listeners would give a clip: under
ITU-T P.835, SIG (speech signal quality), BAK (background noise: 5 means none) and OVRL (overall quality), and the
P.808 overall MOS from a second model, each on a 1 (bad) to 5 (excellent) scale. Speech synthesis papers quote it
next to WER and speaker similarity. The ONNX models of Microsoft's DNS Challenge ship in the `speechmos` wheel and run
offline on the CPU with `onnxruntime`.

Every clip is resampled to 16 kHz and scored in 9.01 s windows with a 1 s hop (shorter clips are repeated to fill one
window), as the reference script does. DNSMOS was trained on real noisy and noise-suppressed speech: it judges noise
and distortion well and naturalness only coarsely, so compare systems, not absolute values across corpora. A clip that
cannot be used (missing file, empty, silent, shorter than `min_seconds`) gets NaN scores and an error message and is
left out of the means.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list`): Clips to score: audio file paths, or 1-D float waveforms of shape `(num_samples,)`.
    sampling_rate (`int`, *optional*): Sample rate of waveform inputs in Hz; required for arrays, ignored for files.
    personalized (`bool`, *optional*, defaults to `False`): Use the personalized DNSMOS model (it also penalizes
        interfering talkers) for SIG/BAK/OVRL.
    num_threads (`int`, *optional*): ONNX Runtime threads; defaults to `torch.get_num_threads()`.
    min_seconds (`float`, *optional*, defaults to 0.5): Shortest clip accepted.
Returns:
    sig, bak, ovrl, p808 (`float`): Mean DNSMOS P.835 SIG, BAK, OVRL and P.808 MOS over the scored clips (NaN if none).
    sig_per_item, bak_per_item, ovrl_per_item, p808_per_item (`list[float]`): Scores of each clip; NaN where it
        could not be scored.
    num_failed (`int`): Number of clips that could not be scored.
    errors (`list[str | None]`): Why each clip could not be scored; `None` for scored clips.
Examples:

    >>> from flashspeech_hf.metrics import load_metric
    >>> dnsmos = load_metric("dnsmos")
    >>> results = dnsmos.compute(predictions=["generated_0.wav", "generated_1.wav"])  # doctest: +SKIP
    >>> results["ovrl"], results["ovrl_per_item"]  # doctest: +SKIP
    (3.1, [3.05, 3.15])
"""

_AUDIO = [datasets.Sequence(datasets.Value("float32")), datasets.Value("string")]


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class DNSMOS(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            # Waveforms or paths.
            features=[datasets.Features({"predictions": audio}) for audio in _AUDIO],
            codebase_urls=[
                "https://github.com/microsoft/DNS-Challenge/tree/master/DNSMOS",
                "https://pypi.org/project/speechmos/",
            ],
            reference_urls=["https://arxiv.org/abs/2110.01763", "https://arxiv.org/abs/2404.14700"],
        )

    def _compute(self, predictions, sampling_rate=None, personalized=False, num_threads=None, min_seconds=0.5):
        if len(predictions) == 0:
            raise ValueError("Nothing to evaluate: `predictions` is empty.")
        predictor = load_dnsmos_predictor(bool(personalized), num_threads)
        waveforms, errors = load_audio_items(
            predictions, sampling_rate, predictor.sampling_rate, "predictions", min_seconds
        )
        scores = [None if waveform is None else predictor.score(waveform) for waveform in waveforms]
        return {
            **mean_dnsmos(scores),
            **{
                f"{key}_per_item": [math.nan if score is None else score[key] for score in scores]
                for key in DNSMOS_KEYS
            },
            "num_failed": sum(score is None for score in scores),
            "errors": errors,
        }
