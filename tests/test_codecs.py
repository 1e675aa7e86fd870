"""Codecs: one interface (framing, resampling, normalization, saving, gradients) over EnCodec, DAC and the mel codec."""

import math

import librosa
import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from transformers import DacConfig, DacModel, EncodecConfig, EncodecModel

from flashspeech_hf import DacCodec, EncodecCodec, MelCodec, resample
from flashspeech_hf.codecs import VOCOS_MEL_24KHZ_CONFIG, compute_latent_statistics, convert_vocos_state_dict

TINY_ENCODEC = {
    "sampling_rate": 16000,
    "hidden_size": 16,
    "num_filters": 4,
    "upsampling_ratios": [2, 4],
    "num_lstm_layers": 1,
    "codebook_size": 16,
}
# Odd stride: DAC's transposed convolutions then return one sample short per block, which `decode` must pad.
TINY_DAC = {
    "sampling_rate": 16000,
    "encoder_hidden_size": 4,
    "downsampling_ratios": [3, 2],
    "decoder_hidden_size": 16,
    "n_codebooks": 2,
    "codebook_size": 16,
    "codebook_dim": 4,
}
TINY_MEL = {
    "sampling_rate": 16000,
    "n_fft": 64,
    "hop_length": 16,
    "n_mels": 8,
    "vocoder_dim": 16,
    "vocoder_intermediate_dim": 32,
    "vocoder_num_layers": 2,
}
CODEC_NAMES = ["encodec", "dac", "mel", "mel_same"]


def make_codec(name):
    torch.manual_seed(0)
    if name == "encodec":
        codec = EncodecCodec(encodec_config=TINY_ENCODEC)
    elif name == "dac":
        codec = DacCodec(dac_config=TINY_DAC)
    elif name == "mel":
        codec = MelCodec(**TINY_MEL)
    else:
        codec = MelCodec(**TINY_MEL, padding="same")
    return codec.eval()


def public_config(codec):
    return {key: value for key, value in codec.config.items() if not key.startswith("_")}


