"""training/gpu_sprint.py on the CPU: the export of a prepared dataset under a size budget, a 20-second sprint from it
(`train_flashspeech.py --max_train_minutes`), the pipeline packed into small parts and unpacked again."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from data_utils import load_prepared_dataset
from gpu_sprint import INT8_LATENT_STEP, hold_out, main, pack_folder, unpack
from test_training import make_prepared_dir

from flashspeech_hf import FlashSpeechPipeline

SCRIPT = Path(__file__).resolve().parents[1] / "training" / "gpu_sprint.py"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return make_prepared_dir(tmp_path_factory.mktemp("prepared"), num_rows=24)


def test_export_keeps_the_rows_that_fit(prepared, tmp_path):
    whole = main(["export", "--prepared_dataset_dir", str(prepared), "--output", str(tmp_path / "all.tar.xz")])
    assert whole["rows"] == whole["total_rows"] == 24
    half = main(["export", "--prepared_dataset_dir", str(prepared), "--output", str(tmp_path / "half.tar.xz"),
                 "--max_rows", "12"])  # fmt: skip
    assert half["rows"] == 12 and half["megabytes"] < whole["megabytes"]
    budget = half["megabytes"] * 1.001  # room for about 12 rows, not 24: the export finds how many fit
    part = main(["export", "--prepared_dataset_dir", str(prepared), "--output", str(tmp_path / "part.tar.xz"),
                 "--max_megabytes", str(budget)])  # fmt: skip
    assert 6 <= part["rows"] <= 12 and (tmp_path / "part.tar.xz").stat().st_size <= budget * 2**20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.tar.xz", "half.tar.xz", "part.tar.xz"]  # no temporary
    assert not list((prepared / "dataset").glob("cache-*"))  # nor anything beside the source

    unpacked = unpack([tmp_path / "part.tar.xz"], tmp_path / "unpacked")
    data = load_prepared_dataset(unpacked)
    original = load_prepared_dataset(prepared, load_codec_weights=False).dataset
    assert len(data.dataset) == part["rows"] and data.dataset.features["latents"].dtype == "float16"
    assert data.config["subset"]["rows"] == part["rows"] and data.config["subset"]["total_rows"] == 24
    for index in (0, part["rows"] - 1):
        a, b = data.dataset.with_format("numpy")[index], original.with_format("numpy")[index]
        np.testing.assert_allclose(a["latents"].astype(np.float32), b["latents"], atol=2e-3)  # float16
        np.testing.assert_array_equal(a["durations"], b["durations"])
        assert a["text"] == b["text"]


def test_int8_export_is_smaller_and_read_back_as_float16(prepared, tmp_path):
    fp16 = main(["export", "--prepared_dataset_dir", str(prepared), "--output", str(tmp_path / "a.tar.xz")])
    int8 = main(["export", "--prepared_dataset_dir", str(prepared), "--output", str(tmp_path / "b.tar.xz"),
                 "--latents_dtype", "int8"])  # fmt: skip
    assert int8["rows"] == 24 and int8["megabytes"] < fp16["megabytes"]
    unpacked = unpack([tmp_path / "b.tar.xz"], tmp_path / "unpacked")
    assert load_prepared_dataset(unpacked).dataset.features["latents"].dtype == "int8"
    train_dir, held_out = hold_out(unpacked, tmp_path / "sprint", num_rows=4)
    original = load_prepared_dataset(prepared, load_codec_weights=False).dataset.with_format("numpy")
    by_text = {original[i]["text"]: original[i]["latents"] for i in range(len(original))}
    train = load_prepared_dataset(train_dir).dataset
    assert train.features["latents"].dtype == "float16" and len(train) == 20
    for row in (*train.with_format("numpy").select(range(3)), *held_out.with_format("numpy").select(range(2))):
        expected = np.clip(by_text[row["text"]], -3, 3)
        np.testing.assert_allclose(row["latents"].astype(np.float32), expected, atol=INT8_LATENT_STEP / 2 + 2e-3)


def test_pack_refuses_too_many_parts(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "noise.bin").write_bytes(np.random.default_rng(0).bytes(3 * 2**20))  # incompressible
    with pytest.raises(ValueError, match="more than the 2 allowed"):
        pack_folder(folder, tmp_path / "out.tar.xz", max_part_bytes=2**20, max_parts=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]
    parts = pack_folder(folder, tmp_path / "out.tar.xz", max_part_bytes=2**20, max_parts=4)
    assert [p.name for p in parts] == [f"out.tar.xz.part-0{i}" for i in range(4)]
    assert all(p.stat().st_size <= 2**20 for p in parts)
    unpack(parts, tmp_path / "again")
    assert (tmp_path / "again" / "noise.bin").read_bytes() == (folder / "noise.bin").read_bytes()


def test_sprint_trains_for_its_budget_and_packs_the_pipeline(prepared, tmp_path):
    archive = tmp_path / "prepared.tar.xz"
    main(["export", "--prepared_dataset_dir", str(prepared), "--output", str(archive)])
    out = tmp_path / "sprint"
    # its own process, as on the GPU machine (Accelerate's state is per process: bf16 here, fp32 in other tests)
    cmd = [sys.executable, str(SCRIPT), "run", "--prepared", str(archive), "--output_dir", str(out),
           "--minutes", str(20 / 60), "--validation_rows", "4", "--pipeline_config", "tiny", "--train_batch_size", "4",
           "--num_threads", "1"]  # fmt: skip
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1")
    )
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout
    report = json.loads((out / "sprint_report.json").read_text())
    assert not list((out / "prepared" / "dataset").glob("cache-*"))  # the split left the unpacked data as it was
    assert "steps/s:" in printed and "validation loss (4 held-out rows):" in printed
    assert report["train_seconds"] >= 20 and 0 < report["steps"] < 1_000_000  # stopped by the budget
    assert report["train_rows"] == 20 and report["validation_rows"] == 4
    assert np.isfinite(report["validation_loss"]["loss"]) and "denoising_loss" in report["validation_loss"]
    assert 1 <= len(report["parts"]) <= 8 and max(report["parts"].values()) <= 15 * 2**20
    # the stop saved a checkpoint (resumable) that stays behind, out of the packed parts
    assert (out / "train" / f"checkpoint-{report['steps']}").is_dir()

    pipe = FlashSpeechPipeline.from_pretrained(unpack(sorted(out.glob("pipeline.tar.xz.part-*")), tmp_path / "back"))
    trained = FlashSpeechPipeline.from_pretrained(out / "train")
    for name in ("prior_encoder", "prosody_generator", "denoiser"):
        for key, value in getattr(trained, name).state_dict().items():
            assert torch.equal(getattr(pipe, name).state_dict()[key], value), (name, key)
    assert not list((tmp_path / "back").glob("checkpoint-*"))
