"""Audio I/O under hostile input: decompression bombs, outputs past 4 GiB, failed writes, stale temporary files."""

import collections
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
from speech_data import make_prompt

import flashspeech_hf.audio as audio_io
from flashspeech_hf.audio import (
    MAX_CHANNELS,
    OutputError,
    check_audio_input,
    check_output_file,
    check_output_folder,
    load_audio,
    open_audio_for_writing,
    read_audio_file,
    remove_stale_partials,
    write_audio,
)


def test_many_channel_ogg_is_refused_from_its_header(pipe, tmp_path):
    # a decompression bomb in miniature: 255 channels of Ogg Vorbis in a few kilobytes
    bomb = tmp_path / "bomb.ogg"
    sf.write(bomb, np.zeros((48_000, 255), dtype=np.float32), 48_000, format="OGG", subtype="VORBIS")
    assert os.path.getsize(bomb) < 20_000
    for refuse in (lambda: check_audio_input(str(bomb)), lambda: load_audio(str(bomb)), lambda: read_audio_file(bomb)):
        with pytest.raises(ValueError, match=rf"has 255 channels; at most {MAX_CHANNELS}"):
            refuse()
    with pytest.raises(ValueError, match="255 channels"):  # the pipeline's check, before any work
        pipe("Hello there.", str(bomb))


def test_files_are_mixed_down_as_they_are_read(tmp_path):
    rate, channels = 48_000, MAX_CHANNELS
    samples = np.stack([make_prompt(5.0, rate, seed=c) for c in range(channels)], axis=1)
    path = tmp_path / "surround.wav"
    sf.write(path, samples, rate, subtype="FLOAT")
    tracemalloc.start()
    try:
        waveform, file_rate = load_audio(str(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the same samples as decoding the whole file and averaging its channels ...
    np.testing.assert_array_equal(waveform.numpy(), sf.read(path, dtype="float32")[0].mean(axis=1))
    assert file_rate == rate
    # ... without ever holding the whole multichannel file: the mono result plus one block
    assert peak < samples.nbytes / 2, f"peak {peak} bytes for a {samples.nbytes}-byte {channels}-channel file"


def test_in_memory_files_are_checked_too(tmp_path):
    import io

    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((16_000, 16), dtype=np.float32), 16_000, format="WAV")
    with pytest.raises(ValueError, match=r"`prompt` \(in memory\) has 16 channels"):
        read_audio_file(io.BytesIO(buffer.getvalue()), "prompt")
    buffer = io.BytesIO()
    sf.write(buffer, make_prompt(3.0, 16_000), 16_000, format="FLAC")
    with pytest.raises(ValueError, match="over the limit of 2 s set by `max_prompt_seconds`"):
        read_audio_file(io.BytesIO(buffer.getvalue()), "prompt", 2.0, "max_prompt_seconds")


def test_wav_past_the_riff_limit_continues_as_rf64(tmp_path, monkeypatch):
    samples = make_prompt(1.0, 16_000)
    write_audio(tmp_path / "small.wav", samples, 16_000)
    assert sf.info(tmp_path / "small.wav").format == "WAV"  # as before below the limit
    # a 4 GiB limit lowered to 10,000 bytes of 16-bit samples: the writer crosses it between two writes
    monkeypatch.setattr(audio_io, "_WAV_MAX_BYTES", 10_000)
    path = tmp_path / "long.wav"
    with open_audio_for_writing(path, 16_000) as handle:
        handle.write(samples[:4_000])
        assert handle.format == "WAV"
        handle.write(samples[4_000:])
        assert handle.format == "RF64" and handle.frames == len(samples)
    assert sf.info(path).format == "RF64" and sorted(os.listdir(tmp_path)) == ["long.wav", "small.wav"]
    # not a sample lost or changed by the carry-over
    np.testing.assert_array_equal(sf.read(path, dtype="int16")[0], sf.read(tmp_path / "small.wav", dtype="int16")[0])


def test_written_length_is_verified(tmp_path, monkeypatch):
    real_info = sf.info

    def truncated(path):  # a format whose header cannot count every frame, as a 32-bit WAV past 4 GiB
        info = real_info(path)
        info.frames -= 1
        return info

    monkeypatch.setattr(audio_io.sf, "info", truncated)
    with pytest.raises(OutputError, match=r"holds 15999 of the 16000 samples"):
        write_audio(tmp_path / "a.wav", make_prompt(1.0, 16_000), 16_000)
    assert os.listdir(tmp_path) == []


def test_a_failed_write_names_the_reason_and_leaves_nothing(tmp_path):
    # a real write failure: a file-size limit of 4 KiB (disk full fails the same way, with ENOSPC)
    code = (
        "import resource, signal, numpy as np\n"
        "from flashspeech_hf.audio import write_audio, OutputError\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "try:\n"
        f"    write_audio({str(tmp_path / 'out.wav')!r}, np.zeros(16000, np.float32), 16000)\n"
        "except OutputError as err:\n"
        "    print(err)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Could not write {tmp_path / 'out.wav'}: System error : File too large."
    assert os.listdir(tmp_path) == []


def test_output_locations_are_checked_before_any_work(tmp_path, monkeypatch):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(
        OutputError, match=r"--output_dir .*file/out cannot be created: .*file is a file, not a folder"
    ):
        check_output_folder(a_file / "out", "--output_dir")
    with pytest.raises(OutputError, match="is a folder"):
        check_output_file(tmp_path, "--output")
    with pytest.raises(ValueError, match="extension"):
        check_output_file(tmp_path / "out.txt", "--output")
    check_output_folder(tmp_path / "new" / "deeper", "--output_dir")  # missing folders are created later
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    real_access = os.access  # a read-only mount, also for root (who may write into a mode-555 folder)
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(read_only) else real_access(p, mode))
    with pytest.raises(OutputError, match=r"cannot be written: .*read_only is read-only"):
        check_output_file(read_only / "out.wav", "--output")
    monkeypatch.setattr(audio_io.shutil, "disk_usage", lambda p: collections.namedtuple("usage", "free")(1024))
    with pytest.raises(OutputError, match=r"no space left \(1024 bytes free\)"):
        check_output_folder(tmp_path, "--output_dir")


def test_partials_of_killed_writers_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [tmp_path / f".out.wav.{dead.pid}.partial", tmp_path / f".out.wav.{dead.pid}.rf64.partial"]
    alive = tmp_path / f".out.wav.{os.getppid()}.partial"  # a running process's file is kept
    other = tmp_path / f".other.wav.{dead.pid}.partial"  # another output's
    for path in (*stale, alive, other):
        path.write_bytes(b"RIFF")
    assert sorted(remove_stale_partials(tmp_path / "out.wav")) == sorted(map(str, stale))
    write_audio(tmp_path / "other.wav", make_prompt(1.0, 16_000), 16_000)  # the writer cleans up before writing
    assert sorted(os.listdir(tmp_path)) == sorted([alive.name, "other.wav"])
