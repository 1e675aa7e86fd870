"""Inference speed of FlashSpeech: end-to-end real-time factor, its split, overhead over the floor, and a peer.

For each named pipeline size (`FlashSpeechPipeline.from_named_config`), batch size, output length and number of
function evaluations (NFE), the script times the pipeline's own `__call__` end to end (median of repeats after
warm-up, under `torch.inference_mode`) and, in further calls of the same `__call__` with forward hooks on every module
of the components ([`ComponentTimer`]), the split into codec encode (the prompt), prior encoder, prosody generator,
denoiser, codec decode and the rest (tokenizer, prompt loading and resampling, the prompt's STFT and other non-module
arithmetic). It also times the *floor* of DESIGN §6 (the denoiser's, the prosody generator's and the codec decode's
module calls of that pipeline call, recorded by the hooks and replayed alone on the same inputs) and reports
`overhead = end-to-end / floor - 1`, peak memory (CUDA peak allocation, or the peak resident set size of the process
on CPU) and parameters.

The output length is set by forcing durations: the duration predictor's output layer is replaced by a constant so that
every phoneme lasts the same number of frames, and the text has as many phonemes as the target length needs.

In the same run and on the same texts, prompt and lengths, it times a flow-matching peer of F5-TTS's size
(`peer_flow_matching.py`, randomly initialised) at 16 and 32 NFE with classifier-free guidance, vocoder included, and
prints the ratio of its RTF to ours.

Usage:

```bash
python benchmarks/benchmark_inference.py --smoke                       # seconds: tiny, short, few NFE
python benchmarks/benchmark_inference.py --output benchmarks/results/inference_cpu.md   # tiny + paper + peer
python benchmarks/benchmark_inference.py --device cuda --configs paper
python benchmarks/benchmark_inference.py --configs paper --dtype bfloat16      # networks in bf16 (see README)
python benchmarks/benchmark_inference.py --configs paper --quantization int8   # int8 dynamic Linear layers (CPU)
python benchmarks/benchmark_inference.py --configs paper --dtype bfloat16 --prompt_as audio voice  # saved voice too
```

`--prompt_as voice` encodes the prompt once before timing (`pipe.encode_voice`) and passes `voice=` instead of the
audio, as a user with a saved voice does: the prompt's codec encoding and prompt encoder leave the timed call. With
`audio voice` both are timed, cell by cell, on the same pipeline in the same run.

`--dtype` casts the pipeline with `pipe.to(dtype)` (the numerically fragile parts stay in float32, see
`flashspeech_hf.precision`); `--quantization int8` applies `FlashSpeechPipeline.enable_int8_dynamic_quantization` to a
float32 pipeline. The peer always runs in float32.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from peer_flow_matching import FlowMatchingPeer

from flashspeech_hf import FlashSpeechPipeline
from flashspeech_hf.audio import resample
from flashspeech_hf.training_utils import idle_cpu_count

WORDS = (
    "the quick brown fox jumps over a lazy dog while seven bright children sing under the old bridge near the river "
    "and their teacher reads a story about distant mountains covered in snow"
).split()
FRAMES_PER_PHONEME = 6
PROMPT_SECONDS = 3.0
PROMPT_SR = 16000
SPLIT = ("codec_encode", "prior", "prosody", "denoiser", "codec_decode", "other")


# ---------------------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------------------


def make_prompt(seconds: float, sampling_rate: int, seed: int = 0) -> np.ndarray:
    """A voiced-speech-like signal: harmonics of a gliding pitch under a syllable-rate envelope, `(num_samples,)`."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sampling_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.3 * voiced * envelope + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def text_for_phonemes(tokenizer, num_phonemes: int) -> tuple[str, int]:
    """The shortest word sequence with at least `num_phonemes` token ids, and its id count."""
    words: list[str] = []
    count = 0
    while count < num_phonemes:
        words.append(WORDS[len(words) % len(WORDS)])
        count = len(tokenizer(" ".join(words))["input_ids"])
    return " ".join(words), count


