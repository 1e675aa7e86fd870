"""Predicted MOS with DNSMOS (ONNX models from the `speechmos` wheel): the backend of the `dnsmos.py` metric.

DNSMOS (Reddy et al., ICASSP 2022) predicts, from the audio alone, the mean opinion scores that listeners would give
under ITU-T P.835: SIG (speech signal distortion), BAK (background noise intrusiveness) and OVRL (overall quality),
each on a 1-5 scale; a second model predicts the P.808 overall MOS. Speech synthesis and enhancement papers quote it
as a reference-free quality score next to WER and speaker similarity. The models were
trained on noisy, reverberant and noise-suppressed real speech, so they judge noise and distortion well and
naturalness only coarsely: a clean but robotic synthetic voice can score a high BAK and a modest SIG.

The scoring follows Microsoft's reference script (`dnsmos_local.py` of the DNS Challenge) as packaged by `speechmos`:
16 kHz audio, 9.01 s windows with a 1 s hop (shorter clips are repeated to fill one window), the per-window raw scores
mapped to MOS by the published polynomials and averaged over the windows.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence

import numpy as np
import torch

from .utils import load_audio_items

DNSMOS_KEYS = ("sig", "bak", "ovrl", "p808")
"""Keys of a DNSMOS score: P.835 SIG, BAK and OVRL, and the P.808 MOS."""


def _speechmos_dnsmos():
    try:
        import onnxruntime  # noqa: F401
        from speechmos import dnsmos
    except ImportError as err:
        raise ImportError(
            "DNSMOS needs `pip install speechmos onnxruntime librosa` (or the `eval` extra of flashspeech-hf: "
            "`pip install 'flashspeech-hf[eval]'`)."
        ) from err
    return dnsmos


class DNSMOSPredictor:
    """Predicts DNSMOS P.835 (SIG, BAK, OVRL) and P.808 scores of speech, offline on the CPU.

    Args:
        personalized (`bool`, *optional*, defaults to `False`):
            Use the personalized DNSMOS model, which also penalizes interfering (background) talkers, instead of the
            standard P.835 model. The P.808 score is the same either way.
        num_threads (`int`, *optional*):
            Threads of each ONNX Runtime session. Defaults to `torch.get_num_threads()`, so `OMP_NUM_THREADS` and
            `torch.set_num_threads` bound it as they bound the rest of the evaluation.

    Examples:

    ```py
    >>> import numpy as np
    >>> from flashspeech_hf.metrics import DNSMOSPredictor
    >>> predictor = DNSMOSPredictor(num_threads=1)
    >>> scores = predictor(["generated_0.wav"])  # doctest: +SKIP
    >>> scores[0]  # doctest: +SKIP
    {'sig': 3.41, 'bak': 3.98, 'ovrl': 3.05, 'p808': 3.62}
    >>> predictor([np.zeros(16000, dtype=np.float32)], sampling_rate=16000, return_errors=True)  # unusable clip
    ([None], ['`audios[0]` is silent (RMS 0.00e+00); it must contain speech.'])
    ```
    """

    sampling_rate = 16000

    def __init__(self, personalized: bool = False, num_threads: int | None = None):
        if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)):
            raise TypeError(f"`num_threads` must be a positive int or None, got {num_threads!r}.")
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"`num_threads` must be positive, got {num_threads}.")
        dnsmos = _speechmos_dnsmos()
        import onnxruntime

        self.personalized = bool(personalized)
        self.num_threads = num_threads if num_threads is not None else torch.get_num_threads()
        models_dir = os.path.dirname(os.path.abspath(dnsmos.__file__))
        primary = os.path.join(models_dir, "pdnsmos_models" if personalized else "dnsmos_models", "sig_bak_ovr.onnx")
        p808 = os.path.join(models_dir, "dnsmos_models", "model_v8.onnx")
        for path in (primary, p808):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"The DNSMOS model {path} is missing from the installed `speechmos` package.")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.num_threads
        options.inter_op_num_threads = 1
        # speechmos's scorer (the reference DNSMOS windowing, mel features and polynomial mapping) with sessions
        # bounded to `num_threads`: its own constructor would open them on every core.
        self._scorer = dnsmos.DNSMOS.__new__(dnsmos.DNSMOS)
        self._scorer.primary_model_path = primary
        self._scorer.onnx_sess = onnxruntime.InferenceSession(primary, options, providers=["CPUExecutionProvider"])
        self._scorer.p808_onnx_sess = onnxruntime.InferenceSession(p808, options, providers=["CPUExecutionProvider"])

    def score(self, waveform: torch.Tensor | np.ndarray) -> dict[str, float]:
        """Scores one clip.

        Args:
            waveform (`torch.Tensor` or `np.ndarray` of shape `(num_samples,)`): Mono speech at 16 kHz.

        Returns:
            `dict[str, float]`: `"sig"`, `"bak"`, `"ovrl"` (P.835) and `"p808"` MOS, each about 1 (bad) to 5
            (excellent).
        """
        if isinstance(waveform, torch.Tensor):
            waveform = waveform.detach().cpu().numpy()
        audio = np.asarray(waveform, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"`waveform` must have shape (num_samples,), got {audio.shape}.")
        if audio.size == 0:
            raise ValueError("`waveform` is empty.")
        # speechmos rejects samples outside [-1, 1], which resampling can overshoot by a hair.
        audio = np.clip(audio, -1.0, 1.0)
        scores = self._scorer(audio, self.sampling_rate, self.personalized)
        return {key: float(scores[f"{key}_mos"]) for key in DNSMOS_KEYS}

    def __call__(
        self,
        audios: Sequence,
        sampling_rate: int | None = None,
        return_errors: bool = False,
        min_seconds: float = 0.5,
    ) -> list[dict[str, float] | None] | tuple[list[dict[str, float] | None], list[str | None]]:
        """Scores a list of clips, resampling each to 16 kHz.

        Args:
            audios (`list` of `str`, `os.PathLike`, `np.ndarray` or `torch.Tensor`):
                Audio file paths or 1-D waveforms of shape `(num_samples,)`.
            sampling_rate (`int`, *optional*): Sample rate of the waveforms in Hz; required for arrays.
            return_errors (`bool`, *optional*, defaults to `False`): Also return the per-item error messages.
            min_seconds (`float`, *optional*, defaults to 0.5): Shortest clip accepted.

        Returns:
            `list[dict[str, float] | None]`: the scores of every clip (see [`~DNSMOSPredictor.score`]), `None` for
            clips that could not be used (missing file, empty, silent, too short); with `return_errors=True`, the pair
            `(scores, errors)` where `errors[i]` says why item `i` is `None`.
        """
        if isinstance(audios, (str, os.PathLike, np.ndarray, torch.Tensor)):
            raise TypeError("`audios` must be a list of clips; wrap a single clip in a list.")
        waveforms, errors = load_audio_items(
            audios, sampling_rate, target_sampling_rate=self.sampling_rate, name="audios", min_seconds=min_seconds
        )
        scores: list[dict[str, float] | None] = [None] * len(waveforms)
        for index, waveform in enumerate(waveforms):
            if waveform is not None:
                scores[index] = self.score(waveform)
        return (scores, errors) if return_errors else scores


@functools.lru_cache(maxsize=2)
def load_dnsmos_predictor(personalized: bool = False, num_threads: int | None = None) -> DNSMOSPredictor:
    """Returns a [`DNSMOSPredictor`], kept for the next call with the same arguments."""
    return DNSMOSPredictor(personalized=personalized, num_threads=num_threads)


def predict_dnsmos(
    audios: Sequence,
    sampling_rate: int | None = None,
    personalized: bool = False,
    num_threads: int | None = None,
    return_errors: bool = False,
) -> list[dict[str, float] | None] | tuple[list[dict[str, float] | None], list[str | None]]:
    """Predicts the DNSMOS of clips with a cached [`DNSMOSPredictor`].

    Args:
        audios (`list` of `str`, `np.ndarray` or `torch.Tensor`): Audio file paths or 1-D waveforms.
        sampling_rate (`int`, *optional*): Sample rate of the waveforms in Hz; required for arrays.
        personalized (`bool`, *optional*, defaults to `False`): Use the personalized DNSMOS model.
        num_threads (`int`, *optional*): ONNX Runtime threads (default `torch.get_num_threads()`).
        return_errors (`bool`, *optional*, defaults to `False`): Also return the per-item error messages.

    Returns:
        `list[dict[str, float] | None]`, or `(scores, errors)` with `return_errors=True`: see
        [`DNSMOSPredictor.__call__`].

    Examples:

    ```py
    >>> from flashspeech_hf.metrics import predict_dnsmos
    >>> predict_dnsmos(["generated_0.wav"])[0]["ovrl"]  # doctest: +SKIP
    3.05
    ```
    """
    predictor = load_dnsmos_predictor(bool(personalized), num_threads)
    return predictor(audios, sampling_rate=sampling_rate, return_errors=return_errors)


def mean_dnsmos(scores: Sequence[dict[str, float] | None]) -> dict[str, float]:
    """Averages DNSMOS scores over the clips that were scored.

    Args:
        scores (`list[dict[str, float] | None]`): Per-clip scores, `None` for clips that were not scored.

    Returns:
        `dict[str, float]`: the mean of each of `"sig"`, `"bak"`, `"ovrl"`, `"p808"`; NaN where no clip was scored.
    """
    valid = [score for score in scores if score is not None]
    return {key: float(np.mean([score[key] for score in valid])) if valid else math.nan for key in DNSMOS_KEYS}
