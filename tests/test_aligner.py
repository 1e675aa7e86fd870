"""Tests of the learned aligner, monotonic alignment search and the beta-binomial prior."""

import itertools
import math

import pytest
import torch
from scipy.stats import betabinom

from flashspeech_hf.losses import forward_sum_loss
from flashspeech_hf.models.modeling_aligner import (
    FlashSpeechAligner,
    beta_binomial_log_prior,
    monotonic_alignment_search,
)


def lengths_to_mask(lengths, max_length=None):
    lengths = torch.as_tensor(lengths)
    max_length = int(lengths.max()) if max_length is None else max_length
    return torch.arange(max_length)[None] < lengths[:, None]


def brute_force_best_path(log_probs):
    """Best monotonic path of a [F, L] matrix by enumerating every split of the frames into L non-empty runs."""
    num_frames, num_phonemes = log_probs.shape
    best_score, best_durations = -math.inf, None
    for cuts in itertools.combinations(range(1, num_frames), num_phonemes - 1):
        bounds = (0, *cuts, num_frames)
        durations = [bounds[i + 1] - bounds[i] for i in range(num_phonemes)]
        phonemes = torch.repeat_interleave(torch.arange(num_phonemes), torch.tensor(durations))
        score = log_probs[torch.arange(num_frames), phonemes].sum().item()
        if score > best_score:
            best_score, best_durations = score, durations
    return best_durations


def assert_valid_hard_alignment(hard, text_lengths, frame_lengths):
    for b, (num_phonemes, num_frames) in enumerate(zip(text_lengths.tolist(), frame_lengths.tolist())):
        item = hard[b]
        assert torch.all(item[num_frames:] == 0) and torch.all(item[:, num_phonemes:] == 0)
        valid = item[:num_frames, :num_phonemes]
        assert torch.all(valid.sum(1) == 1), "every valid frame belongs to exactly one phoneme"
        path = valid.argmax(1)
        assert path[0] == 0 and path[-1] == num_phonemes - 1
        steps = path[1:] - path[:-1]
        assert torch.all((steps == 0) | (steps == 1)), "the path is monotonic and skips no phoneme"


def test_mas_hand_made_matrix():
    # Frame-wise argmax would be 0, 2, 1, 1, 2 (not monotonic); the best monotonic path is 0, 1, 1, 1, 2.
    probs = torch.tensor(
        [
            [0.8, 0.1, 0.1],
            [0.2, 0.3, 0.5],
            [0.1, 0.8, 0.1],
            [0.1, 0.7, 0.2],
            [0.1, 0.1, 0.8],
        ]
    )
    hard = monotonic_alignment_search(probs.log()[None])
    expected = torch.zeros(5, 3)
    expected[torch.arange(5), torch.tensor([0, 1, 1, 1, 2])] = 1
    assert torch.equal(hard[0], expected)
    assert hard.sum(1)[0].tolist() == [1, 3, 1]


def test_mas_matches_brute_force():
    generator = torch.Generator().manual_seed(0)
    for num_frames, num_phonemes in [(6, 3), (7, 4), (8, 5), (5, 5), (9, 2)]:
        log_probs = torch.randn(num_frames, num_phonemes, generator=generator).log_softmax(-1)
        hard = monotonic_alignment_search(log_probs[None])[0]
        assert hard.sum(0).long().tolist() == brute_force_best_path(log_probs)


def test_mas_padded_batch_equals_items_alone():
    generator = torch.Generator().manual_seed(1)
    text_lengths, frame_lengths = torch.tensor([6, 3, 4, 1]), torch.tensor([20, 9, 4, 5])
    log_probs = torch.randn(4, 20, 6, generator=generator).log_softmax(-1)
    text_mask, frame_mask = lengths_to_mask(text_lengths), lengths_to_mask(frame_lengths)
    hard = monotonic_alignment_search(log_probs, text_mask, frame_mask)

    assert_valid_hard_alignment(hard, text_lengths, frame_lengths)
    durations = hard.sum(1)
    assert torch.equal(durations.sum(1).long(), frame_lengths)
    assert torch.all(durations[text_mask] >= 1)
    for b in range(4):
        alone = monotonic_alignment_search(log_probs[b : b + 1, : frame_lengths[b], : text_lengths[b]])
        assert torch.equal(hard[b, : frame_lengths[b], : text_lengths[b]], alone[0])


def test_mas_stays_valid_on_impossible_scores():
    # Every score -inf: no path is better than another, the result must still be a valid monotonic path.
    log_probs = torch.full((2, 7, 4), float("-inf"))
    hard = monotonic_alignment_search(log_probs, frame_mask=lengths_to_mask([7, 5]))
    assert_valid_hard_alignment(hard, torch.tensor([4, 4]), torch.tensor([7, 5]))
    # Fewer frames than phonemes: durations still sum to the number of frames.
    hard = monotonic_alignment_search(torch.randn(1, 3, 5).log_softmax(-1))
    assert hard.sum().item() == 3 and torch.all(hard.sum(2) == 1)


