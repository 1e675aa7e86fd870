"""Real-time factor of speech synthesis, end to end and per component, as an `evaluate` metric."""

import math

import datasets
import evaluate

from flashspeech_hf.metrics.utils import FLASHSPEECH_CITATION

_DESCRIPTION = """\
The real-time factor (RTF) is the time spent synthesizing divided by the duration of the audio produced:

    RTF = processing seconds / audio seconds

Lower is faster; below 1 is faster than real time. The paper reports 0.02 for FlashSpeech (2 sampling steps, one
V100) against 0.37 for NaturalSpeech 2 and 0.66 for Voicebox. The corpus RTF divides the summed processing time by the
summed audio duration (so long clips weigh more, as in throughput); the mean of per-item RTFs is reported too.
Optional per-component times (e.g. `"text"`, `"prior"`, `"prosody"`, `"denoiser"`, `"codec_decode"`) give the RTF of
each component. Measure times with `flashspeech_hf.metrics.RealTimeFactorTimer`, which can also report the same
numbers directly. Items with a missing, non-positive or non-finite audio duration, or a negative or non-finite time,
get a NaN and an error message and are left out of the aggregates.
"""

_KWARGS_DESCRIPTION = """
Args:
    processing_seconds (`list[float]`): End-to-end synthesis time of each item, in seconds.
    audio_seconds (`list[float]`): Duration of the audio produced for each item, in seconds.
    component_seconds (`dict[str, list[float]]`, *optional*): Time of each component per item, e.g.
        `{"denoiser": [...], "codec_decode": [...]}`; every list has one value per item.
Returns:
    rtf (`float`): Summed processing time / summed audio duration over valid items (NaN if none).
    mean_rtf (`float`): Mean of the per-item RTFs.
    rtf_per_item (`list[float]`): RTF of each item; NaN where invalid.
    rtf_per_component (`dict[str, float]`): Summed component time / summed audio duration over valid items.
    processing_seconds, audio_seconds (`float`): The sums over valid items.
    num_failed (`int`): Number of invalid items.
    errors (`list[str | None]`): Why each item is invalid; `None` for valid items.
Examples:

    >>> from flashspeech_hf.metrics import load_metric
    >>> rtf = load_metric("rtf")
    >>> results = rtf.compute(
    ...     processing_seconds=[0.1, 0.3],
    ...     audio_seconds=[5.0, 5.0],
    ...     component_seconds={"denoiser": [0.05, 0.1], "codec_decode": [0.02, 0.1]},
    ... )
    >>> round(results["rtf"], 3), round(results["rtf_per_component"]["denoiser"], 3)
    (0.04, 0.015)
"""


def _is_valid_seconds(value, positive=False):
    return value is not None and math.isfinite(value) and (value > 0 if positive else value >= 0)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RealTimeFactor(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=FLASHSPEECH_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"processing_seconds": datasets.Value("float64"), "audio_seconds": datasets.Value("float64")}
            ),
            reference_urls=["https://arxiv.org/abs/2404.14700"],
        )

    def _compute(self, processing_seconds, audio_seconds, component_seconds=None):
        if len(processing_seconds) == 0:
            raise ValueError("Nothing to evaluate: `processing_seconds` and `audio_seconds` are empty.")
        component_seconds = dict(component_seconds or {})
        for name, values in component_seconds.items():
            if len(values) != len(processing_seconds):
                raise ValueError(
                    f"Mismatch in the number of items: component_seconds[{name!r}] ({len(values)}) and "
                    f"processing_seconds ({len(processing_seconds)})."
                )

        errors, per_item = [], []
        for index, (processing, audio) in enumerate(zip(processing_seconds, audio_seconds)):
            messages = []
            if not _is_valid_seconds(audio, positive=True):
                messages.append(f"audio_seconds[{index}] = {audio} is not a positive duration.")
            if not _is_valid_seconds(processing):
                messages.append(f"processing_seconds[{index}] = {processing} is not a non-negative time.")
            for name, values in component_seconds.items():
                if not _is_valid_seconds(values[index]):
                    messages.append(
                        f"component_seconds[{name!r}][{index}] = {values[index]} is not a non-negative time."
                    )
            errors.append("; ".join(messages) if messages else None)
            per_item.append(math.nan if messages else processing / audio)

        valid = [index for index, error in enumerate(errors) if error is None]
        total_audio = sum(audio_seconds[index] for index in valid)
        total_processing = sum(processing_seconds[index] for index in valid)
        return {
            "rtf": total_processing / total_audio if valid else math.nan,
            "mean_rtf": sum(per_item[index] for index in valid) / len(valid) if valid else math.nan,
            "rtf_per_item": per_item,
            "rtf_per_component": {
                name: sum(values[index] for index in valid) / total_audio if valid else math.nan
                for name, values in component_seconds.items()
            },
            "processing_seconds": total_processing,
            "audio_seconds": total_audio,
            "num_failed": len(per_item) - len(valid),
            "errors": errors,
        }
