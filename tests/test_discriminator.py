"""Tests of the SLM discriminator on a tiny random WavLM (no download)."""

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