def test_mas_rejects_bad_input():
    with pytest.raises(ValueError, match="num_frames"):
        monotonic_alignment_search(torch.randn(5, 3))
    with pytest.raises(ValueError, match="right-padded"):
        monotonic_alignment_search(torch.randn(1, 5, 3), text_mask=torch.tensor([[True, False, True]]))
    with pytest.raises(ValueError, match="NaN"):
        monotonic_alignment_search(torch.full((1, 4, 2), float("nan")))


def test_beta_binomial_prior_matches_scipy():
    scaling = 0.7
    log_prior = beta_binomial_log_prior(torch.tensor([5, 3]), torch.tensor([7, 4]), scaling=scaling)
    assert log_prior.shape == (2, 7, 5)
    for b, (num_phonemes, num_frames) in enumerate([(5, 7), (3, 4)]):
        for t in range(1, num_frames + 1):
            dist = betabinom(num_phonemes - 1, scaling * t, scaling * (num_frames + 1 - t))
            expected = torch.tensor([dist.logpmf(k) for k in range(num_phonemes)], dtype=torch.float32)
            torch.testing.assert_close(log_prior[b, t - 1, :num_phonemes], expected, atol=1e-4, rtol=1e-4)
    assert torch.all(log_prior[1, 4:] == 0) and torch.all(log_prior[1, :, 3:] == 0)


def tiny_aligner(**kwargs):
    config = dict(
        vocab_size=12, latent_dim=8, hidden_size=32, attention_dim=16, num_text_layers=1, num_latent_layers=2
    )
    config.update(kwargs)
    return FlashSpeechAligner(**config)


def test_aligner_soft_alignment_is_a_masked_distribution():
    torch.manual_seed(0)
    aligner = tiny_aligner().eval()
    text_lengths, frame_lengths = torch.tensor([5, 3]), torch.tensor([12, 7])
    attention_mask, latent_mask = lengths_to_mask(text_lengths), lengths_to_mask(frame_lengths)
    input_ids = torch.randint(1, 12, (2, 5)) * attention_mask
    latents = torch.randn(2, 8, 12) * latent_mask[:, None]
    out = aligner(input_ids, attention_mask, latents, latent_mask, return_hard_alignment=True)

    assert out.log_soft_alignment.shape == (2, 12, 5)
    valid_rows = out.log_soft_alignment[latent_mask]
    torch.testing.assert_close(valid_rows.logsumexp(-1), torch.zeros(len(valid_rows)), atol=1e-5, rtol=0)
    assert torch.all(torch.isneginf(out.log_soft_alignment[1, :, 3:]))
    assert torch.all(torch.isneginf(out.log_soft_alignment[1, 7:]))
    assert_valid_hard_alignment(out.hard_alignment, text_lengths, frame_lengths)

    # The prior changes the alignment; without it the soft alignment is a plain softmax of the distances.
    without_prior = aligner(input_ids, attention_mask, latents, latent_mask, use_prior=False).log_soft_alignment
    assert not torch.allclose(without_prior[latent_mask], valid_rows)

    # Padded batch equals each item alone, for the soft alignment and the durations.
    durations = aligner.durations(input_ids, attention_mask, latents, latent_mask)
    assert durations.dtype == torch.long
    assert torch.equal(durations.sum(1), frame_lengths)
    for b in range(2):
        ids_b, lat_b = input_ids[b : b + 1, : text_lengths[b]], latents[b : b + 1, :, : frame_lengths[b]]
        alone = aligner(ids_b, None, lat_b).log_soft_alignment[0]
        torch.testing.assert_close(out.log_soft_alignment[b, : frame_lengths[b], : text_lengths[b]], alone)
        assert torch.equal(durations[b, : text_lengths[b]], aligner.durations(ids_b, None, lat_b)[0])


def synthetic_batch(table, generator, batch_size=8):
    """Latents built by repeating one random vector per phoneme id for a known number of frames, plus noise."""
    vocab_size, latent_dim = table.shape
    text_lengths = torch.randint(4, 9, (batch_size,), generator=generator)
    attention_mask = lengths_to_mask(text_lengths)
    steps = torch.randint(1, vocab_size - 1, attention_mask.shape, generator=generator)
    input_ids = (1 + torch.cumsum(steps, 1) % (vocab_size - 1)) * attention_mask  # no phoneme twice in a row
    durations = torch.randint(1, 7, attention_mask.shape, generator=generator) * attention_mask
    frame_lengths = durations.sum(1)
    latent_mask = lengths_to_mask(frame_lengths)
    latents = torch.zeros(batch_size, latent_dim, int(frame_lengths.max()))
    for b in range(batch_size):
        n = text_lengths[b]
        latents[b, :, : frame_lengths[b]] = table[input_ids[b, :n]].repeat_interleave(durations[b, :n], 0).T
    latents = (latents + 0.1 * torch.randn(latents.shape, generator=generator)) * latent_mask[:, None]
    return input_ids, attention_mask, latents, latent_mask, durations


