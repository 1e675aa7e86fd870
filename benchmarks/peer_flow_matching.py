"""A flow-matching TTS peer of F5-TTS's published size, as a *timing baseline only*.

This is not a model and not a port of F5-TTS: it is a plain, randomly initialised network with the cost profile of
F5-TTS base (Chen et al. 2024, arXiv 2410.06885) so that the benchmark can compare FlashSpeech's few-step sampling
against a many-step flow-matching sampler on the same machine, inputs and run. What matters for timing is kept:

- a DiT of 22 layers, width 1024, 16 heads, feed-forward multiplier 2, adaLN-zero modulation by the flow time,
  rotary position embedding, over 100-bin log-mel frames at 24 kHz with hop 256 (93.75 frames per second);
- the sequence covers the prompt *and* the generated span (F5-TTS infills the masked part of prompt + target);
- character-level text embedding padded to the mel length, refined by a few small ConvNeXt blocks;
- an Euler ODE sampler with classifier-free guidance, both branches in one batched pass of `2 * batch` per step;
- the vocoder cost, approximated by [`MelCodec`] decoding with the published Vocos mel 24 kHz sizes
  (`VOCOS_MEL_24KHZ_CONFIG`).

The outputs are noise-like: nothing here is trained. Do not use it to judge quality.

Examples:

```py
>>> import torch
>>> from benchmarks.peer_flow_matching import FlowMatchingPeer
>>> peer = FlowMatchingPeer.from_size("tiny").eval()
>>> audio = peer.synthesize(["hello world"], prompt_mel=torch.randn(1, 100, 30), num_frames=[40], nfe=2)
>>> audio.shape
torch.Size([1, 10240])
```
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from flashspeech_hf.codecs import VOCOS_MEL_24KHZ_CONFIG, MelCodec

#: F5-TTS base sizes (its `F5TTS_Base` config: dim 1024, depth 22, heads 16, ff_mult 2, text_dim 512, conv_layers 4).
F5_BASE_SIZE: dict[str, int] = {
    "dim": 1024,
    "depth": 22,
    "heads": 16,
    "ff_mult": 2,
    "text_dim": 512,
    "text_conv_layers": 4,
    "mel_dim": 100,
}
#: A tiny size for tests.
TINY_SIZE: dict[str, int] = {
    "dim": 32,
    "depth": 2,
    "heads": 2,
    "ff_mult": 2,
    "text_dim": 16,
    "text_conv_layers": 1,
    "mel_dim": 100,
}
SIZES = {"f5_base": F5_BASE_SIZE, "tiny": TINY_SIZE}


def _rotary(seq_len: int, head_dim: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    angles = torch.arange(seq_len, device=device, dtype=torch.float32)[:, None] * inv_freq[None]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def _apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


class _ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pw1 = nn.Linear(dim, 2 * dim)
        self.pw2 = nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        y = self.dwconv(x.transpose(1, 2)).transpose(1, 2)
        return x + self.pw2(F.gelu(self.pw1(self.norm(y))))


class _DiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, ff_mult: int):
        super().__init__()
        self.heads = heads
        self.modulation = nn.Linear(dim, 6 * dim)  # adaLN-zero: shift/scale/gate for attention and FFN
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ff = nn.Sequential(
            nn.Linear(dim, ff_mult * dim), nn.GELU(approximate="tanh"), nn.Linear(ff_mult * dim, dim)
        )

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor, rope, mask: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(F.silu(t_emb))[:, None].chunk(6, dim=-1)
        b, n, d = x.shape
        h = self.norm1(x) * (1 + scale1) + shift1
        q, k, v = self.qkv(h).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k = _apply_rotary(q, *rope), _apply_rotary(k, *rope)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        x = x + gate1 * self.out(attn.transpose(1, 2).reshape(b, n, d))
        h = self.norm2(x) * (1 + scale2) + shift2
        return x + gate2 * self.ff(h)


class FlowMatchingPeer(nn.Module):
    """
    F5-TTS-sized DiT velocity network with an Euler sampler and a Vocos-sized vocoder (timing baseline, see module).

    Args:
        dim (`int`), depth (`int`), heads (`int`), ff_mult (`int`): DiT width, layers, heads and FFN multiplier.
        text_dim (`int`), text_conv_layers (`int`): Character embedding width and ConvNeXt text blocks.
        mel_dim (`int`): Mel bins (100).
        vocoder (`bool`, defaults to `True`): Build the Vocos-size [`MelCodec`] used by [`synthesize`].
    """

    vocab_size = 256  # bytes of the UTF-8 text: a character vocabulary
    sampling_rate = VOCOS_MEL_24KHZ_CONFIG["sampling_rate"]
    hop_length = VOCOS_MEL_24KHZ_CONFIG["hop_length"]

    def __init__(
        self,
        dim: int = 1024,
        depth: int = 22,
        heads: int = 16,
        ff_mult: int = 2,
        text_dim: int = 512,
        text_conv_layers: int = 4,
        mel_dim: int = 100,
        vocoder: bool = True,
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"`dim` ({dim}) must be divisible by `heads` ({heads}).")
        self.mel_dim = mel_dim
        self.dim = dim
        self.text_embed = nn.Embedding(self.vocab_size + 1, text_dim)  # index 0 = filler / dropped text
        self.text_blocks = nn.Sequential(*[_ConvNeXtBlock(text_dim) for _ in range(text_conv_layers)])
        self.input_proj = nn.Linear(2 * mel_dim + text_dim, dim)
        self.conv_pos = nn.Sequential(
            nn.Conv1d(dim, dim, 31, padding=15, groups=16), nn.Mish(), nn.Conv1d(dim, dim, 31, padding=15, groups=16)
        )
        self.time_mlp = nn.Sequential(nn.Linear(256, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.blocks = nn.ModuleList([_DiTBlock(dim, heads, ff_mult) for _ in range(depth)])
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.out_modulation = nn.Linear(dim, 2 * dim)
        self.proj_out = nn.Linear(dim, mel_dim)
        self.vocoder = MelCodec(**VOCOS_MEL_24KHZ_CONFIG) if vocoder else None

    @classmethod
    def from_size(cls, name: str = "f5_base", **kwargs) -> FlowMatchingPeer:
        """Builds the peer at a named size: `"f5_base"` (F5-TTS base, ~336M) or `"tiny"`."""
        if name not in SIZES:
            raise ValueError(f"Unknown peer size {name!r}; choose one of {sorted(SIZES)}.")
        return cls(**SIZES[name], **kwargs)

    def num_parameters(self, include_vocoder: bool = False) -> int:
        """Parameters of the velocity network (and of the vocoder when asked)."""
        total = sum(p.numel() for p in self.parameters())
        if self.vocoder is not None and not include_vocoder:
            total -= sum(p.numel() for p in self.vocoder.parameters())
        return total

    def tokenize(self, texts: Sequence[str], num_frames: Sequence[int]) -> torch.LongTensor:
        """UTF-8 bytes + 1 per character, zero-filled to each item's total frames: `(B, max_frames)`."""
        out = torch.zeros(len(texts), max(num_frames), dtype=torch.long)
        for i, (text, n) in enumerate(zip(texts, num_frames)):
            ids = torch.tensor(list(text.encode("utf-8"))[:n], dtype=torch.long) + 1
            out[i, : len(ids)] = ids
        return out

    def _time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        half = 128
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        args = 1000.0 * t.float()[:, None] * freqs[None]
        return self.time_mlp(torch.cat([args.sin(), args.cos()], dim=-1).to(self.input_proj.weight.dtype))

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor, text_ids: torch.Tensor, t: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """
        Velocity of the flow.

        Args:
            x (`torch.Tensor` of shape `(B, T, mel_dim)`): Noisy mel at flow time `t`.
            cond (`torch.Tensor` of shape `(B, T, mel_dim)`): Prompt mel, zero on the span to generate.
            text_ids (`torch.LongTensor` of shape `(B, T)`): Characters padded to the frames (0 = filler).
            t (`torch.Tensor` of shape `(B,)`): Flow time in [0, 1].
            mask (`torch.Tensor` of shape `(B, T)`): True on valid frames.

        Returns:
            `torch.Tensor` of shape `(B, T, mel_dim)`.
        """
        text = self.text_blocks(self.text_embed(text_ids))
        h = self.input_proj(torch.cat([x, cond, text], dim=-1))
        h = h + self.conv_pos(h.transpose(1, 2)).transpose(1, 2)
        t_emb = self._time_embedding(t)
        rope = _rotary(h.shape[1], self.dim // self.blocks[0].heads, h.device, h.dtype) if len(self.blocks) else None
        for block in self.blocks:
            h = block(h, t_emb, rope, mask)
        shift, scale = self.out_modulation(F.silu(t_emb))[:, None].chunk(2, dim=-1)
        return self.proj_out(self.norm_out(h) * (1 + scale) + shift)

    @torch.inference_mode()
    def sample(
        self,
        texts: Sequence[str],
        prompt_mel: torch.Tensor,
        num_frames: Sequence[int],
        nfe: int = 32,
        cfg_strength: float = 2.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """
        Euler ODE sampling with classifier-free guidance (both branches in one `2 * B` batched pass per step).

        Args:
            texts (`list[str]`): Text of each item.
            prompt_mel (`torch.Tensor` of shape `(B, mel_dim, prompt_frames)`): Prompt log-mel.
            num_frames (`list[int]`): Frames to generate after the prompt, per item.
            nfe (`int`): Euler steps (each one network pass over `2 * B` sequences).
            cfg_strength (`float`): Guidance weight.
            generator (`torch.Generator`, *optional*): Noise source.

        Returns:
            `torch.Tensor` of shape `(B, mel_dim, prompt_frames + max(num_frames))`: the whole sequence.
        """
        if nfe < 1:
            raise ValueError(f"`nfe` must be >= 1, got {nfe}.")
        batch, _, prompt_frames = prompt_mel.shape
        if len(texts) != batch or len(num_frames) != batch:
            raise ValueError(f"Got {len(texts)} texts and {len(num_frames)} lengths for a batch of {batch} prompts.")
        device, dtype = self.input_proj.weight.device, self.input_proj.weight.dtype
        totals = [prompt_frames + n for n in num_frames]
        length = max(totals)
        mask = torch.arange(length, device=device)[None] < torch.tensor(totals, device=device)[:, None]
        cond = torch.zeros(batch, length, self.mel_dim, device=device, dtype=dtype)
        cond[:, :prompt_frames] = prompt_mel.transpose(1, 2).to(device, dtype)
        text_ids = self.tokenize(texts, totals).to(device)
        # guidance: the unconditional branch drops text and prompt
        cond2 = torch.cat([cond, torch.zeros_like(cond)])
        text2 = torch.cat([text_ids, torch.zeros_like(text_ids)])
        mask2 = torch.cat([mask, mask])
        x = torch.randn(batch, length, self.mel_dim, generator=generator, dtype=torch.float32).to(device, dtype)
        times = torch.linspace(0.0, 1.0, nfe + 1, device=device)
        for i in range(nfe):
            t = times[i].expand(2 * batch)
            v_cond, v_uncond = self(torch.cat([x, x]), cond2, text2, t, mask2).chunk(2)
            x = x + (times[i + 1] - times[i]) * (v_cond + cfg_strength * (v_cond - v_uncond))
        x = torch.where(cond.abs().sum(-1, keepdim=True) > 0, cond, x)
        return x.transpose(1, 2)

    @torch.inference_mode()
    def synthesize(
        self,
        texts: Sequence[str],
        prompt_mel: torch.Tensor,
        num_frames: Sequence[int],
        nfe: int = 32,
        cfg_strength: float = 2.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Sampling then vocoding of the generated span only: `(B, max(num_frames) * hop_length)` waveforms."""
        if self.vocoder is None:
            raise ValueError("This peer was built with `vocoder=False`.")
        mel = self.sample(texts, prompt_mel, num_frames, nfe, cfg_strength, generator)
        span = mel[:, :, prompt_mel.shape[-1] :]
        return self.vocoder.decode(span.to(self.vocoder.dtype), denormalize=False)
