"""Evaluation metrics of zero-shot TTS, as `evaluate` modules that ship with this package.

The paper compares systems by intelligibility (`wer`), speaker similarity (`speaker_similarity`: Sim-O / Sim-R),
prosody diversity (`prosody_jsd`) and speed (`rtf`); `dnsmos` adds the predicted MOS (DNSMOS P.835 SIG/BAK/OVRL and
P.808) that speech synthesis papers quote for quality. Each metric is an `evaluate.Metric` script in this folder,
loaded by path (the Hub copies of `evaluate` scripts need network access): [`load_metric`] does it by name, and
[`METRIC_PATHS`] maps every name to its script for `evaluate.load(path)` directly.

Two kinds of files live here. The `evaluate` scripts are named after their metric and are loaded by `evaluate`, never
imported; each computes its scores with a backend module, named after the model or tool it wraps, whose functions and
classes are this package's importable API (usable without `evaluate`):

| metric (`evaluate` script) | backend                 | what the backend provides                                        |
|----------------------------|-------------------------|------------------------------------------------------------------|
| `wer.py`                   | `asr.py`                | [`transcribe`], [`SpeechRecognizer`], [`normalize_text`]          |
| `speaker_similarity.py`    | `speaker_embeddings.py` | [`SpeakerEncoder`] (WavLM x-vector or Resemblyzer embeddings)     |
| `prosody_jsd.py`           | `prosody_statistics.py` | [`extract_pitch`], [`pitch_histogram`], [`jensen_shannon_divergence`] |
| `dnsmos.py`                | `dnsmos_predictor.py`   | [`DNSMOSPredictor`], [`predict_dnsmos`]                           |
| `rtf.py`                   | `timing.py`             | [`RealTimeFactorTimer`]                                           |

`utils.py` holds the audio loading and error bookkeeping that the scripts share.
"""

from __future__ import annotations

import os

from .asr import SpeechRecognizer, default_asr_backend, load_recognizer, normalize_text, transcribe
from .dnsmos_predictor import DNSMOS_KEYS, DNSMOSPredictor, predict_dnsmos
from .prosody_statistics import extract_pitch, jensen_shannon_divergence, pitch_histogram
from .speaker_embeddings import SpeakerEncoder
from .timing import RealTimeFactorTimer

_METRICS_DIR = os.path.dirname(os.path.abspath(__file__))

METRIC_PATHS: dict[str, str] = {
    name: os.path.join(_METRICS_DIR, f"{name}.py")
    for name in ("wer", "speaker_similarity", "prosody_jsd", "rtf", "dnsmos")
}
"""Name -> path of each metric script, for `evaluate.load(METRIC_PATHS[name])`."""


def load_metric(name: str, config_name: str | None = None, **kwargs):
    """Loads one of this package's metrics with `evaluate.load`, from its script in this folder (no network).

    Args:
        name (`str`): `"wer"`, `"speaker_similarity"`, `"prosody_jsd"`, `"rtf"` or `"dnsmos"`.
        config_name (`str`, *optional*): The metric's configuration: `"pitch"` (default) or `"duration"` for
            `"prosody_jsd"`.
        **kwargs: Passed to `evaluate.load` (e.g. `keep_in_memory=True`, `experiment_id`).

    Returns:
        `evaluate.EvaluationModule`: call `.compute(...)` on it; its docstring (`print(metric.inputs_description)`)
        lists the inputs and outputs.

    Examples:

    ```py
    >>> from flashspeech_hf.metrics import load_metric
    >>> wer = load_metric("wer")
    >>> wer.compute(predictions=["hello world"], references=["Hello, world!"])["wer"]
    0.0
    ```
    """
    import evaluate

    if name not in METRIC_PATHS:
        raise ValueError(f"Unknown metric {name!r}; available: {sorted(METRIC_PATHS)}.")
    return evaluate.load(METRIC_PATHS[name], config_name, **kwargs)


__all__ = [
    "DNSMOS_KEYS",
    "DNSMOSPredictor",
    "METRIC_PATHS",
    "RealTimeFactorTimer",
    "SpeakerEncoder",
    "SpeechRecognizer",
    "default_asr_backend",
    "extract_pitch",
    "jensen_shannon_divergence",
    "load_metric",
    "load_recognizer",
    "normalize_text",
    "pitch_histogram",
    "predict_dnsmos",
    "transcribe",
]
