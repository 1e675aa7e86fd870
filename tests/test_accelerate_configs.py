"""The accelerate config files of training/configs/: each loads with accelerate's own loader and launch checks; the
DDP one trains 2 CPU processes (gloo). FSDP cannot run on a CPU with accelerate 1.16 (it falls back to DDP), so its
file is checked down to the plugin that `accelerate launch` would build from it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
from accelerate.utils.launch import prepare_multi_gpu_env
from test_training import base_args, make_prepared_dir

from flashspeech_hf import FlashSpeechPipeline

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "training" / "configs"
SCRIPT = ROOT / "training" / "train_flashspeech.py"

EXPECTED = {  # file: (distributed type, processes)
    "accelerate_1gpu.yaml": (DistributedType.NO, 1),
    "accelerate_8gpu_ddp_bf16.yaml": (DistributedType.MULTI_GPU, 8),
    "accelerate_8gpu_fsdp.yaml": (DistributedType.FSDP, 8),
}


def launch_args(config_file: Path, *extra: str):
    parsed = launch_command_parser().parse_args(["--config_file", str(config_file), *extra, "train.py"])
    return _validate_launch_command(parsed)[0]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_loads_and_launches_as_documented(name):
    config = load_config_from_file(str(CONFIGS / name))
    distributed_type, processes = EXPECTED[name]
    assert config.distributed_type == distributed_type and config.num_processes == processes
    assert config.mixed_precision == "bf16" and not config.use_cpu
    args = launch_args(CONFIGS / name)
    assert args.num_processes == processes and args.mixed_precision == "bf16"
    assert args.multi_gpu == (distributed_type == DistributedType.MULTI_GPU)
    assert args.use_fsdp == (distributed_type == DistributedType.FSDP)
    # the commands in the file's comments use the paper's training config
    assert "--config training/configs/paper.json" in (CONFIGS / name).read_text()


def test_paper_config_holds_the_paper_batch_and_learning_rate():
    paper = json.loads((CONFIGS / "paper.json").read_text())
    # per GPU: 24 utterances, no accumulation, lr 3e-4; on the 8 GPUs of the DDP/FSDP files a global batch of 192
    assert (paper["train_batch_size"], paper["gradient_accumulation_steps"], paper["learning_rate"]) == (24, 1, 3e-4)
    # one GPU keeps the global batch with 8 accumulation steps, as the 1-GPU file's comment says
    assert "--gradient_accumulation_steps 8" in (CONFIGS / "accelerate_1gpu.yaml").read_text()


def test_fsdp_config_builds_the_plugin(monkeypatch):
    # `sync_module_states` (kept for GPUs) is refused on a CPU; everything else is what the GPUs get
    env = prepare_multi_gpu_env(launch_args(CONFIGS / "accelerate_8gpu_fsdp.yaml"))
    for key, value in {**env, "FSDP_SYNC_MODULE_STATES": "false"}.items():
        monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.sharding_strategy.name == "SHARD_GRAD_OP" and plugin.use_orig_params
    assert plugin.state_dict_type.name == "FULL_STATE_DICT" and plugin.backward_prefetch.name == "BACKWARD_PRE"
    assert env["ACCELERATE_MIXED_PRECISION"] == "bf16"


def test_ddp_config_trains_two_cpu_processes(tmp_path):
    prepared = make_prepared_dir(tmp_path / "prepared")
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / "accelerate_8gpu_ddp_bf16.yaml"),
        "--num_processes", "2", str(SCRIPT),
        *base_args(prepared, out, "--max_train_steps", "100000", "--max_train_minutes", "0.1", "--train_batch_size", "2",
                   "--checkpointing_steps", "100000", "--log_sample_ids"),
    ]  # fmt: skip
    # ACCELERATE_USE_CPU: the processes form a gloo group on a machine without GPUs
    env = dict(os.environ, OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="true")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = [json.loads((out / f"sample_ids_rank{r}.json").read_text()) for r in (0, 1)]
    assert seen[0] and seen[1] and not set(seen[0]) & set(seen[1])  # two processes, each on its own rows
    # the 6-second budget (--max_train_minutes) stopped both at the same step, with a checkpoint of it
    steps = len(seen[0]) // 2
    assert len(seen[1]) == len(seen[0]) and [p.name for p in out.glob("checkpoint-*")] == [f"checkpoint-{steps}"]
    FlashSpeechPipeline.from_pretrained(out)
