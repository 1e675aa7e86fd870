# Copyright 2026 The flashspeech-hf Authors. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Training losses of FlashSpeech as pure functions.

Consistency training (improved CT of [Song & Dhariwal 2023](https://huggingface.co/papers/2310.14189): pseudo-Huber
metric and `1 / (sigma_{i+1} - sigma_i)` weighting), the least-squares adversarial losses and the VQGAN-style adaptive
weight of the adversarial consistency training, the prosody regression losses, and the alignment losses of
[RAD-TTS](https://huggingface.co/papers/2108.10447) (forward-sum and binarization) used to learn phoneme durations.

Conventions: masks are boolean with `True` marking valid entries; a mask of shape `(batch_size, num_frames)` is
broadcast over the channel axis of `(batch_size, channels, num_frames)` tensors. Every reduced loss is a mean over
the valid entries only, so padding never dilutes it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .schedulers.scheduling_flashspeech import consistency_scalings

__all__ = [
    "adaptive_adversarial_weight",
    "binarization_loss",
    "consistency_training_loss",
    "denoising_loss",
    "discriminator_loss",
    "duration_loss",
    "forward_sum_loss",
    "generator_adversarial_loss",
    "pitch_loss",
    "pseudo_huber_loss",
]


def _expand_mask(mask: torch.Tensor | None, like: torch.Tensor, name: str = "mask") -> torch.Tensor | None:
    """Checks `mask` against `like` and returns it as a boolean tensor broadcastable to `like`."""
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        if mask.dtype.is_floating_point or not torch.all((mask == 0) | (mask == 1)):
            raise ValueError(f"`{name}` must be boolean (True = valid) or hold only 0 and 1, got dtype {mask.dtype}.")
        mask = mask.bool()
    if mask.shape == like.shape:
        return mask
    if like.ndim == 3 and mask.shape == (like.shape[0], like.shape[2]):
        return mask.unsqueeze(1)
    raise ValueError(
        f"`{name}` of shape {tuple(mask.shape)} does not match the input of shape {tuple(like.shape)}: expected "
        f"{tuple(like.shape)}" + (f" or {(like.shape[0], like.shape[2])}." if like.ndim == 3 else ".")
    )


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"`{name_a}` and `{name_b}` must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}."
        )


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of `values` over the entries where the (broadcastable) `mask` is True."""
    if mask is None:
        return values.mean()
    mask = mask.expand_as(values)
    count = mask.sum()
    if count == 0:
        raise ValueError("The mask selects no valid entry: every item of the batch is padding.")
    return torch.where(mask, values, torch.zeros_like(values)).sum() / count


def _masked_mean_per_item(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of `values (B, ...)` over each item's valid entries (the broadcastable `mask`): shape `(B,)`."""
    if mask is None:
        return values.flatten(1).mean(dim=1)
    mask = mask.expand_as(values)
    count = mask.flatten(1).sum(dim=1)
    if torch.any(count == 0):
        raise ValueError("`mask` has an item with no valid entry.")
    return torch.where(mask, values, torch.zeros_like(values)).flatten(1).sum(dim=1) / count


def pseudo_huber_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    c: float = 0.03,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""
    Pseudo-Huber distance `sqrt((pred - target)^2 + c^2) - c`, applied element-wise.

    It behaves like `(pred - target)^2 / (2c)` for errors much smaller than `c` and like `|pred - target|` for larger
    ones, which makes consistency training less sensitive to outliers than the squared error.

    About `c` and the dimension: improved CT defines the metric on whole samples, `sqrt(||x - y||_2^2 + c^2) - c`, with
    `c = 0.00054 * sqrt(d)` growing with the data dimension `d` so that the L2-to-L1 transition sits at the same
    per-element error whatever the size of the sample. Speech latents have a variable number of frames, and a norm over
    the whole utterance would make both the loss scale and the transition point depend on the utterance length. This
    function therefore applies the metric to every latent entry on its own (`d = 1`), as the released FlashSpeech code
    does with `c = 0.03`, so `c` does **not** scale with the number of channels or frames: it is directly the
    per-element error at which the loss turns from quadratic to linear. (With the sample-level metric of improved CT,
    the equivalent per-element constant would be `0.00054`.)

    Args:
        pred (`torch.Tensor` of any shape, e.g. `(batch_size, channels, num_frames)`):
            Prediction (the student's denoised latents).
        target (`torch.Tensor` of the same shape as `pred`):
            Target (the detached teacher's denoised latents).
        c (`float`, defaults to 0.03):
            Positive constant of the metric (per element, see above).
        mask (`torch.BoolTensor` of the shape of `pred` or `(batch_size, num_frames)`, *optional*):
            True for valid entries; a frame mask is broadcast over the channels.
        reduction (`str`, defaults to `"mean"`):
            `"none"`: element-wise values of the shape of `pred` (zero where masked); `"per_item"`: mean over the
            valid entries of each item, shape `(batch_size,)`; `"mean"`: mean over all valid entries of the batch.

    Returns:
        `torch.Tensor`: the loss, reduced as asked.
    """
    _check_same_shape(pred, target, "pred", "target")
    if c <= 0:
        raise ValueError(f"`c` must be positive, got {c}.")
    mask = _expand_mask(mask, pred)
    loss = torch.sqrt((pred - target).pow(2) + c * c) - c
    if reduction == "mean":
        return _masked_mean(loss, mask)
    if reduction == "none":
        return loss if mask is None else torch.where(mask, loss, torch.zeros_like(loss))
    if reduction == "per_item":
        return _masked_mean_per_item(loss, mask)
    raise ValueError(f"`reduction` must be 'mean', 'per_item' or 'none', got {reduction!r}.")


def consistency_training_loss(
    denoised_student: torch.Tensor,
    denoised_teacher: torch.Tensor,
    weights: torch.Tensor,
    mask: torch.Tensor | None = None,
    c: float = 0.03,
) -> torch.Tensor:
    r"""
    Consistency training loss `mean_b lambda_b * d(f_theta(x + sigma_{i+1} z), stopgrad f_theta(x + sigma_i z))`.

    `d` is [`pseudo_huber_loss`] averaged over each item's valid entries, so every utterance counts the same whatever
    its length; the per-item values are weighted by `lambda_b = 1 / (sigma_{i+1} - sigma_i)` and averaged over the
    batch.

    Args:
        denoised_student (`torch.Tensor` of shape `(batch_size, channels, num_frames)`):
            The model's estimate at the larger noise level `sigma_{i+1}` (gradients flow through it).
        denoised_teacher (`torch.Tensor` of shape `(batch_size, channels, num_frames)`):
            The estimate at `sigma_i`, already detached by the caller (stop-gradient, no EMA).
        weights (`torch.Tensor` of shape `(batch_size,)`):
            Per-item weights `1 / (sigma_{i+1} - sigma_i)`.
        mask (`torch.BoolTensor` of shape `(batch_size, num_frames)` or of the latents' shape, *optional*):
            True for valid frames.
        c (`float`, defaults to 0.03): Pseudo-Huber constant, per element (see [`pseudo_huber_loss`]).

    Returns:
        `torch.Tensor`: scalar loss.

    Examples:

    ```py
    >>> import torch
    >>> from flashspeech_hf.losses import consistency_training_loss

    >>> student, teacher = torch.randn(2, 8, 50, requires_grad=True), torch.randn(2, 8, 50)
    >>> sigma_next, sigma = torch.tensor([0.9, 2.0]), torch.tensor([0.7, 1.5])
    >>> loss = consistency_training_loss(student, teacher.detach(), 1.0 / (sigma_next - sigma))
    >>> loss.backward()
    ```
    """
    if weights.ndim != 1 or weights.shape[0] != denoised_student.shape[0]:
        raise ValueError(
            f"`weights` must have shape ({denoised_student.shape[0]},) (one per item), got {tuple(weights.shape)}."
        )
    if denoised_teacher.requires_grad:
        raise ValueError("`denoised_teacher` must be detached (stop-gradient): call `.detach()` on it first.")
    per_item = pseudo_huber_loss(denoised_student, denoised_teacher, c=c, mask=mask, reduction="per_item")
    return (weights.to(per_item.dtype) * per_item).mean()


def denoising_loss(
    denoised: torch.Tensor,
    clean: torch.Tensor,
    sigma: torch.Tensor,
    sigma_data: float = 0.5,
    sigma_min: float = 0.002,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""
    Denoising (EDM x0-regression) loss of the consistency function: `mean_b ||f_theta(x + sigma z, sigma) - x||^2 /
    c_out(sigma)^2`.

    It is the consistency training loss with the teacher at the boundary level (`f(x, sigma_min) = x`): the
    diffusion-pretraining end of Easy Consistency Tuning (Geng et al. 2024). Weighting by `1 / c_out^2` gives every
    noise level the same scale of error in the network's own output. The squared error is averaged over each item's
    valid entries, then over the batch.

    Args:
        denoised (`torch.Tensor` of shape `(batch_size, channels, num_frames)`):
            `f_theta(x + sigma z, sigma)`, the model's estimate of the clean latents.
        clean (`torch.Tensor` of shape `(batch_size, channels, num_frames)`): The clean latents `x`.
        sigma (`torch.Tensor` of shape `(batch_size,)`): Noise level of each item, all `> sigma_min`.
        sigma_data (`float`, defaults to 0.5), sigma_min (`float`, defaults to 0.002): The model's parametrization.
        mask (`torch.BoolTensor` of shape `(batch_size, num_frames)` or of the latents' shape, *optional*):
            True for valid frames.

    Returns:
        `torch.Tensor`: scalar loss.

    Examples:

    ```py
    >>> import torch
    >>> from flashspeech_hf.losses import denoising_loss

    >>> clean, denoised = torch.randn(2, 8, 50), torch.randn(2, 8, 50, requires_grad=True)
    >>> loss = denoising_loss(denoised, clean, torch.tensor([0.5, 80.0]))
    >>> loss.backward()
    ```
    """
    _check_same_shape(denoised, clean, "denoised", "clean")
    if sigma.ndim != 1 or sigma.shape[0] != denoised.shape[0]:
        raise ValueError(f"`sigma` must have shape ({denoised.shape[0]},) (one per item), got {tuple(sigma.shape)}.")
    if torch.any(sigma <= sigma_min):
        raise ValueError(f"Every `sigma` must exceed sigma_min={sigma_min} (where the loss weight is infinite).")
    _, c_out, _ = consistency_scalings(sigma.to(denoised.dtype), sigma_data, sigma_min)
    squared = (denoised - clean.to(denoised.dtype)).pow(2)
    per_item = _masked_mean_per_item(squared, _expand_mask(mask, denoised))
    return (per_item / c_out.pow(2)).mean()


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    r"""
    Least-squares GAN loss of the discriminator: `mean (1 - D(real))^2 + mean D(fake)^2`.

    Args:
        real_logits (`torch.Tensor` of shape `(batch_size, num_frames)`): Scores of the ground-truth audio.
        fake_logits (`torch.Tensor` of shape `(batch_size, num_frames)`): Scores of the generated audio (detached
            from the generator by the caller when only the discriminator is updated).
        mask (`torch.BoolTensor` of shape `(batch_size, num_frames)`, *optional*): True for valid frames, shared by
            both inputs (real and fake audio are cropped to the same length).

    Returns:
        `torch.Tensor`: scalar loss.
    """
    _check_same_shape(real_logits, fake_logits, "real_logits", "fake_logits")
    mask = _expand_mask(mask, real_logits)
    return _masked_mean((1.0 - real_logits).pow(2), mask) + _masked_mean(fake_logits.pow(2), mask)


def generator_adversarial_loss(fake_logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""
    Least-squares GAN loss of the generator: `mean (1 - D(fake))^2`.

    Args:
        fake_logits (`torch.Tensor` of shape `(batch_size, num_frames)`): Discriminator scores of generated audio.
        mask (`torch.BoolTensor` of shape `(batch_size, num_frames)`, *optional*): True for valid frames.

    Returns:
        `torch.Tensor`: scalar loss.
    """
    mask = _expand_mask(mask, fake_logits)
    return _masked_mean((1.0 - fake_logits).pow(2), mask)


def adaptive_adversarial_weight(
    ct_loss: torch.Tensor,
    adv_loss: torch.Tensor,
    last_layer_weight: torch.Tensor,
    scale: float = 0.5,
    max_weight: float = 1e4,
    eps: float = 1e-4,
) -> torch.Tensor:
    r"""
    Adaptive weight of the adversarial loss, `scale * ||grad L_ct|| / (||grad L_adv|| + eps)` (VQGAN style).

    Both gradients are taken with respect to `last_layer_weight` (the denoiser's output layer), so that the
    adversarial term gets a gradient of the same size as the consistency term at that layer. The graphs of both losses
    are kept (`retain_graph=True`) so the caller can then backpropagate `ct_loss + weight * adv_loss`.

    Args:
        ct_loss (`torch.Tensor`): Scalar consistency loss.
        adv_loss (`torch.Tensor`): Scalar adversarial (generator) loss.
        last_layer_weight (`torch.Tensor`): A parameter that both losses depend on, typically the weight of the
            denoiser's last layer.
        scale (`float`, defaults to 0.5): Factor applied to the ratio (0.5 in the released FlashSpeech code).
        max_weight (`float`, defaults to 1e4): The ratio is clamped to `[0, max_weight]` before scaling.
        eps (`float`, defaults to 1e-4): Added to the adversarial gradient norm.

    Returns:
        `torch.Tensor`: detached scalar weight.

    Examples:

    ```py
    >>> import torch
    >>> from flashspeech_hf.losses import adaptive_adversarial_weight

    >>> layer = torch.nn.Linear(4, 4)
    >>> out = layer(torch.randn(3, 4))
    >>> weight = adaptive_adversarial_weight(out.pow(2).mean(), out.mean(), layer.weight)
    >>> total = out.pow(2).mean() + weight * out.mean()
    ```
    """
    if not last_layer_weight.requires_grad:
        raise ValueError("`last_layer_weight` must require gradients (pass the trainable weight of the last layer).")
    for name, loss in (("ct_loss", ct_loss), ("adv_loss", adv_loss)):
        if loss.numel() != 1:
            raise ValueError(f"`{name}` must be a scalar, got shape {tuple(loss.shape)}.")
        if not loss.requires_grad:
            raise ValueError(f"`{name}` has no gradient graph: it must depend on `last_layer_weight`.")
    grads = []
    for name, loss in (("ct_loss", ct_loss), ("adv_loss", adv_loss)):
        (grad,) = torch.autograd.grad(loss, last_layer_weight, retain_graph=True, allow_unused=True)
        if grad is None:
            raise ValueError(f"`{name}` does not depend on `last_layer_weight`.")
        grads.append(grad)
    weight = torch.linalg.vector_norm(grads[0]) / (torch.linalg.vector_norm(grads[1]) + eps)
    return (weight.clamp(0.0, max_weight) * scale).detach()


def duration_loss(
    log_dur_pred: torch.Tensor, durations: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    r"""
    Squared error of the predicted log-durations against `log(1 + durations)` over valid phonemes.

    Args:
        log_dur_pred (`torch.Tensor` of shape `(batch_size, num_phonemes)`):
            Predicted durations in `log(1 + frames)` space (the prediction `d` maps back to `exp(d) - 1` frames).
        durations (`torch.Tensor` of shape `(batch_size, num_phonemes)`): Target durations in frames.
        mask (`torch.BoolTensor` of shape `(batch_size, num_phonemes)`, *optional*): True for valid phonemes.

    Returns:
        `torch.Tensor`: scalar loss.
    """
    _check_same_shape(log_dur_pred, durations, "log_dur_pred", "durations")
    if torch.any(durations < 0):
        raise ValueError("`durations` must be non-negative numbers of frames.")
    mask = _expand_mask(mask, log_dur_pred)
    target = torch.log1p(durations.to(log_dur_pred.dtype))
    return _masked_mean((log_dur_pred - target).pow(2), mask)


def pitch_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, loss_type: str = "l1"
) -> torch.Tensor:
    r"""
    Regression loss of the pitch predictor over valid frames.

    `pred` and `target` must already be in the predictor's space (e.g. `log(1 + f0)` as in NaturalSpeech 2, or a
    normalized log-F0); unvoiced frames are whatever that space makes of them, or can be excluded through `mask`.

    Args:
        pred (`torch.Tensor` of shape `(batch_size, num_frames)`): Predicted pitch.
        target (`torch.Tensor` of shape `(batch_size, num_frames)`): Target pitch, same space as `pred`.
        mask (`torch.BoolTensor` of shape `(batch_size, num_frames)`, *optional*): True for valid frames.
        loss_type (`str`, defaults to `"l1"`): `"l1"` (absolute error, as in NaturalSpeech 2) or `"l2"`.

    Returns:
        `torch.Tensor`: scalar loss.
    """
    _check_same_shape(pred, target, "pred", "target")
    mask = _expand_mask(mask, pred)
    diff = pred - target.to(pred.dtype)
    if loss_type == "l1":
        return _masked_mean(diff.abs(), mask)
    if loss_type == "l2":
        return _masked_mean(diff.pow(2), mask)
    raise ValueError(f"`loss_type` must be 'l1' or 'l2', got {loss_type!r}.")


def _check_alignment_lengths(
    log_soft_alignment: torch.Tensor, text_lengths: torch.Tensor, frame_lengths: torch.Tensor
) -> None:
    if log_soft_alignment.ndim != 3:
        raise ValueError(
            "`log_soft_alignment` must have shape (batch_size, num_frames, num_phonemes), got "
            f"{tuple(log_soft_alignment.shape)}."
        )
    batch_size, num_frames, num_phonemes = log_soft_alignment.shape
    for name, lengths, limit in (
        ("text_lengths", text_lengths, num_phonemes),
        ("frame_lengths", frame_lengths, num_frames),
    ):
        if lengths.shape != (batch_size,):
            raise ValueError(f"`{name}` must have shape ({batch_size},), got {tuple(lengths.shape)}.")
        if torch.any(lengths < 1) or torch.any(lengths > limit):
            raise ValueError(f"`{name}` must lie in [1, {limit}], got {lengths.tolist()}.")


def forward_sum_loss(
    log_soft_alignment: torch.Tensor,
    text_lengths: torch.Tensor,
    frame_lengths: torch.Tensor,
    blank_logprob: float = -1.0,
) -> torch.Tensor:
    r"""
    Forward-sum alignment loss of RAD-TTS: the negative log-likelihood of all monotonic alignments of the text to the
    frames, computed with the CTC forward algorithm (`torch.nn.functional.ctc_loss`).

    Each phoneme `l` is the CTC label `l + 1` and the target sequence is `1, 2, ..., text_length`, so CTC sums over
    every path that visits the phonemes in order; a blank class with fixed log-score `blank_logprob` is added to
    every frame and the scores are renormalized over `blank + phonemes`. The loss is averaged over the batch after
    dividing each item by its number of phonemes (CTC's `"mean"` reduction); items with fewer frames than phonemes
    (no valid path) contribute zero.

    Args:
        log_soft_alignment (`torch.Tensor` of shape `(batch_size, num_frames, num_phonemes)`):
            Log-probabilities of each frame over the phonemes (e.g. `FlashSpeechAlignerOutput.log_soft_alignment`);
            padded entries may be `-inf`.
        text_lengths (`torch.LongTensor` of shape `(batch_size,)`): Number of valid phonemes of each item.
        frame_lengths (`torch.LongTensor` of shape `(batch_size,)`): Number of valid frames of each item.
        blank_logprob (`float`, defaults to -1.0): Log-score of the blank class before renormalization.

    Returns:
        `torch.Tensor`: scalar loss.
    """
    _check_alignment_lengths(log_soft_alignment, text_lengths, frame_lengths)
    batch_size, _, num_phonemes = log_soft_alignment.shape
    # -inf marks padding; a large finite floor keeps the CTC gradients finite (the floor has zero gradient).
    log_probs = log_soft_alignment.float().clamp_min(-1e4)
    log_probs = F.pad(log_probs, (1, 0), value=blank_logprob).log_softmax(dim=-1)
    targets = torch.arange(1, num_phonemes + 1, device=log_probs.device).expand(batch_size, num_phonemes)
    return F.ctc_loss(
        log_probs.transpose(0, 1),
        targets,
        input_lengths=frame_lengths.long(),
        target_lengths=text_lengths.long(),
        blank=0,
        reduction="mean",
        zero_infinity=True,
    )


def binarization_loss(
    hard_alignment: torch.Tensor, log_soft_alignment: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    r"""
    Binarization loss of RAD-TTS: the mean negative log soft-alignment probability on the cells of the hard (MAS)
    alignment, which pulls the soft alignment towards the hard one.

    Args:
        hard_alignment (`torch.Tensor` of shape `(batch_size, num_frames, num_phonemes)`):
            0/1 alignment from [`~flashspeech_hf.models.modeling_aligner.monotonic_alignment_search`] (no gradient).
        log_soft_alignment (`torch.Tensor` of shape `(batch_size, num_frames, num_phonemes)`):
            Log-probabilities of each frame over the phonemes.
        mask (`torch.BoolTensor` of shape `(batch_size, num_frames)`, *optional*):
            True for valid frames; the hard alignment is already zero on padding, so this is only needed when it is
            not.

    Returns:
        `torch.Tensor`: scalar loss.
    """
    _check_same_shape(hard_alignment, log_soft_alignment, "hard_alignment", "log_soft_alignment")
    selected = hard_alignment.detach() > 0
    if mask is not None:
        mask = _expand_mask(mask, hard_alignment[..., 0], name="mask")
        selected = selected & mask.unsqueeze(-1)
    count = selected.sum()
    if count == 0:
        raise ValueError("`hard_alignment` selects no cell: it must hold at least one 1 on a valid frame.")
    log_probs = log_soft_alignment.clamp_min(math.log(1e-12))
    return -torch.where(selected, log_probs, torch.zeros_like(log_probs)).sum() / count