def force_durations(pipe: FlashSpeechPipeline, frames_per_phoneme: int) -> None:
    """Makes the duration predictor output `log(1 + frames_per_phoneme)` for every phoneme."""
    out = pipe.prosody_generator.duration_predictor.out
    torch.nn.init.zeros_(out.weight)
    torch.nn.init.constant_(out.bias, math.log1p(frames_per_phoneme))


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def build_pipeline(
    name: str, device: torch.device, seed: int = 0, dtype: str = "float32", quantization: str = "none"
) -> FlashSpeechPipeline:
    """A random pipeline of a named size with forced durations, in `dtype` (and int8 Linear layers with `int8`)."""
    torch.manual_seed(seed)
    pipe = FlashSpeechPipeline.from_named_config(name)
    force_durations(pipe, FRAMES_PER_PHONEME)  # before any cast or quantization of the output layer
    pipe = pipe.to(device=device, dtype=DTYPES[dtype])
    if quantization == "int8":
        pipe.enable_int8_dynamic_quantization()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def precision_label(dtype: str, quantization: str) -> str:
    """Suffix of the system name: empty for float32 without quantization."""
    parts = ([] if dtype == "float32" else [dtype]) + ([] if quantization == "none" else [quantization])
    return "".join(f" {p}" for p in parts)


def frame_rate(pipe: FlashSpeechPipeline) -> float:
    return pipe.sampling_rate / pipe.codec.hop_length


