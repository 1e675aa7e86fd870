"""Tests of the training losses on inputs whose values can be computed by hand."""

import math
import os

import pytest
import torch

from flashspeech_hf.losses import (
    adaptive_adversarial_weight,
    binarization_loss,
    consistency_training_loss,
    discriminator_loss,
    duration_loss,
    forward_sum_loss,
    generator_adversarial_loss,
    pitch_loss,
    pseudo_huber_loss,
)


def test_pseudo_huber_values_and_reductions():
    pred = torch.tensor([[0.0, 0.04], [0.3, -0.4]])
    target = torch.zeros(2, 2)
    # sqrt(0.04^2 + 0.03^2) = 0.05; sqrt(0.3^2 + 0.03^2), sqrt(0.4^2 + 0.03^2)
    expected = torch.tensor([[0.0, 0.02], [math.sqrt(0.0909) - 0.03, math.sqrt(0.1609) - 0.03]])
    torch.testing.assert_close(pseudo_huber_loss(pred, target, reduction="none"), expected)
    torch.testing.assert_close(pseudo_huber_loss(pred, target, reduction="per_item"), expected.mean(1))
    torch.testing.assert_close(pseudo_huber_loss(pred, target), expected.mean())

    mask = torch.tensor([[True, True], [True, False]])
    torch.testing.assert_close(pseudo_huber_loss(pred, target, mask=mask), expected[mask].mean())
    torch.testing.assert_close(
        pseudo_huber_loss(pred, target, mask=mask, reduction="per_item"),
        torch.stack([expected[0].mean(), expected[1, 0]]),
    )


def test_pseudo_huber_is_quadratic_for_small_and_linear_for_large_errors():
    c = 0.03
    small, large = torch.tensor([1e-3]), torch.tensor([10.0])
    torch.testing.assert_close(
        pseudo_huber_loss(small, torch.zeros(1), c=c, reduction="none"), small.pow(2) / (2 * c), rtol=1e-3, atol=0
    )
    torch.testing.assert_close(
        pseudo_huber_loss(large, torch.zeros(1), c=c, reduction="none"), large - c, rtol=1e-4, atol=0
    )


def test_pseudo_huber_frame_mask_broadcasts_over_channels():
    pred, target = torch.randn(2, 3, 5), torch.randn(2, 3, 5)
    frame_mask = torch.tensor([[True] * 5, [True] * 2 + [False] * 3])
    full = pseudo_huber_loss(pred, target, reduction="none")
    expected = torch.stack([full[0].mean(), full[1, :, :2].mean()])
    torch.testing.assert_close(pseudo_huber_loss(pred, target, mask=frame_mask, reduction="per_item"), expected)
    with pytest.raises(ValueError, match="does not match"):
        pseudo_huber_loss(pred, target, mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="same shape"):
        pseudo_huber_loss(pred, target[:, :2])


def test_consistency_training_loss_weights_each_item():
    student = torch.randn(3, 4, 6, requires_grad=True)
    teacher = torch.randn(3, 4, 6)
    frame_mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [True] * 1 + [False] * 5])
    sigma = torch.tensor([0.5, 1.0, 10.0])
    sigma_next = torch.tensor([0.6, 1.5, 20.0])
    weights = 1.0 / (sigma_next - sigma)
    loss = consistency_training_loss(student, teacher, weights, frame_mask, c=0.03)

    distance = torch.sqrt((student - teacher).pow(2) + 0.03**2) - 0.03
    per_item = torch.stack([distance[b, :, : int(frame_mask[b].sum())].mean() for b in range(3)])
    torch.testing.assert_close(loss, (weights * per_item).mean())
    loss.backward()
    assert torch.all(student.grad[1, :, 4:] == 0) and student.grad[1, :, :4].abs().sum() > 0

    with pytest.raises(ValueError, match="detached"):
        consistency_training_loss(student, student * 2, weights)
    with pytest.raises(ValueError, match="weights"):
        consistency_training_loss(student, teacher, weights[:2])


