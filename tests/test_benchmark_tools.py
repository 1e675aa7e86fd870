import json
import os
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCHMARKS)

import benchmark_memory  # noqa: E402
import plot_rtf_vs_nfe  # noqa: E402


def _row(system, nfe, rtf, seconds=5.0, batch=1):
    return {"system": system, "batch_size": batch, "target_seconds": seconds, "nfe": nfe, "rtf": rtf}


def test_plot_collects_matching_rows_and_writes_png(tmp_path):
    fp32 = [_row("FlashSpeech paper", n, 0.5 * n) for n in (4, 1, 2)] + [_row("FlashSpeech paper", 2, 9.0, 2.0)]
    bf16 = [_row("FlashSpeech paper bfloat16", n, 0.2 * n) for n in (1, 2)] + [
        _row("FlashSpeech paper", 2, 7, batch=8)
    ]
    peer = [_row("flow-matching peer (F5-TTS size, CFG)", n, 3.0 * n) for n in (16, 32)]
    paths = []
    for name, rows in (("a", fp32), ("b", bf16 + peer)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps({"rows": rows}))
    lines = plot_rtf_vs_nfe.collect([str(p) for p in paths], seconds=5.0, batch_size=1)
    assert lines["FlashSpeech paper"] == [(1, 0.5), (2, 1.0), (4, 2.0)]  # sorted; other lengths and batches left out
    assert lines["FlashSpeech paper bfloat16"] == [(1, 0.2), (2, 0.4)]
    assert [n for n, _ in lines["flow-matching peer (F5-TTS size, CFG)"]] == [16, 32]
    output = tmp_path / "plot.png"
    plot_rtf_vs_nfe.main([str(p) for p in paths] + ["--output", str(output)])
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match="No rows"):
        plot_rtf_vs_nfe.collect([str(paths[0])], seconds=20.0, batch_size=1)


def test_memory_benchmark_reports_each_option_from_a_fresh_process(tmp_path):
    output = tmp_path / "memory.md"
    rows = benchmark_memory.main(["--config", "tiny", "--options", "float32", "int8", "bfloat16-checkpoint",
                                  "--num_threads", "1", "--seconds", "1", "--output", str(output)])  # fmt: skip
    # the child asserts the networks' dtype: a bfloat16 checkpoint loads in bfloat16 without a dtype argument
    assert [r["option"] for r in rows] == ["float32", "int8", "bfloat16-checkpoint"]
    for r in rows:
        assert 0 < r["after_import_mb"] <= r["after_load_mb"] <= r["after_synthesis_mb"]
        assert r["audio_s"] > 0 and r["synthesis_s"] > 0
    table = output.read_text()
    assert table.count("| float32 |") == 1 and "| int8 |" in table and "| 1.00x / " in table
    assert json.loads(output.with_suffix(".json").read_text())["config"] == "tiny"