# ---------------------------------------------------------------------------------------------------------------------
# Timing helpers
# ---------------------------------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:  # Linux: writing 5 resets the peak resident set size (VmHWM) of the process
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_time(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int) -> float:
    """Median wall seconds of `fn()` over `repeats` runs after `warmup` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ---------------------------------------------------------------------------------------------------------------------
# FlashSpeech measurements
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class Row:
    system: str
    batch_size: int
    target_seconds: float
    nfe: int
    audio_seconds: float  # per item, as produced
    e2e_seconds: float
    rtf: float
    split_rtf: dict[str, float] = field(default_factory=dict)
    floor_rtf: float | None = None
    overhead: float | None = None
    peak_memory_mb: float = 0.0
    throughput: float = 0.0  # audio seconds per wall second


class ComponentTimer:
    """
    Times the pipeline's components inside real `pipe(...)` calls, with forward pre-hooks and forward hooks on every
    module of each component (the component itself and all its submodules), whatever pipeline method calls them.

    A component's time is the wall time of its outermost module calls (a call nested in another call of the same
    component is inside that interval). Codec calls before the first denoiser call of a pipeline call encode the
    prompt (`codec_encode`), later ones decode (`codec_decode`); `other` is the rest of the call (tokenizer, loading
    and resampling the prompt, non-module arithmetic such as the prompt's STFT and the sampler's updates). With
    `record=True` the inputs of every outermost call are kept, so that the calls can be replayed alone (the floor).
    """

    COMPONENTS = {"prior_encoder": "prior", "prosody_generator": "prosody", "denoiser": "denoiser", "codec": "codec"}

    def __init__(self, pipe: FlashSpeechPipeline, device: torch.device):
        self.pipe, self.device = pipe, device
        self.seconds: dict[str, float] = dict.fromkeys(SPLIT, 0.0)
        self.calls: dict[str, list[tuple[torch.nn.Module, tuple, dict]]] = {name: [] for name in SPLIT}

    def _label(self, component: str) -> str:
        label = self.COMPONENTS[component]
        if label == "codec":
            return "codec_decode" if self._denoiser_called else "codec_encode"
        return label

    def _hooks(self, component: str, record: bool):
        def pre_hook(module, args, kwargs):
            if self._depth[component] == 0:
                _sync(self.device)
                self._start[component] = time.perf_counter()
                if record:
                    self.calls[self._label(component)].append((module, args, kwargs))
            self._depth[component] += 1

        def post_hook(module, args, kwargs, output):
            self._depth[component] -= 1
            if self._depth[component] == 0:
                _sync(self.device)
                self.seconds[self._label(component)] += time.perf_counter() - self._start[component]
                self._denoiser_called |= component == "denoiser"

        return pre_hook, post_hook

    def time_call(self, call: Callable[[], object], record: bool = False) -> None:
        """Runs `call()` (a pipeline call) with the hooks in place and adds its times to `seconds`."""
        self._depth, self._start, self._denoiser_called = dict.fromkeys(self.COMPONENTS, 0), {}, False
        handles = []
        for component in self.COMPONENTS:
            pre_hook, post_hook = self._hooks(component, record)
            for module in getattr(self.pipe, component).modules():
                handles.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
                handles.append(module.register_forward_hook(post_hook, with_kwargs=True))
        before = dict(self.seconds)
        try:
            _sync(self.device)
            start = time.perf_counter()
            call()
            _sync(self.device)
            total = time.perf_counter() - start
        finally:
            for handle in handles:
                handle.remove()
        self.seconds["other"] += total - sum(self.seconds[k] - before[k] for k in SPLIT if k != "other")


def floor_seconds(timer: ComponentTimer, device, repeats: int, warmup: int) -> float:
    """The recorded denoiser, prosody generator and codec decode module calls, each group replayed alone."""

    def replay(name):
        def run():
            for module, args, kwargs in timer.calls[name]:
                module(*args, **kwargs)

        return run

    return sum(median_time(replay(name), device, repeats, warmup) for name in ("denoiser", "prosody", "codec_decode"))


def measure_flashspeech(pipe, name, texts, prompt, nfe, device, repeats, warmup, voice=None) -> Row:
    generators = lambda: [torch.Generator().manual_seed(i) for i in range(len(texts))]  # noqa: E731
    outputs = {}
    given = {"voice": voice} if voice is not None else {"prompt_audio": prompt, "prompt_sampling_rate": PROMPT_SR}

    def e2e():
        outputs["out"] = pipe(texts, num_inference_steps=nfe, generator=generators(), **given)

    reset_peak_memory(device)
    e2e_seconds = median_time(e2e, device, repeats, warmup)
    peak = peak_memory_mb(device)
    audio_seconds = sum(outputs["out"].audio_lengths) / pipe.sampling_rate
    # the split: the same call again, its components timed by hooks (the last call's module inputs kept for the floor)
    timer = ComponentTimer(pipe, device)
    runs = max(repeats, 1)
    for run in range(runs):
        timer.time_call(e2e, record=run == runs - 1)
    split = {k: v / (audio_seconds * runs) for k, v in timer.seconds.items()}
    floor = floor_seconds(timer, device, repeats, warmup)
    return Row(
        system=f"FlashSpeech {name}",
        batch_size=len(texts),
        target_seconds=0.0,
        nfe=nfe,
        audio_seconds=audio_seconds / len(texts),
        e2e_seconds=e2e_seconds,
        rtf=e2e_seconds / audio_seconds,
        split_rtf=split,
        floor_rtf=floor / audio_seconds,
        overhead=e2e_seconds / floor - 1.0,
        peak_memory_mb=peak,
        throughput=audio_seconds / e2e_seconds,
    )


def measure_peer(peer, texts, prompt_mel, frames, nfe, device, repeats, warmup) -> Row:
    def run():
        peer.synthesize(texts, prompt_mel, frames, nfe=nfe, generator=torch.Generator().manual_seed(0))

    reset_peak_memory(device)
    seconds = median_time(run, device, repeats, warmup)
    audio_seconds = sum(frames) * peer.hop_length / peer.sampling_rate
    return Row(
        system="flow-matching peer (F5-TTS size, CFG)" if peer.dim == 1024 else "flow-matching peer (tiny)",
        batch_size=len(texts),
        target_seconds=0.0,
        nfe=nfe,
        audio_seconds=audio_seconds / len(texts),
        e2e_seconds=seconds,
        rtf=seconds / audio_seconds,
        peak_memory_mb=peak_memory_mb(device),
        throughput=audio_seconds / seconds,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Grid, report
# ---------------------------------------------------------------------------------------------------------------------


def _per_config(values: list[str], config: str, default, cast):
    for value in values:
        name, _, number = value.partition("=")
        if name == config:
            return cast(number)
    return default


def grid(args, config: str) -> list[tuple[int, float, int]]:
    """(batch, seconds, nfe) cells: the full product, or a cross around (batch 1, reference seconds, NFE 2)."""
    if args.grid == "full" or (args.grid == "auto" and config == "tiny"):
        cells = [(b, s, n) for b in args.batch_sizes for s in args.seconds for n in args.nfe]
    else:
        ref_s = _per_config(args.config_reference_seconds, config, args.reference_seconds, float)
        ref_s = ref_s if ref_s in args.seconds else args.seconds[0]
        ref_n = 2 if 2 in args.nfe else args.nfe[0]
        ref_b = min(args.batch_sizes)
        cells = [(ref_b, ref_s, n) for n in args.nfe]
        cells += [(ref_b, s, ref_n) for s in args.seconds]
        cells += [(b, ref_s, ref_n) for b in args.batch_sizes]
    return list(dict.fromkeys(cells))


def machine_description(device: torch.device) -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    text = (
        f"CPU {cpu}, {os.cpu_count()} logical cores, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"Python {platform.python_version()}, device `{device}`"
    )
    if device.type == "cuda":
        text += f" ({torch.cuda.get_device_name(device)})"
    return text


def format_report(rows: list[Row], params: dict[str, float], machine: str, settings: str) -> str:
    peers = {(r.batch_size, round(r.audio_seconds, 1), r.nfe): r for r in rows if r.system.startswith("flow")}
    peer_nfes = sorted({n for (_, _, n) in peers})
    lines = [f"Machine: {machine}.", f"Settings: {settings}.", ""]
    lines.append("Parameters (millions): " + ", ".join(f"{k} {v:.1f}" for k, v in params.items()) + ".")
    lines.append("")
    header = ["system", "batch", "audio s/item", "NFE", "wall s", "RTF"]
    header += [f"RTF {k}" for k in SPLIT] + ["floor RTF", "overhead", "peak MB", "audio s / wall s"]
    header += [f"peer@{n} / ours" for n in peer_nfes]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for r in rows:
        cells = [
            r.system,
            str(r.batch_size),
            f"{r.audio_seconds:.2f}",
            str(r.nfe),
            f"{r.e2e_seconds:.3f}",
            f"{r.rtf:.4f}",
        ]
        if r.split_rtf:
            cells += [f"{r.split_rtf[k]:.4f}" for k in SPLIT]
        else:
            cells += ["-"] * len(SPLIT)
        cells += [f"{r.floor_rtf:.4f}" if r.floor_rtf is not None else "-"]
        cells += [f"{100 * r.overhead:+.0f}%" if r.overhead is not None else "-"]
        cells += [f"{r.peak_memory_mb:.0f}", f"{r.throughput:.2f}"]
        for n in peer_nfes:
            peer = peers.get((r.batch_size, round(r.audio_seconds, 1), n))
            ok = peer is not None and not r.system.startswith("flow")
            cells.append(f"{peer.rtf / r.rtf:.1f}x" if ok else "-")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for system in dict.fromkeys(r.system for r in rows if not r.system.startswith("flow")):
        ours = {(r.batch_size, round(r.audio_seconds, 1), r.nfe): r for r in rows if r.system == system}
        for (b, s, n), r in ours.items():
            one = ours.get((1, s, n))
            if b > 1 and one is not None:
                lines.append(
                    f"- {system}, NFE {n}, {s:.1f} s: batch {b} gives {r.throughput / one.throughput:.2f}x the audio "
                    "seconds per wall second of batch 1."
                )
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["tiny", "paper"])
    parser.add_argument("--batch_sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--seconds", nargs="+", type=float, default=[2.0, 5.0, 10.0, 20.0])
    parser.add_argument("--nfe", nargs="+", type=int, default=[1, 2, 4, 8, 32])
    parser.add_argument("--grid", choices=["auto", "full", "cross"], default="auto",
                        help="full product, or a cross around (batch 1, --reference_seconds, NFE 2); auto = full "
                        "for tiny, cross otherwise")  # fmt: skip
    parser.add_argument("--reference_seconds", type=float, default=5.0)
    parser.add_argument("--peer", choices=["f5_base", "tiny", "none"], default="f5_base")
    parser.add_argument("--peer_nfe", nargs="+", type=int, default=[16, 32])
    parser.add_argument("--peer_seconds", nargs="+", type=float, default=[5.0])
    parser.add_argument("--peer_batch_sizes", nargs="+", type=int, default=[1])
    parser.add_argument("--peer_repeats", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--config_repeats", nargs="*", default=[], metavar="NAME=N",
                        help="per-config repeats (and no warm-up when N is 1), e.g. paper=1")  # fmt: skip
    parser.add_argument("--config_reference_seconds", nargs="*", default=[], metavar="NAME=S",
                        help="per-config reference length of the cross grid, e.g. paper=2")  # fmt: skip
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32",
                        help="dtype of the networks (pipe.to(dtype)); fragile parts stay float32")  # fmt: skip
    parser.add_argument("--prompt_as", nargs="+", choices=["audio", "voice"], default=["audio"],
                        help="the prompt as audio, and/or as a saved voice (`pipe.encode_voice`, encoded before timing)")  # fmt: skip
    parser.add_argument("--quantization", choices=["none", "int8"], default="none",
                        help="int8: dynamic int8 Linear layers of the denoiser and prosody generator (CPU, float32)")  # fmt: skip
    parser.add_argument("--num_threads", "--threads", dest="threads", type=int, default=None,
                        help="torch.set_num_threads (default: the idle cores; more threads than idle cores slow "
                        "OpenMP down many times over)")  # fmt: skip
    parser.add_argument("--output", default=None, help="markdown file to write (a .json is written beside it)")
    parser.add_argument("--smoke", action="store_true", help="seconds-long run: tiny, 2 s, NFE 1-2, tiny peer")
    args = parser.parse_args(argv)
    if args.quantization == "int8" and (args.dtype != "float32" or args.device != "cpu"):
        parser.error(
            "--quantization int8 quantizes float32 weights on the CPU: use it with --dtype float32 --device cpu."
        )
    if args.smoke:
        args.configs, args.batch_sizes, args.seconds, args.nfe = ["tiny"], [1, 2], [2.0], [1, 2]
        args.peer = "tiny" if args.peer != "none" else "none"
        args.peer_nfe, args.peer_seconds, args.peer_batch_sizes = [2], [2.0], [1]
        args.repeats, args.warmup, args.peer_repeats, args.grid = 1, 1, 1, "full"
    return args


def write_report(output: str, report: str, data: dict) -> None:
    """Writes a benchmark's markdown `report` to `output` and its `data` as JSON beside it (`.json`)."""
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w", encoding="utf-8") as f:
        f.write(report)
    with open(os.path.splitext(output)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def main(argv=None) -> list[Row]:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked but no CUDA device is available.")
    torch.set_num_threads(args.threads or idle_cpu_count())
    rows: list[Row] = []
    params: dict[str, float] = {}
    produced: dict[tuple[int, float], tuple[list[str], float]] = {}  # (batch, target s) -> texts, audio s per item
    prompt = make_prompt(PROMPT_SECONDS, PROMPT_SR)
    with torch.inference_mode():
        for config in args.configs:
            # built and cast outside inference mode, as a user loads it: bf16 weights made inside inference mode ran the
            # paper denoiser 4x slower on this CPU (measured: RTF 0.72 vs 0.17 at 2 steps)
            with torch.inference_mode(False):
                pipe = build_pipeline(config, device, dtype=args.dtype, quantization=args.quantization)
            params[f"FlashSpeech {config} (without codec)"] = (
                sum(p.numel() for m in (pipe.prior_encoder, pipe.prosody_generator, pipe.denoiser)
                    for p in m.parameters()) / 1e6
            )  # fmt: skip
            texts_for: dict[float, str] = {}
            saved_voice = pipe.encode_voice(prompt, PROMPT_SR)
            repeats = _per_config(args.config_repeats, config, args.repeats, int)
            warmup = args.warmup if repeats > 1 else 0
            for batch, seconds, nfe in grid(args, config):
                if seconds not in texts_for:
                    phonemes = max(1, round(seconds * frame_rate(pipe) / FRAMES_PER_PHONEME))
                    texts_for[seconds] = text_for_phonemes(pipe.tokenizer, phonemes)[0]
                texts = [texts_for[seconds]] * batch
                for prompt_as in args.prompt_as:
                    voice = saved_voice if prompt_as == "voice" else None
                    label = config + precision_label(args.dtype, args.quantization) + (" saved voice" if voice else "")
                    row = measure_flashspeech(pipe, label, texts, prompt, nfe, device, repeats, warmup, voice)
                    row.target_seconds = seconds
                    rows.append(row)
                    produced.setdefault((batch, seconds), (texts, row.audio_seconds))
                    print(f"{row.system} b{batch} {row.audio_seconds:.2f}s nfe{nfe}: RTF {row.rtf:.4f} "
                          f"(overhead {100 * row.overhead:+.0f}%)", flush=True)  # fmt: skip
            del pipe
        if args.peer != "none":
            torch.manual_seed(0)
            peer = FlowMatchingPeer.from_size(args.peer).to(device).eval()
            params[f"peer {args.peer} (DiT)"] = peer.num_parameters() / 1e6
            params["peer vocoder (Vocos-size MelCodec)"] = (peer.num_parameters(True) - peer.num_parameters()) / 1e6
            peer_prompt = resample(torch.from_numpy(prompt), PROMPT_SR, peer.sampling_rate)
            prompt_mel = peer.vocoder.encode(peer_prompt[None].to(device), normalize=False)
            for batch in args.peer_batch_sizes:
                for seconds in args.peer_seconds:
                    # same texts and audio length as FlashSpeech produced for this cell (if it ran)
                    texts, audio_s = produced.get((batch, seconds), (None, seconds))
                    if texts is None:
                        texts = [" ".join(WORDS)[: int(15 * seconds)]] * batch
                    frames = [round(audio_s * peer.sampling_rate / peer.hop_length)] * batch
                    peer.synthesize(texts, prompt_mel.expand(batch, -1, -1), frames, nfe=1)  # untimed warm-up
                    for nfe in args.peer_nfe:
                        row = measure_peer(peer, texts, prompt_mel.expand(batch, -1, -1), frames, nfe, device,
                                           args.peer_repeats, 0)  # fmt: skip
                        row.target_seconds = seconds
                        rows.append(row)
                        print(
                            f"{row.system} b{batch} {row.audio_seconds:.2f}s nfe{nfe}: RTF {row.rtf:.4f}", flush=True
                        )
    settings = (
        f"prompt {PROMPT_SECONDS:.0f} s, prosody alpha 0.2, durations forced to {FRAMES_PER_PHONEME} frames per phoneme, "
        f"median of {args.repeats} after {args.warmup} warm-up (per config: {args.config_repeats or 'same'}; "
        f"peer: {args.peer_repeats} run after a 1-NFE warm-up), torch.inference_mode, FlashSpeech networks in "
        f"{args.dtype}{'' if args.quantization == 'none' else ' with ' + args.quantization + ' dynamic Linear layers'} "
        "(peer in float32)"
        + (", saved voice: the prompt passed as `voice=`, encoded before timing" if "voice" in args.prompt_as else "")
    )
    report = format_report(rows, params, machine_description(device), settings)
    print(report)
    if args.output:
        data = {"machine": machine_description(device), "params_m": params, "rows": [asdict(r) for r in rows]}
        write_report(args.output, report, data)
    return rows


if __name__ == "__main__":
    main()