def test_least_squares_gan_losses():
    real = torch.tensor([[1.0, 0.5], [0.0, 2.0]])
    fake = torch.tensor([[0.0, 0.5], [1.0, -1.0]])
    # real: (1 - D)^2 = 0, 0.25, 1, 1 -> 0.5625; fake: D^2 = 0, 0.25, 1, 1 -> 0.5625
    torch.testing.assert_close(discriminator_loss(real, fake), torch.tensor(1.125))
    # generator: (1 - D(fake))^2 = 1, 0.25, 0, 4 -> 1.3125
    torch.testing.assert_close(generator_adversarial_loss(fake), torch.tensor(1.3125))

    mask = torch.tensor([[True, True], [True, False]])
    torch.testing.assert_close(discriminator_loss(real, fake, mask), torch.tensor(1.25 / 3 + 1.25 / 3))
    torch.testing.assert_close(generator_adversarial_loss(fake, mask), torch.tensor(1.25 / 3))
    with pytest.raises(ValueError, match="no valid entry"):
        generator_adversarial_loss(fake, torch.zeros(2, 2, dtype=torch.bool))


def test_adaptive_adversarial_weight_is_the_gradient_norm_ratio():
    weight = torch.tensor([[1.0, -2.0], [0.5, 3.0]], requires_grad=True)
    direction = torch.tensor([[0.1, 0.2], [-0.3, 0.4]])
    ct_loss = weight.pow(2).sum()  # gradient 2 * weight
    adv_loss = (weight * direction).sum()  # gradient `direction`
    expected = 0.5 * torch.linalg.vector_norm(2 * weight.detach()) / (torch.linalg.vector_norm(direction) + 1e-4)

    lam = adaptive_adversarial_weight(ct_loss, adv_loss, weight, scale=0.5)
    torch.testing.assert_close(lam, expected)
    assert not lam.requires_grad
    # The graphs are kept so the caller can backpropagate the weighted sum afterwards.
    (ct_loss + lam * adv_loss).backward()
    torch.testing.assert_close(weight.grad, 2 * weight.detach() + lam * direction)

    other = torch.tensor([[1.0, -2.0], [0.5, 3.0]], requires_grad=True)
    clamped = adaptive_adversarial_weight(
        other.pow(2).sum(), (other * direction).sum(), other, scale=2.0, max_weight=3.0
    )
    torch.testing.assert_close(clamped, torch.tensor(6.0))
    with pytest.raises(ValueError, match="does not depend"):
        unrelated = torch.ones(2, requires_grad=True)
        adaptive_adversarial_weight(other.sum(), unrelated.sum(), other)


def test_duration_and_pitch_losses():
    durations = torch.tensor([[1, 3, 0], [2, 0, 0]])
    mask = durations > 0
    assert duration_loss(torch.log1p(durations.float()), durations, mask).item() == pytest.approx(0.0, abs=1e-7)
    # zeros against log(2), log(4), log(3) on the valid phonemes
    expected = (math.log(2) ** 2 + math.log(4) ** 2 + math.log(3) ** 2) / 3
    assert duration_loss(torch.zeros(2, 3), durations, mask).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="non-negative"):
        duration_loss(torch.zeros(1, 2), torch.tensor([[1, -1]]))

    pred = torch.tensor([[1.0, 2.0, 5.0], [0.0, 0.0, 9.0]])
    target = torch.tensor([[1.5, 1.0, 0.0], [2.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, True, False]])
    assert pitch_loss(pred, target, mask).item() == pytest.approx((0.5 + 1.0 + 2.0 + 0.0) / 4)
    assert pitch_loss(pred, target, mask, loss_type="l2").item() == pytest.approx((0.25 + 1.0 + 4.0) / 4)


def test_forward_sum_loss_matches_hand_computed_ctc():
    # One phoneme and two frames: every frame has p(phoneme) = 1 before the blank (log-score -1) is added, so
    # p1 = 1 / (1 + e^-1) and pb = 1 - p1. The valid CTC paths are (1, 1), (1, b) and (b, 1).
    p1 = 1 / (1 + math.exp(-1))
    pb = 1 - p1
    loss = forward_sum_loss(torch.zeros(1, 2, 1), torch.tensor([1]), torch.tensor([2]))
    assert loss.item() == pytest.approx(-math.log(p1 * p1 + p1 * pb + pb * p1), rel=1e-5)

    # Two phonemes and two frames: the only path is (1, 2); the loss is divided by the 2 target labels.
    log_soft = torch.tensor([[[math.log(0.7), math.log(0.3)], [math.log(0.4), math.log(0.6)]]])
    z = [1 + math.exp(-1)] * 2  # each row: probabilities sum to 1, plus the blank's e^-1
    expected = -(math.log(0.7 / z[0]) + math.log(0.6 / z[1])) / 2
    assert forward_sum_loss(log_soft, torch.tensor([2]), torch.tensor([2])).item() == pytest.approx(expected, rel=1e-5)


