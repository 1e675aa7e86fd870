import pytest
import torch
from assemble_checkpoint import assemble, main
from safetensors.torch import load_file

from flashspeech_hf import FlashSpeechPipeline, MelCodec


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    pipe = FlashSpeechPipeline.from_named_config("tiny")
    pipe.codec.latent_mean.fill_(0.5)  # statistics of a "prepared dataset"
    pipe.save_pretrained(tmp_path / "pipeline")
    vocoder = MelCodec(**{k: v for k, v in pipe.codec.config.items() if not k.startswith("_")})  # other weights
    vocoder.latent_mean.fill_(-3.0)
    vocoder.save_pretrained(tmp_path / "vocoder")
    return pipe, vocoder, tmp_path


def test_assembled_checkpoint_has_the_vocoder_weights_the_pipeline_statistics_and_half_the_bytes(saved):
    pipe, vocoder, tmp_path = saved
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale.txt").write_text("the previous checkpoint")
    main(["--pipeline", str(tmp_path / "pipeline"), "--vocoder", str(tmp_path / "vocoder"),
          "--output_dir", str(tmp_path / "out")])  # fmt: skip
    assert not (tmp_path / "out" / "stale.txt").exists()  # replaced as a whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "pipeline", "vocoder"]  # no temporary folder left
    denoiser = load_file(tmp_path / "out" / "denoiser" / "diffusion_pytorch_model.safetensors")
    assert {t.dtype for t in denoiser.values()} == {torch.float16}
    loaded = FlashSpeechPipeline.from_pretrained(tmp_path / "out")
    codec = loaded.codec.state_dict()
    for name, value in vocoder.state_dict().items():
        if name in ("latent_mean", "latent_std"):
            assert torch.equal(codec[name], pipe.codec.state_dict()[name])  # the pipeline's statistics, in float32
        elif value.is_floating_point():  # rounded to float16, or exact where precision keeps float32 (the head)
            assert torch.equal(codec[name], value) or torch.equal(codec[name], value.half().float()), name
    assert loaded.denoiser.dtype == torch.float32  # stored in float16, loaded in float32
    weight = loaded.denoiser.backbone.in_proj.weight
    assert torch.equal(weight.float(), pipe.denoiser.backbone.in_proj.weight.half().float())


def test_a_vocoder_of_another_shape_is_refused_and_the_previous_checkpoint_kept(saved):
    pipe, _, tmp_path = saved
    config = {k: v for k, v in pipe.codec.config.items() if not k.startswith("_")}
    config["vocoder_dim"] *= 2
    MelCodec(**config).save_pretrained(tmp_path / "other")
    assemble(str(tmp_path / "pipeline"), str(tmp_path / "out"))
    before = sorted(p.name for p in (tmp_path / "out").iterdir())
    with pytest.raises((ValueError, RuntimeError)):
        assemble(str(tmp_path / "pipeline"), str(tmp_path / "out"), str(tmp_path / "other"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == before
