"""The loading and saving steps of `flashspeech_hf.pipelines.pipeline_loading_utils`, one by one."""

import json
import logging

import pytest
import torch
from safetensors.torch import save_file

from flashspeech_hf.pipelines.pipeline_loading_utils import (
    check_checkpoint,
    check_load_kwargs,
    check_saveable,
    own_aligned_weights,
    read_safetensors_header,
    resolve_pretrained_path,
    weight_files,
)
from flashspeech_hf.precision import quantize_dynamic_int8


def misaligned_copy(tensor: torch.Tensor) -> torch.Tensor:
    """A view of `tensor`'s values whose data pointer is not 64-byte aligned (as memory-mapped weights mostly are)."""
    storage = torch.empty(tensor.numel() + 64, dtype=tensor.dtype)
    offset = next(i for i in range(1, 64) if (storage.data_ptr() + i * tensor.element_size()) % 64)
    view = storage[offset : offset + tensor.numel()].view(tensor.shape)
    view.copy_(tensor)
    return view


def test_read_safetensors_header_and_bad_files(tmp_path):
    tensors = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(4, dtype=torch.bfloat16)}
    save_file(tensors, tmp_path / "model.safetensors")
    header_size, header = read_safetensors_header(str(tmp_path / "model.safetensors"))
    assert header["a"]["dtype"] == "F32" and header["a"]["shape"] == [2, 3]
    assert header["b"]["dtype"] == "BF16"
    assert (tmp_path / "model.safetensors").stat().st_size == 8 + header_size + 6 * 4 + 4 * 2
    (tmp_path / "short.safetensors").write_bytes(b"\x01\x02")
    with pytest.raises(ValueError, match="shorter than"):
        read_safetensors_header(str(tmp_path / "short.safetensors"))
    (tmp_path / "cut.safetensors").write_bytes((100).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValueError, match="truncated"):
        read_safetensors_header(str(tmp_path / "cut.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes((4).to_bytes(8, "little") + b"\xff\xfe{[")
    with pytest.raises(ValueError, match="no valid safetensors header"):
        read_safetensors_header(str(tmp_path / "junk.safetensors"))


def test_weight_files_picks_the_variant_and_shards(tmp_path):
    for name in (
        "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "notes.safetensors", "model.bin",
    ):  # fmt: skip
        (tmp_path / name).write_bytes(b"")
    names = [p.rsplit("/", 1)[-1] for p in weight_files(str(tmp_path))]
    assert names == [
        "diffusion_pytorch_model.safetensors", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    ]  # fmt: skip
    assert [p.rsplit("/", 1)[-1] for p in weight_files(str(tmp_path), "fp16")] == [
        "diffusion_pytorch_model.fp16.safetensors"
    ]
    assert weight_files(str(tmp_path / "absent")) == []


def test_own_aligned_weights_reads_misaligned_weights_from_the_file(tmp_path):
    module = torch.nn.Linear(5, 3)
    module.register_buffer("extra", torch.randn(7))  # not in the file: cloned
    save_file({k: v for k, v in module.state_dict().items() if k != "extra"}, tmp_path / "model.safetensors")
    expected = {k: v.clone() for k, v in module.state_dict().items()}
    module.weight.data = misaligned_copy(module.weight.data)
    module.extra = misaligned_copy(module.extra)
    assert module.weight.data_ptr() % 64 and module.extra.data_ptr() % 64
    with torch.no_grad():
        module.weight.data[0, 0] += 1.0  # the file's value wins for weights it holds
    own_aligned_weights(module, str(tmp_path))
    for key, tensor in module.state_dict().items():
        assert tensor.data_ptr() % 64 == 0, key
    assert torch.equal(module.weight, expected["weight"])
    assert torch.equal(module.extra, expected["extra"])


def test_own_aligned_weights_refuses_a_size_mismatch(tmp_path):
    module = torch.nn.Linear(4, 2, bias=False)
    save_file({"weight": torch.zeros(2, 4)}, tmp_path / "model.safetensors")
    raw = (tmp_path / "model.safetensors").read_bytes()
    header_size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_size])
    header["weight"]["data_offsets"] = [0, 16]  # half the bytes the shape needs
    text = json.dumps(header, separators=(",", ":")).encode().ljust(header_size)
    assert len(text) == header_size
    (tmp_path / "model.safetensors").write_bytes(raw[:8] + text + raw[8 + header_size :])
    module.weight.data = misaligned_copy(module.weight.data)
    with pytest.raises(ValueError, match="size of weight"):
        own_aligned_weights(module, str(tmp_path))


def test_check_load_kwargs():
    kwargs = {"quantization": "int8", "low_cpu_mem_usage": False}
    assert check_load_kwargs(kwargs) == "int8"
    assert kwargs == {"low_cpu_mem_usage": True}
    with pytest.raises(ValueError, match="`quantization` must be"):
        check_load_kwargs({"quantization": "int4"})
    with pytest.raises(ValueError, match="cannot be combined with dtype"):
        check_load_kwargs({"quantization": "int8", "dtype": torch.bfloat16})
    assert check_load_kwargs({"quantization": "int8", "torch_dtype": torch.float32}) == "int8"


def test_resolve_pretrained_path(tmp_path, caplog):
    assert resolve_pretrained_path(tmp_path, {}, "P") == str(tmp_path)
    with pytest.raises(ValueError, match="not a folder with a saved P, nor a Hub repository id"):
        resolve_pretrained_path(tmp_path / "missing", {}, "P")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="nor a Hub repository id"):
        resolve_pretrained_path(tmp_path / "file", {}, "P")
    kwargs = {"cache_dir": str(tmp_path / "hub"), "revision": "main", "dtype": torch.float32}
    with pytest.raises(OSError, match="Could not resolve P 'org/absent'"):  # offline, nothing cached
        resolve_pretrained_path("org/absent", kwargs, "P")
    assert kwargs == {"dtype": torch.float32}  # the download arguments were taken


def test_check_checkpoint_names_what_is_missing(tmp_path):
    required, optional = ["codec", "denoiser"], ["aligner"]
    with pytest.raises(ValueError, match="has no model_index.json"):
        check_checkpoint(str(tmp_path), "P", required, optional)
    index = tmp_path / "model_index.json"
    index.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        check_checkpoint(str(tmp_path), "P", required, optional)
    index.write_text(json.dumps({"codec": ["m", "C"], "denoiser": [None, None], "aligner": ["m", "A"]}))
    with pytest.raises(ValueError, match=r"lacks the component\(s\) \['denoiser'\]"):
        check_checkpoint(str(tmp_path), "P", required, optional)
    index.write_text(json.dumps({"codec": ["m", "C"], "denoiser": ["m", "D"], "aligner": ["m", "A"]}))
    (tmp_path / "codec").mkdir()
    (tmp_path / "denoiser").mkdir()
    with pytest.raises(ValueError, match=r"folder\(s\) of component\(s\) \['aligner'\]"):
        check_checkpoint(str(tmp_path), "P", required, optional)
    (tmp_path / "aligner").mkdir()
    check_checkpoint(str(tmp_path), "P", required, optional)


def test_check_saveable_names_quantized_components():
    float_model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    check_saveable({"a": float_model, "tokenizer": object()})
    quantized = quantize_dynamic_int8(torch.nn.Sequential(torch.nn.Linear(4, 4)))
    with pytest.raises(ValueError, match=r"\['b'\] are int8 dynamically quantized"):
        check_saveable({"a": float_model, "b": quantized})


def test_low_cpu_mem_usage_false_warns(caplog):
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING):
            check_load_kwargs({"low_cpu_mem_usage": False})
    finally:
        diffusers_logging.disable_propagation()
    assert "low_cpu_mem_usage=True" in caplog.text
