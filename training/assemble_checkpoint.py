"""Assembles a shippable checkpoint: a trained pipeline, optionally a fine-tuned vocoder's weights, cast for storage.

The pipeline comes from `train_flashspeech.py` (its `--output_dir` after stage 2). `--vocoder` takes the weights of a
`train_vocoder.py` codec into the pipeline's codec, keeping the pipeline's latent statistics (the prepared dataset's:
the mel front-end has no weights, so the latents do not depend on the vocoder). The models are cast to
`--dtype` (float16 by default: half the bytes; they load as float32 unless `dtype=` is given) and saved with
`save_pretrained` into a temporary folder renamed to `--output_dir` when complete: an interrupted run leaves the
previous checkpoint in place.

    python training/assemble_checkpoint.py --pipeline outputs/stage2 --vocoder outputs/vocoder \
        --output_dir checkpoints/flashspeech-demo
"""

from __future__ import annotations

import argparse
import os
import shutil

import torch

from flashspeech_hf import FlashSpeechPipeline, MelCodec
from flashspeech_hf.pipelines.pipeline_loading_utils import record_saved_dtype

STATISTICS = ("latent_mean", "latent_std")


def assemble(
    pipeline: str, output_dir: str, vocoder: str | None = None, dtype: str = "float16"
) -> FlashSpeechPipeline:
    """Loads `pipeline`, puts in the `vocoder`'s weights, casts to `dtype` and saves to `output_dir` atomically."""
    pipe = FlashSpeechPipeline.from_pretrained(pipeline)
    if vocoder is not None:
        if not isinstance(pipe.codec, MelCodec):
            raise ValueError(f"--vocoder needs a pipeline with a MelCodec, got {type(pipe.codec).__name__}.")
        weights = {k: v for k, v in MelCodec.from_pretrained(vocoder).state_dict().items() if k not in STATISTICS}
        result = pipe.codec.load_state_dict(weights, strict=False)
        if result.unexpected_keys or set(result.missing_keys) - set(STATISTICS):
            raise ValueError(
                f"The vocoder {vocoder} does not match the pipeline's codec: missing "
                f"{sorted(set(result.missing_keys) - set(STATISTICS))}, unexpected {sorted(result.unexpected_keys)}."
            )
    pipe.to(getattr(torch, dtype))  # what must stay float32 stays float32 (flashspeech_hf.precision)
    tmp = os.path.join(os.path.dirname(os.path.abspath(output_dir)), f".{os.path.basename(output_dir)}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    old = tmp[: -len(".tmp")] + ".old"
    try:
        pipe.save_pretrained(tmp)
        # storage precision only: the checkpoint loads as float32 unless `dtype=` is given (save_pretrained records a
        # low-precision pipeline's dtype, which from_pretrained would otherwise load it in)
        record_saved_dtype(tmp, torch.float32)
        if os.path.exists(output_dir):
            shutil.rmtree(old, ignore_errors=True)
            os.replace(output_dir, old)  # the previous checkpoint is moved aside, not deleted, until the new one is in
        os.replace(tmp, output_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return pipe


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", required=True, help="A saved FlashSpeechPipeline (train_flashspeech.py output).")
    parser.add_argument("--vocoder", default=None, help="A train_vocoder.py codec whose weights replace the codec's.")
    parser.add_argument("--dtype", choices=["float16", "bfloat16", "float32"], default="float16")
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args(argv)
    assemble(args.pipeline, args.output_dir, args.vocoder, args.dtype)
    print(f"Saved {args.output_dir}")


if __name__ == "__main__":
    main()