def test_forward_sum_loss_prefers_monotonic_alignments_and_handles_padding():
    diagonal = torch.full((1, 6, 3), math.log(0.05))
    for f in range(6):
        diagonal[0, f, f // 2] = math.log(0.9)
    reversed_alignment = diagonal.flip(-1)
    lengths = (torch.tensor([3]), torch.tensor([6]))
    assert forward_sum_loss(diagonal, *lengths) < forward_sum_loss(reversed_alignment, *lengths) - 1.0

    # A padded batch (padding at -inf) gives the mean of the items' losses.
    generator = torch.Generator().manual_seed(0)
    item_a = torch.randn(1, 6, 3, generator=generator).log_softmax(-1)
    item_b = torch.randn(1, 4, 2, generator=generator).log_softmax(-1)
    batch = torch.full((2, 6, 3), float("-inf"))
    batch[0], batch[1, :4, :2] = item_a[0], item_b[0]
    batch_loss = forward_sum_loss(batch, torch.tensor([3, 2]), torch.tensor([6, 4]))
    alone = (
        forward_sum_loss(item_a, torch.tensor([3]), torch.tensor([6]))
        + forward_sum_loss(item_b, torch.tensor([2]), torch.tensor([4]))
    ) / 2
    torch.testing.assert_close(batch_loss, alone)

    batch.requires_grad_(True)
    forward_sum_loss(batch, torch.tensor([3, 2]), torch.tensor([6, 4])).backward()
    assert torch.isfinite(batch.grad).all() and torch.all(batch.grad[1, 4:] == 0)
    with pytest.raises(ValueError, match="text_lengths"):
        forward_sum_loss(batch, torch.tensor([4, 2]), torch.tensor([6, 4]))


def test_binarization_loss():
    soft = torch.tensor([[[0.5, 0.5], [0.25, 0.75], [0.1, 0.9]]]).log()
    hard = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    expected = -(math.log(0.5) + math.log(0.25) + math.log(0.9)) / 3
    assert binarization_loss(hard, soft).item() == pytest.approx(expected, rel=1e-6)
    mask = torch.tensor([[True, True, False]])
    assert binarization_loss(hard, soft, mask).item() == pytest.approx(-(math.log(0.5) + math.log(0.25)) / 2, rel=1e-6)
    # -inf on cells outside the hard path does not produce NaN.
    soft_with_padding = soft.clone()
    soft_with_padding[0, 2, 0] = float("-inf")
    assert torch.isfinite(binarization_loss(hard, soft_with_padding))


def test_denoising_loss_is_the_weighted_x0_error_and_zero_at_the_target():
    from flashspeech_hf.losses import denoising_loss

    clean = torch.randn(2, 4, 10)
    sigma = torch.tensor([0.5, 80.0])
    assert float(denoising_loss(clean.clone(), clean, sigma)) == 0.0
    denoised = clean + 0.1
    c_out = (sigma - 0.002) * 0.5 / torch.sqrt(0.25 + sigma**2)
    expected = (0.01 / c_out**2).mean()
    torch.testing.assert_close(denoising_loss(denoised, clean, sigma), expected)
    # padding is ignored: garbage on masked frames changes nothing
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[0, 7:] = False
    noisy = denoised.clone()
    noisy[0, :, 7:] = 100.0
    torch.testing.assert_close(denoising_loss(noisy, clean, sigma, mask=mask), expected)
    with pytest.raises(ValueError, match="exceed sigma_min"):
        denoising_loss(denoised, clean, torch.tensor([0.002, 1.0]))


def test_denoising_sigmas_cover_the_lognormal_and_sigma_max():
    from flashspeech_hf.training_utils import idle_cpu_count, sample_denoising_sigmas

    sigmas = sample_denoising_sigmas(20000, torch.Generator().manual_seed(0))
    assert float(sigmas.min()) >= 0.004 and float(sigmas.max()) == 80.0
    assert abs(float((sigmas == 80.0).float().mean()) - 0.2) < 0.02
    inner = sigmas[sigmas < 80.0]
    assert abs(float(inner.log().median()) + 1.2) < 0.1  # the lognormal's median exp(p_mean)
    again = sample_denoising_sigmas(20000, torch.Generator().manual_seed(0))
    assert torch.equal(sigmas, again)
    assert 1 <= idle_cpu_count() <= (os.cpu_count() or 1)
