"""Small helpers shared by the models."""

from __future__ import annotations

import torch
from torch import nn


def resize_embedding(old: nn.Embedding, new_num_tokens: int) -> nn.Embedding:
    """
    Returns a copy of `old` with `new_num_tokens` rows: existing rows keep their values, new rows are initialised as a
    fresh `nn.Embedding` initialises them; the padding index, device and dtype are kept.

    Args:
        old (`nn.Embedding`): The embedding to resize.
        new_num_tokens (`int`): The new number of rows, larger than the padding index.

    Returns:
        `nn.Embedding` of shape `(new_num_tokens, old.embedding_dim)`.
    """
    if not isinstance(new_num_tokens, int) or new_num_tokens <= (old.padding_idx or 0):
        raise ValueError(
            f"`new_num_tokens` must be an integer larger than the padding id ({old.padding_idx}), got "
            f"{new_num_tokens!r}."
        )
    new = nn.Embedding(new_num_tokens, old.embedding_dim, padding_idx=old.padding_idx)
    new.to(device=old.weight.device, dtype=old.weight.dtype)
    keep = min(new_num_tokens, old.num_embeddings)
    with torch.no_grad():
        new.weight[:keep] = old.weight[:keep]
    return new


CONSISTENCY_CONFIG_KEYS = {
    key: "the consistency parametrization belongs to the scheduler (`FlashSpeechScheduler`), whose config has it"
    for key in ("sigma_data", "sigma_min")
}
"""Keys of denoiser and prosody generator configs saved before the scheduler applied the consistency scalings."""
