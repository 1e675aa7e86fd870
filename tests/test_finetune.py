"""Fine-tuning with train_flashspeech.py: frozen components stay bit-identical, vocabulary extension, bad inputs."""

from __future__ import annotations

import pytest
import torch
from test_training import base_args, make_prepared_dir, train

from flashspeech_hf import FlashSpeechPipeline, FlashSpeechTokenizer, MelCodec

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
