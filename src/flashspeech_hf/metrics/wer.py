"""Word error rate of ASR transcripts against the input texts, as an `evaluate` metric (load it by path)."""

import math

import datasets
import evaluate
import jiwer

from flashspeech_hf.metrics.asr import normalize_text
from flashspeech_hf.metrics.utils import FLASHSPEECH_CITATION

_DESCRIPTION = """\
Word error rate (WER) measures the intelligibility of synthesized speech: an ASR model transcribes the audio (see
`flashspeech_hf.metrics.transcribe`; the paper uses HuBERT-large CTC, `facebook/hubert-large-ls960-ft`) and the
transcript is aligned to the text the speech was synthesized from:

    WER = (substitutions + deletions + insertions) / number of reference words

Both sides are normalized first (lower case, punctuation removed, whitespace collapsed, numbers optionally rewritten)
so that only word errors count. The corpus WER sums the edit counts over all items (as jiwer and the LibriSpeech
benchmarks do); the mean of per-item WERs is reported as well. This metric works on text: transcribe audio with
`flashspeech_hf.metrics.transcribe` first. Items that cannot be scored (a `None` transcript from a failed ASR call,
an empty reference) get a NaN WER and an error message, and are left out of the aggregates.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str | None]`): ASR transcripts of the synthesized speech; `None` for clips the ASR could not
        process (they are reported per item, not raised).
    references (`list[str]`): The texts that were synthesized, in the same order.
    normalize (`bool`, *optional*, defaults to `True`): Lower-case, strip punctuation and collapse whitespace.
    normalize_numbers (`bool`, *optional*, defaults to `False`): Also rewrite spelled-out numbers as digits on both
        sides, so that "3" and "three" match (Whisper's English number normalizer from `transformers`).
Returns:
    wer (`float`): Corpus WER over the items that could be scored (NaN if none).
    mean_wer (`float`): Mean of the per-item WERs.
    wer_per_item (`list[float]`): WER of each item; NaN where it could not be scored.
    substitutions, deletions, insertions, hits (`int`): Edit counts summed over the scored items.
    num_failed (`int`): Number of items that could not be scored.
    errors (`list[str | None]`): Why each item could not be scored; `None` for scored items.
Examples:

    >>> from flashspeech_hf.metrics import load_metric
    >>> wer = load_metric("wer")
    >>> results = wer.compute(predictions=["the cat sat", "Hello, world!"], references=["the cat sat down", "hello world"])
    >>> results["wer"], results["wer_per_item"]
    (0.16666666666666666, [0.25, 0.0])
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class WordErrorRate(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=FLASHSPEECH_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            codebase_urls=["https://github.com/jitsi/jiwer"],
            reference_urls=["https://en.wikipedia.org/wiki/Word_error_rate", "https://arxiv.org/abs/2404.14700"],
        )

    def _compute(self, predictions, references, normalize=True, normalize_numbers=False):
        if len(predictions) == 0:
            raise ValueError("Nothing to evaluate: `predictions` and `references` are empty.")
        per_item, errors = [], []
        totals = {"substitutions": 0, "deletions": 0, "insertions": 0, "hits": 0}
        for index, (prediction, reference) in enumerate(zip(predictions, references)):
            if prediction is None:
                per_item.append(math.nan)
                errors.append(f"predictions[{index}] is None: no transcript (the ASR failed on this clip).")
                continue
            if reference is None:
                per_item.append(math.nan)
                errors.append(f"references[{index}] is None.")
                continue
            if normalize or normalize_numbers:
                prediction = normalize_text(prediction, normalize_numbers=normalize_numbers)
                reference = normalize_text(reference, normalize_numbers=normalize_numbers)
            if not reference.split():
                per_item.append(math.nan)
                errors.append(f"references[{index}] has no words; WER is undefined.")
                continue
            # jiwer needs a non-empty hypothesis: an empty transcript is all deletions.
            if prediction.split():
                output = jiwer.process_words(reference, prediction)
                counts = {key: getattr(output, key) for key in totals}
            else:
                counts = {"substitutions": 0, "deletions": len(reference.split()), "insertions": 0, "hits": 0}
            for key in totals:
                totals[key] += counts[key]
            num_reference_words = counts["substitutions"] + counts["deletions"] + counts["hits"]
            per_item.append(
                (counts["substitutions"] + counts["deletions"] + counts["insertions"]) / num_reference_words
            )
            errors.append(None)

        num_reference_words = totals["substitutions"] + totals["deletions"] + totals["hits"]
        scored = [value for value in per_item if not math.isnan(value)]
        return {
            "wer": (totals["substitutions"] + totals["deletions"] + totals["insertions"]) / num_reference_words
            if num_reference_words
            else math.nan,
            "mean_wer": sum(scored) / len(scored) if scored else math.nan,
            "wer_per_item": per_item,
            **totals,
            "num_failed": len(per_item) - len(scored),
            "errors": errors,
        }