def test_aligner_learns_durations_with_forward_sum_loss():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    table = torch.randn(12, 8, generator=generator)
    aligner = tiny_aligner()  # default temperature, kernel size and prior
    optimizer = torch.optim.Adam(aligner.parameters(), lr=1e-2)

    held_out = synthetic_batch(table, torch.Generator().manual_seed(123))
    input_ids, attention_mask, latents, latent_mask, true_durations = held_out
    errors_before = (aligner.durations(*held_out[:4]) - true_durations).abs().sum() / attention_mask.sum()

    for _ in range(250):
        input_ids, attention_mask, latents, latent_mask, _ = synthetic_batch(table, generator)
        out = aligner(input_ids, attention_mask, latents, latent_mask)
        loss = forward_sum_loss(out.log_soft_alignment, attention_mask.sum(1), latent_mask.sum(1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    input_ids, attention_mask, latents, latent_mask, true_durations = held_out
    durations = aligner.durations(input_ids, attention_mask, latents, latent_mask)
    errors_after = (durations - true_durations).abs().sum() / attention_mask.sum()
    exact = ((durations == true_durations) & attention_mask).sum() / attention_mask.sum()
    assert errors_before > 0.5
    assert errors_after < 0.2, f"mean absolute duration error {errors_after:.2f} frames"
    assert exact > 0.85


def test_aligner_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    aligner = tiny_aligner(prior_scaling=0.5).eval()
    input_ids, latents = torch.randint(1, 12, (1, 4)), torch.randn(1, 8, 10)
    aligner.save_pretrained(tmp_path)
    reloaded = FlashSpeechAligner.from_pretrained(tmp_path)
    assert reloaded.config.prior_scaling == 0.5
    torch.testing.assert_close(
        reloaded(input_ids, None, latents).log_soft_alignment, aligner(input_ids, None, latents).log_soft_alignment
    )


def test_aligner_rejects_bad_input():
    aligner = tiny_aligner()
    with pytest.raises(ValueError, match="latents"):
        aligner(torch.randint(1, 12, (1, 4)), None, torch.randn(1, 5, 10))
    with pytest.raises(ValueError, match="vocab_size"):
        aligner(torch.tensor([[1, 12]]), None, torch.randn(1, 8, 10))
    with pytest.raises(ValueError, match="right-padded"):
        aligner(torch.tensor([[1, 2, 3]]), torch.tensor([[True, False, True]]), torch.randn(1, 8, 10))
    with pytest.raises(ValueError, match="batch sizes"):
        aligner(torch.randint(1, 12, (2, 4)), None, torch.randn(1, 8, 10))
    with pytest.raises(ValueError, match="odd"):
        tiny_aligner(kernel_size=4)


def test_silent_tokens_get_no_frames_and_the_rest_keep_theirs():
    torch.manual_seed(0)
    silent = [2, 9]
    aligner = FlashSpeechAligner(vocab_size=32, latent_dim=8, hidden_size=16, attention_dim=8, silent_token_ids=silent)
    input_ids = torch.tensor([[5, 2, 9, 6, 7, 2, 8], [9, 5, 6, 2, 7, 0, 0]])
    mask = input_ids != 0
    latents, latent_mask = torch.randn(2, 8, 30), torch.tensor([[True] * 30, [True] * 24 + [False] * 6])
    durations = aligner.durations(input_ids, mask, latents, latent_mask)
    is_silent = torch.isin(input_ids, torch.tensor(silent))
    assert (durations[is_silent] == 0).all() and (durations[mask & ~is_silent] >= 1).all()
    assert durations.sum(1).tolist() == [30, 24] and (durations[~mask] == 0).all()
    # the sounding tokens get what an aligner sees of them alone
    ids, kept_mask, positions = aligner.remove_silent_tokens(input_ids, mask)
    assert ids.tolist() == [[5, 6, 7, 8], [5, 6, 7, 0]] and positions[0].tolist() == [0, 3, 4, 6]
    plain = FlashSpeechAligner.from_config({**aligner.config, "silent_token_ids": None})
    plain.load_state_dict(aligner.state_dict())
    alone = plain.durations(ids, kept_mask, latents, latent_mask)
    assert torch.equal(durations.gather(1, positions) * kept_mask, alone)
    with pytest.raises(ValueError, match="only silent tokens"):
        aligner.durations(torch.tensor([[2, 9]]), None, latents[:1], None)
