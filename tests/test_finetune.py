"""Fine-tuning with train_flashspeech.py: frozen components stay bit-identical, vocabulary extension, the aligner the
saved pipeline carries, LoRA adapters, bad inputs."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from speech_data import make_prompt
from test_training import base_args, make_prepared_dir, train

from flashspeech_hf import FlashSpeechAligner, FlashSpeechPipeline, FlashSpeechTokenizer, MelCodec

NEW_PHONEMES = ["ʀ", "ɥ"]


@pytest.fixture(scope="module")
def base_pipeline(tmp_path_factory):
    """A saved tiny pipeline whose codec matches the prepared data's."""
    root = tmp_path_factory.mktemp("base")
    prepared = make_prepared_dir(root / "prep")
    torch.manual_seed(0)
    codec = MelCodec.from_pretrained(str(prepared / "codec"))
    pipe = FlashSpeechPipeline.from_named_config("tiny", tokenizer=FlashSpeechTokenizer(), codec=codec)
    pipe.save_pretrained(str(root / "pipe"))
    return root / "pipe", prepared


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_finetune_trains_selected_components_and_keeps_the_rest_bit_identical(base_pipeline, tmp_path):
    path, prepared = base_pipeline
    before = FlashSpeechPipeline.from_pretrained(path)
    out = tmp_path / "ft"
    train.main(base_args(prepared, out, "--pretrained_model_name_or_path", str(path), "--train_components",
                         "denoiser", "--max_train_steps", "3", "--checkpointing_steps", "100",
                         "--adversarial_start_step", "1000", "--language", "en-gb"))  # fmt: skip
    after = FlashSpeechPipeline.from_pretrained(out)
    for name in ("prior_encoder", "prosody_generator", "codec"):
        a, b = state(getattr(before, name)), state(getattr(after, name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    a, b = state(before.denoiser), state(after.denoiser)
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert after.tokenizer.language == "en-gb"


def test_vocabulary_extension_keeps_old_ids_and_rows(base_pipeline, tmp_path):
    path, _ = base_pipeline
    data_tokenizer = FlashSpeechTokenizer()
    new_ids = data_tokenizer.add_phonemes(NEW_PHONEMES)
    prepared = make_prepared_dir(tmp_path / "prep", num_rows=4, tokenizer=data_tokenizer, phoneme_ids=[5, 6, *new_ids])
    before = FlashSpeechPipeline.from_pretrained(path)
    old_vocab, old_rows = before.tokenizer.get_vocab(), before.prior_encoder.embed_tokens.weight.detach().clone()
    common = ["--pretrained_model_name_or_path", str(path), "--train_components", "denoiser", "--max_train_steps", "1",
              "--checkpointing_steps", "100", "--adversarial_start_step", "1000"]  # fmt: skip

    # without --extend_vocabulary: unknown phonemes are counted and reported, the vocabulary is unchanged
    summary = train.main(base_args(prepared, tmp_path / "no_ext", *common))
    assert set(summary["unknown_phonemes"]) == set(NEW_PHONEMES) and summary["added_phoneme_ids"] == []
    assert FlashSpeechPipeline.from_pretrained(tmp_path / "no_ext").tokenizer.get_vocab() == old_vocab

    summary = train.main(base_args(prepared, tmp_path / "ext", *common, "--extend_vocabulary"))
    after = FlashSpeechPipeline.from_pretrained(tmp_path / "ext")
    vocab = after.tokenizer.get_vocab()
    assert all(vocab[s] == i for s, i in old_vocab.items()) and all(s in vocab for s in NEW_PHONEMES)
    weight = after.prior_encoder.embed_tokens.weight
    assert weight.shape[0] == len(after.tokenizer) == len(old_vocab) + len(NEW_PHONEMES)
    assert torch.equal(weight[: old_rows.shape[0]], old_rows)


def test_finetune_rejects_contradicting_sizes(base_pipeline, tmp_path):
    path, prepared = base_pipeline
    args = base_args(prepared, tmp_path / "o", "--pretrained_model_name_or_path", str(path))
    with pytest.raises(ValueError, match="contradict the pretrained pipeline"):
        train.main([*args, "--model_overrides", '{"denoiser": {"num_layers": 7}}'])
    with pytest.raises(ValueError, match="stage 2 trains only"):
        train.main([*args, "--stage", "2", "--train_components", "denoiser"])


def test_finetune_carries_the_data_aligner_in_the_pipeline_vocabulary(base_pipeline, tmp_path):
    """The prepared data's aligner (same latent statistics) wins; its rows move to the pipeline's ids by symbol."""
    path, _ = base_pipeline
    data_tokenizer = FlashSpeechTokenizer()
    new_ids = data_tokenizer.add_phonemes(NEW_PHONEMES)  # in this order; the pipeline adds them sorted (swapped)
    prepared = make_prepared_dir(tmp_path / "prep", num_rows=4, tokenizer=data_tokenizer, phoneme_ids=[5, 6, *new_ids])
    summary = train.main(base_args(prepared, tmp_path / "ext", "--pretrained_model_name_or_path", str(path),
                                   "--train_components", "denoiser", "--max_train_steps", "1", "--checkpointing_steps",
                                   "100", "--adversarial_start_step", "1000", "--extend_vocabulary"))  # fmt: skip
    assert summary["aligner"] == "prepared data"
    after = FlashSpeechPipeline.from_pretrained(tmp_path / "ext")
    data_aligner = FlashSpeechAligner.from_pretrained(prepared / "aligner")
    vocab, data_vocab = after.tokenizer.get_vocab(), data_tokenizer.get_vocab()
    assert vocab[NEW_PHONEMES[0]] != data_vocab[NEW_PHONEMES[0]]
    assert after.aligner.config.vocab_size == len(after.tokenizer)
    for symbol in [*NEW_PHONEMES, *data_tokenizer.convert_ids_to_tokens([5, 6])]:
        assert torch.equal(
            after.aligner.embed_tokens.weight[vocab[symbol]], data_aligner.embed_tokens.weight[data_vocab[symbol]]
        ), symbol
    alignment = after.align(make_prompt(2.0), "Hello there.", sampling_rate=16000)
    assert int(alignment.durations.sum()) == alignment.latents.shape[-1]


def test_durations_from_another_aligner_are_detected(base_pipeline, tmp_path):
    path, prepared = base_pipeline
    pipe_aligner = FlashSpeechPipeline.from_pretrained(path).aligner
    assert train.durations_from_another_aligner(str(prepared / "aligner"), pipe_aligner)  # trained apart
    pipe_aligner.save_pretrained(tmp_path / "same")
    assert not train.durations_from_another_aligner(str(tmp_path / "same"), pipe_aligner)
    assert not train.durations_from_another_aligner(None, pipe_aligner)
    assert not train.durations_from_another_aligner(str(prepared / "aligner"), None)


@pytest.mark.parametrize("case", ["data_without_aligner", "other_latent_statistics"])
def test_finetune_keeps_the_pretrained_aligner_and_grows_it(base_pipeline, tmp_path, case):
    path, _ = base_pipeline
    data_tokenizer = FlashSpeechTokenizer()
    new_ids = data_tokenizer.add_phonemes(NEW_PHONEMES)
    prepared = make_prepared_dir(tmp_path / "prep", num_rows=4, tokenizer=data_tokenizer, phoneme_ids=[5, *new_ids],
                                 with_aligner=case == "other_latent_statistics")  # fmt: skip
    if case == "other_latent_statistics":
        codec = MelCodec.from_pretrained(str(prepared / "codec"))
        codec.set_latent_statistics(codec.latent_mean + 0.1, codec.latent_std * 1.2)
        codec.save_pretrained(str(prepared / "codec"))
    before = FlashSpeechPipeline.from_pretrained(path)
    summary = train.main(base_args(prepared, tmp_path / "o", "--pretrained_model_name_or_path", str(path),
                                   "--train_components", "denoiser", "--max_train_steps", "1", "--checkpointing_steps",
                                   "100", "--adversarial_start_step", "1000", "--extend_vocabulary"))  # fmt: skip
    assert summary["aligner"] == "pretrained pipeline"
    after = FlashSpeechPipeline.from_pretrained(tmp_path / "o").aligner
    old = before.aligner.state_dict()
    assert after.config.vocab_size == len(before.tokenizer) + len(NEW_PHONEMES)
    for key, value in after.state_dict().items():
        assert torch.equal(value[: old[key].shape[0]] if key == "embed_tokens.weight" else value, old[key]), key


# ----------------------------------------------------------------------------------------------------------------
# LoRA
# ----------------------------------------------------------------------------------------------------------------


def lora_args(prepared, out, base, *extra):
    return base_args(prepared, out, "--pretrained_model_name_or_path", str(base), "--use_lora", "--lora_rank", "2",
                     "--learning_rate", "1e-2", *extra)  # fmt: skip


def random_denoiser_inputs(denoiser, frames=24, prompt_frames=8):
    g = torch.Generator().manual_seed(0)
    config = denoiser.config
    return (
        torch.randn(2, config.latent_dim, frames, generator=g),
        torch.tensor([0.5, 20.0]),
        torch.randn(2, frames, config.condition_dim, generator=g),
        torch.randn(2, prompt_frames, config.prompt_dim, generator=g),
        torch.ones(2, frames, dtype=torch.bool),
        torch.ones(2, prompt_frames, dtype=torch.bool),
    )


@pytest.fixture(scope="module")
def lora_run(base_pipeline, tmp_path_factory):
    path, prepared = base_pipeline
    out = tmp_path_factory.mktemp("lora") / "out"
    # the adversarial loss from step 2: its adaptive weight is measured at the output layer's LoRA B matrix
    summary = train.main(lora_args(prepared, out, path, "--max_train_steps", "4", "--checkpointing_steps", "2",
                                   "--adversarial_start_step", "2"))  # fmt: skip
    return path, prepared, out, summary


def test_lora_trains_only_low_rank_adapters(lora_run):
    path, prepared, out, summary = lora_run
    assert summary["global_step"] == 4 and all(h["adv_weight"] > 0 for h in summary["loss_history"][2:])
    base, tuned = FlashSpeechPipeline.from_pretrained(path), FlashSpeechPipeline.from_pretrained(out)
    base.aligner = FlashSpeechAligner.from_pretrained(prepared / "aligner")  # the data's aligner (same statistics)
    for name in ("prosody_generator", "codec", "aligner"):
        a, b = state(getattr(base, name)), state(getattr(tuned, name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    num_adapter_values = 0
    for name in ("prior_encoder", "denoiser"):
        adapter = load_file(out / "lora" / name / "adapter_model.safetensors")
        config = json.loads((out / "lora" / name / "adapter_config.json").read_text())
        targets = set(config["target_modules"])
        assert adapter and all(".lora_A." in k or ".lora_B." in k for k in adapter)
        num_adapter_values += sum(v.numel() for v in adapter.values())
        if name == "denoiser":  # Conv1d with a kernel of 3 is adapted, the dilated one is not
            assert "backbone.layers.0.conv" in targets and "backbone.layers.1.conv" not in targets
        a, b = state(getattr(base, name)), state(getattr(tuned, name))
        assert a.keys() == b.keys()
        changed = 0
        for key in a:
            module, leaf = key.rsplit(".", 1)
            if module in targets and leaf == "weight":
                delta = (b[key] - a[key]).flatten(1).double()
                singular_values = torch.linalg.svdvals(delta)  # merged = base + B @ A: rank 2 up to float32 rounding
                assert len(singular_values) <= 2 or singular_values[2] <= 1e-3 * singular_values[0] + 1e-6, key
                changed += bool(delta.abs().max() > 0)
            else:
                assert torch.equal(a[key], b[key]), f"{name}.{key} is not adapted but changed"
        assert changed > 0, name
    # only the adapters were in the optimizer
    assert summary["num_trainable_parameters"] == num_adapter_values


def test_lora_adapter_loaded_on_the_base_reproduces_the_tuned_model(lora_run):
    path, _, out, _ = lora_run
    tuned = FlashSpeechPipeline.from_pretrained(out)
    pipe = FlashSpeechPipeline.from_pretrained(path)
    unmerged = PeftModel.from_pretrained(FlashSpeechPipeline.from_pretrained(path).denoiser, out / "lora" / "denoiser")
    # the documented loading code
    for name in ("prior_encoder", "denoiser"):
        setattr(pipe, name, PeftModel.from_pretrained(getattr(pipe, name), out / "lora" / name).merge_and_unload())
    inputs = random_denoiser_inputs(tuned.denoiser)
    with torch.no_grad():
        expected = tuned.denoiser(*inputs).sample
        torch.testing.assert_close(pipe.denoiser(*inputs).sample, expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(unmerged(*inputs).sample, expected, rtol=1e-5, atol=1e-5)
        base_out = FlashSpeechPipeline.from_pretrained(path).denoiser(*inputs).sample
    assert (base_out - expected).abs().max() > 1e-4  # the adapters do change the model
    for p in (pipe, tuned):
        p.set_progress_bar_config(disable=True)
    audio = [p("Hello there.", make_prompt(), prompt_sampling_rate=16000, generator=torch.Generator().manual_seed(0))
             for p in (pipe, tuned)]  # fmt: skip
    np.testing.assert_allclose(audio[0].audios, audio[1].audios, rtol=1e-4, atol=1e-4)


def test_lora_resume_from_an_adapter_checkpoint(lora_run, tmp_path):
    path, prepared, out, full = lora_run
    assert sorted(os.listdir(out / "checkpoint-2" / "denoiser")) == ["README.md", "adapter_config.json",
                                                                     "adapter_model.safetensors"]  # fmt: skip
    (tmp_path / "b").mkdir()
    shutil.copytree(out / "checkpoint-2", tmp_path / "b" / "checkpoint-2")
    resumed = train.main(lora_args(prepared, tmp_path / "b", path, "--max_train_steps", "4", "--checkpointing_steps",
                                   "2", "--adversarial_start_step", "2", "--resume_from_checkpoint", "latest"))  # fmt: skip
    assert len(resumed["loss_history"]) == 2
    for a, b in zip(full["loss_history"][2:], resumed["loss_history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--extend_vocabulary",), "cannot be combined with --extend_vocabulary"),
        (("--train_components", "prosody_generator"), "adapts only"),
        (("--train_components", "denoiser", "--lora_target_modules", "layers.1.conv"), "ignores dilation"),
        (("--lora_target_modules", "no_such_layer"), "matches no"),
    ],
)
def test_lora_bad_inputs(base_pipeline, tmp_path, extra, message):
    path, prepared = base_pipeline
    with pytest.raises(ValueError, match=message):
        train.main(lora_args(prepared, tmp_path / "o", path, "--max_train_steps", "1", *extra))
    with pytest.raises(ValueError, match="pretrained pipeline in stage 1"):
        train.main(base_args(prepared, tmp_path / "o", "--use_lora"))