def speechlike(batch_size, num_samples, sampling_rate=16000, seed=0):
    """A few harmonics with random pitch plus a little noise: deterministic test audio in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(num_samples) / sampling_rate
    f0 = 100 + 150 * torch.rand(batch_size, 1, generator=generator)
    wave = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 5))
    return 0.2 * wave + 0.01 * torch.randn(batch_size, num_samples, generator=generator)


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_shapes_and_frame_counts(name):
    codec = make_codec(name)
    hop = codec.hop_length
    for num_samples in (1, hop - 1, hop, hop + 1, 7 * hop + 3):
        latents = codec.encode(speechlike(2, num_samples))
        num_frames = math.ceil(num_samples / hop)
        assert codec.num_frames(num_samples) == num_frames
        assert latents.shape == (2, codec.latent_dim, num_frames)
        assert torch.isfinite(latents).all()
        waveform = codec.decode(latents)
        assert waveform.shape == (2, num_frames * hop) == (2, codec.num_samples(num_frames))
    assert codec.frame_rate == codec.sampling_rate / hop
    with pytest.raises(ValueError, match="non-negative"):
        codec.num_frames(-1)


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_input_at_another_rate_is_resampled(name):
    codec = make_codec(name)
    waveform = speechlike(2, 3200, sampling_rate=32000)  # 0.1 s at 32 kHz -> 1600 samples at 16 kHz
    latents = codec.encode(waveform, sampling_rate=32000)
    assert latents.shape[-1] == codec.num_frames(1600)
    expected = codec.encode(resample(waveform, 32000, 16000), sampling_rate=16000)
    torch.testing.assert_close(latents, expected)
    # Frames follow the duration, not the sample count.
    assert codec.encode(waveform[:, :1600], sampling_rate=32000).shape[-1] == codec.num_frames(800)


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_latent_normalization(name):
    codec = make_codec(name)
    waveform = speechlike(3, 40 * codec.hop_length)
    raw = codec.encode(waveform, normalize=False)
    # A batch and a single (channels, frames) item; the random tiny DAC's latents are ~1e-6, under the default floor.
    mean, std = compute_latent_statistics([raw[:2], raw[2]], min_std=1e-9)
    assert mean.shape == std.shape == (codec.latent_dim,)
    codec.set_latent_statistics(mean, std)

    latents = codec.encode(waveform)
    flat = latents.transpose(1, 2).reshape(-1, codec.latent_dim)
    torch.testing.assert_close(flat.mean(0), torch.zeros(codec.latent_dim), atol=1e-4, rtol=0)
    torch.testing.assert_close(flat.std(0, unbiased=False), torch.ones(codec.latent_dim), atol=1e-3, rtol=0)
    torch.testing.assert_close(latents, (raw - mean[:, None]) / std[:, None])
    # decode undoes the normalization: same audio as decoding the raw latents without it.
    torch.testing.assert_close(codec.decode(latents), codec.decode(raw, denormalize=False), atol=1e-5, rtol=1e-4)


def test_latent_statistics_skip_masked_frames():
    latents = torch.randn(2, 3, 10)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 6:] = False
    padded = latents.clone()
    padded[1, :, 6:] = 1e6  # padding garbage that must not count
    mean, std = compute_latent_statistics([(padded, mask)])
    valid = torch.cat([latents[0], latents[1, :, :6]], dim=1)
    torch.testing.assert_close(mean, valid.mean(1))
    torch.testing.assert_close(std, valid.std(1, unbiased=False))
    with pytest.raises(ValueError, match="No latent frames"):
        compute_latent_statistics([])
    with pytest.raises(ValueError, match="mask must be boolean"):
        compute_latent_statistics([(latents, mask.float())])


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_save_and_load_round_trip(name, tmp_path):
    codec = make_codec(name)
    generator = torch.Generator().manual_seed(1)
    codec.set_latent_statistics(torch.randn(codec.latent_dim, generator=generator), torch.rand(codec.latent_dim) + 0.5)
    codec.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    loaded = type(codec).from_pretrained(tmp_path)

    assert public_config(loaded) == public_config(codec)
    assert torch.equal(loaded.latent_mean, codec.latent_mean) and torch.equal(loaded.latent_std, codec.latent_std)
    latents = torch.randn(2, codec.latent_dim, 6, generator=generator)
    assert torch.equal(loaded.decode(latents), codec.decode(latents))
    waveform = speechlike(1, 5 * codec.hop_length)
    assert torch.equal(loaded.encode(waveform), codec.encode(waveform))


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_decode_is_differentiable(name):
    codec = make_codec(name)
    codec.requires_grad_(False)  # frozen decoder, as in adversarial training
    latents = torch.randn(2, codec.latent_dim, 5, requires_grad=True)
    codec.decode(latents).square().mean().backward()
    assert latents.grad is not None and torch.isfinite(latents.grad).all()
    assert latents.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["encodec", "mel"])
def test_bad_input_is_rejected(name):
    codec = make_codec(name)
    with pytest.raises(ValueError, match=r"\(batch_size, num_samples\)"):
        codec.encode(torch.zeros(100))
    with pytest.raises(ValueError, match=r"\(batch_size, num_samples\)"):
        codec.encode(torch.zeros(1, 2, 100))
    with pytest.raises(ValueError, match="NaN or infinite"):
        codec.encode(torch.full((1, 100), float("nan")))
    with pytest.raises(ValueError, match="empty"):
        codec.encode(torch.zeros(1, 0))
    with pytest.raises(TypeError, match="floating-point"):
        codec.encode(torch.zeros(1, 100, dtype=torch.int16))
    with pytest.raises(TypeError, match="torch.Tensor"):
        codec.encode(np.zeros((1, 100), dtype=np.float32))
    with pytest.raises(ValueError, match="positive"):
        codec.encode(torch.zeros(1, 100), sampling_rate=0)
    with pytest.raises(ValueError, match=rf"latent_dim={codec.latent_dim}"):
        codec.decode(torch.zeros(1, codec.latent_dim + 1, 4))
    with pytest.raises(ValueError, match=rf"latent_dim={codec.latent_dim}"):
        codec.decode(torch.zeros(codec.latent_dim, 4))
    with pytest.raises(ValueError, match="NaN or infinite"):
        codec.decode(torch.full((1, codec.latent_dim, 4), float("inf")))
    with pytest.raises(ValueError, match="shape"):
        codec.set_latent_statistics(torch.zeros(codec.latent_dim + 1), torch.ones(codec.latent_dim + 1))
    with pytest.raises(ValueError, match="positive"):
        codec.set_latent_statistics(torch.zeros(codec.latent_dim), torch.zeros(codec.latent_dim))


def test_mel_config_is_checked():
    with pytest.raises(ValueError, match="padding"):
        MelCodec(**TINY_MEL, padding="valid")
    with pytest.raises(ValueError, match="hop_length"):
        MelCodec(**{**TINY_MEL, "hop_length": 40})
    with pytest.raises(ValueError, match="f_max"):
        MelCodec(**TINY_MEL, f_max=9000)


@pytest.mark.parametrize("padding", ["center", "same"])
def test_mel_frontend_matches_vocos_definition(padding):
    """Vocos' front-end is torchaudio's MelSpectrogram(power=1): HTK mel, no filter norm, periodic Hann, reflect
    padding, then log(clamp). librosa implements the same definition independently."""
    codec = MelCodec(**TINY_MEL, padding=padding)
    n_fft, hop = codec.config.n_fft, codec.hop_length
    waveform = speechlike(1, 20 * hop)  # whole frames: no zero padding at the end
    audio = waveform[0].numpy()
    if padding == "same":
        pad = (n_fft - hop) // 2
        audio = np.pad(audio, (pad, pad), mode="reflect")
    mel = librosa.feature.melspectrogram(
        y=audio,
        sr=16000,
        n_fft=n_fft,
        hop_length=hop,
        win_length=n_fft,
        window="hann",
        center=padding == "center",
        pad_mode="reflect",
        power=1.0,
        n_mels=codec.latent_dim,
        fmin=0.0,
        fmax=8000.0,
        htk=True,
        norm=None,
    )
    expected = torch.from_numpy(np.log(np.maximum(mel, codec.config.log_clamp)))[:, :20].float()
    torch.testing.assert_close(codec.encode(waveform)[0], expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("padding", ["center", "same"])
def test_istft_head_inverts_the_codec_stft(padding):
    codec = MelCodec(**TINY_MEL, padding=padding)
    for num_samples in (5, 16, 333):
        waveform = speechlike(2, num_samples)
        spectrogram = codec.stft(waveform)
        assert spectrogram.shape == (2, 33, codec.num_frames(num_samples))
        reconstruction = codec.head.istft(spectrogram)
        assert reconstruction.shape == (2, codec.num_samples(codec.num_frames(num_samples)))
        torch.testing.assert_close(reconstruction[:, :num_samples], waveform, atol=1e-5, rtol=0)
        assert reconstruction[:, num_samples:].abs().le(1e-5).all()  # the zero padding


def vocos_mel_state_dict(generator):
    """A state dict with the key names and shapes of charactr/vocos-mel-24khz's pytorch_model.bin."""
    dim, intermediate, n_mels, n_fft = 512, 1536, 100, 1024
    state_dict = {
        "feature_extractor.mel_spec.spectrogram.window": torch.hann_window(n_fft),
        "feature_extractor.mel_spec.mel_scale.fb": torch.rand(n_fft // 2 + 1, n_mels, generator=generator),
        "backbone.embed.weight": torch.randn(dim, n_mels, 7, generator=generator),
        "backbone.embed.bias": torch.randn(dim, generator=generator),
        "backbone.norm.weight": torch.randn(dim, generator=generator),
        "backbone.norm.bias": torch.randn(dim, generator=generator),
        "backbone.final_layer_norm.weight": torch.randn(dim, generator=generator),
        "backbone.final_layer_norm.bias": torch.randn(dim, generator=generator),
        "head.out.weight": torch.randn(n_fft + 2, dim, generator=generator) * 0.01,
        "head.out.bias": torch.randn(n_fft + 2, generator=generator) * 0.01,
        "head.istft.window": torch.hann_window(n_fft),
    }
    for i in range(8):
        prefix = f"backbone.convnext.{i}."
        state_dict[prefix + "dwconv.weight"] = torch.randn(dim, 1, 7, generator=generator)
        state_dict[prefix + "dwconv.bias"] = torch.randn(dim, generator=generator)
        state_dict[prefix + "norm.weight"] = torch.randn(dim, generator=generator)
        state_dict[prefix + "norm.bias"] = torch.randn(dim, generator=generator)
        state_dict[prefix + "pwconv1.weight"] = torch.randn(intermediate, dim, generator=generator)
        state_dict[prefix + "pwconv1.bias"] = torch.randn(intermediate, generator=generator)
        state_dict[prefix + "pwconv2.weight"] = torch.randn(dim, intermediate, generator=generator)
        state_dict[prefix + "pwconv2.bias"] = torch.randn(dim, generator=generator)
        state_dict[prefix + "gamma"] = torch.randn(dim, generator=generator)
    return state_dict


def test_vocos_checkpoint_conversion():
    generator = torch.Generator().manual_seed(0)
    vocos = vocos_mel_state_dict(generator)
    converted = convert_vocos_state_dict(vocos)
    codec = MelCodec(**VOCOS_MEL_24KHZ_CONFIG)
    codec.load_state_dict(converted, strict=True)

    assert codec.sampling_rate == 24000 and codec.hop_length == 256 and codec.latent_dim == 100
    assert torch.equal(codec.backbone.convnext[7].gamma, vocos["backbone.convnext.7.gamma"])
    assert torch.equal(codec.backbone.convnext[3].pwconv1.weight, vocos["backbone.convnext.3.pwconv1.weight"])
    assert torch.equal(codec.head.out.bias, vocos["head.out.bias"])
    assert torch.equal(codec.head.window, vocos["head.istft.window"])
    assert codec.decode(torch.randn(1, 100, 3)).shape == (1, 768)

    with pytest.raises(ValueError, match="not part of a Vocos mel checkpoint"):
        convert_vocos_state_dict({**vocos, "discriminator.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="AdaLayerNorm"):
        convert_vocos_state_dict({**vocos, "backbone.norm.scale.weight": torch.zeros(4, 512)})


def test_encodec_from_transformers(tmp_path):
    torch.manual_seed(0)
    reference = EncodecModel(EncodecConfig(**TINY_ENCODEC)).eval()
    reference.save_pretrained(tmp_path / "encodec")
    codec = EncodecCodec.from_transformers(tmp_path / "encodec")

    assert (codec.sampling_rate, codec.hop_length, codec.latent_dim) == (16000, 8, 16)
    waveform = speechlike(2, 80)
    with torch.no_grad():
        dense = reference.encoder(waveform[:, None])
        torch.testing.assert_close(codec.encode(waveform, normalize=False), dense)
        # Dense latents are the encoder output before quantization: quantizing them gives EnCodec's codes.
        codes = reference.encode(waveform[:, None], bandwidth=reference.config.target_bandwidths[-1]).audio_codes
        our_codes = reference.quantizer.encode(dense, reference.config.target_bandwidths[-1])  # (n_q, batch, frames)
        torch.testing.assert_close(our_codes.transpose(0, 1), codes[0])
        torch.testing.assert_close(codec.decode(dense, denormalize=False), reference.decoder(dense)[:, 0])

    codec.save_pretrained(tmp_path / "codec")
    reloaded = EncodecCodec.from_pretrained(tmp_path / "codec")
    assert torch.equal(reloaded.decode(dense), codec.decode(dense))


def test_dac_from_transformers(tmp_path):
    torch.manual_seed(0)
    reference = DacModel(DacConfig(**{**TINY_DAC, "downsampling_ratios": [2, 4]})).eval()
    reference.save_pretrained(tmp_path / "dac")
    codec = DacCodec.from_transformers(tmp_path / "dac")

    assert (codec.sampling_rate, codec.hop_length, codec.latent_dim) == (16000, 8, 16)
    waveform = speechlike(2, 80)
    with torch.no_grad():
        dense = reference.encoder(waveform[:, None])
        torch.testing.assert_close(codec.encode(waveform, normalize=False), dense)
        # The same space as DacModel.decode's quantized representation: decoding it is DacModel.decode.
        torch.testing.assert_close(codec.decode(dense, denormalize=False), reference.decode(dense).audio_values)

    codec.save_pretrained(tmp_path / "codec")
    reloaded = DacCodec.from_pretrained(tmp_path / "codec")
    assert public_config(reloaded) == public_config(codec)
    assert torch.equal(reloaded.decode(dense), codec.decode(dense))


class CodecOnlyPipeline(DiffusionPipeline):
    def __init__(self, codec):
        super().__init__()
        self.register_modules(codec=codec)


@pytest.mark.parametrize("name", ["encodec", "mel"])
def test_codec_saves_and_loads_as_a_pipeline_component(name, tmp_path):
    codec = make_codec(name)
    codec.set_latent_statistics(torch.randn(codec.latent_dim), torch.rand(codec.latent_dim) + 0.5)
    CodecOnlyPipeline(codec).save_pretrained(tmp_path)
    loaded = CodecOnlyPipeline.from_pretrained(tmp_path).codec
    assert type(loaded) is type(codec)
    latents = torch.randn(1, codec.latent_dim, 4)
    assert torch.equal(loaded.decode(latents), codec.decode(latents))
