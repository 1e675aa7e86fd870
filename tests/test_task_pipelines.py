"""The three task pipelines through the shared `PipelineTesterMixin` (tests/pipeline_tester_mixin.py)."""

from pipeline_tester_mixin import RATE, SOURCE_TEXT, PipelineTesterMixin, reference_audio, source_audio
from speech_data import gen

from flashspeech_hf import FlashSpeechEditPipeline, FlashSpeechPipeline, FlashSpeechVoiceConversionPipeline


class TestFlashSpeechPipeline(PipelineTesterMixin):
    pipeline_class = FlashSpeechPipeline

    def get_inputs(self, seed: int = 0) -> dict:
        return {
            "text": SOURCE_TEXT,
            "prompt_audio": reference_audio(),
            "prompt_sampling_rate": RATE,
            "generator": gen(seed),
        }

    def get_batch_inputs(self) -> tuple[dict, list[dict]]:
        texts, prompt = [SOURCE_TEXT, "A dog."], reference_audio()
        batched = {"text": texts, "prompt_audio": prompt, "prompt_sampling_rate": RATE, "generator": [gen(3), gen(4)]}
        singles = [
            {"text": t, "prompt_audio": prompt, "prompt_sampling_rate": RATE, "generator": gen(s)}
            for t, s in zip(texts, (3, 4))
        ]
        return batched, singles


class TestFlashSpeechVoiceConversionPipeline(PipelineTesterMixin):
    pipeline_class = FlashSpeechVoiceConversionPipeline

    def get_inputs(self, seed: int = 0) -> dict:
        return {
            "source_audio": source_audio(),
            "source_text": SOURCE_TEXT,
            "reference_audio": reference_audio(),
            "sampling_rate": RATE,
            "strength": 1.0,  # every step runs (a low strength may start below the two-step level)
            "generator": gen(seed),
        }

    def get_batch_inputs(self) -> tuple[dict, list[dict]]:
        # one waveform per call: a list of one generator is the batch of one
        inputs = self.get_inputs()
        return {**inputs, "generator": [gen(5)]}, [{**inputs, "generator": gen(5)}]


class TestFlashSpeechEditPipeline(PipelineTesterMixin):
    pipeline_class = FlashSpeechEditPipeline

    def get_inputs(self, seed: int = 0) -> dict:
        return {
            "audio": source_audio(),
            "original_text": SOURCE_TEXT,
            "new_text": "The black dog sat on the mat.",
            "sampling_rate": RATE,
            "generator": gen(seed),
        }

    def get_batch_inputs(self) -> tuple[dict, list[dict]]:
        inputs = self.get_inputs()
        return {**inputs, "generator": [gen(5)]}, [{**inputs, "generator": gen(5)}]
