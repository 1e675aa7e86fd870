"""Crash-safe training checkpoints: written to a temporary folder, completed with a manifest, renamed into place.

A run killed at any moment (`kill -9`, out of memory, a lost node) leaves every `checkpoint-<step>` folder of its
`--output_dir` either complete or absent:

1. [`save_checkpoint`] has Accelerate write the state into a hidden `.checkpoint-<step>.incomplete` folder;
2. it records every file and its size in `checkpoint_complete.json` (the files flushed to disk first);
3. it renames the folder to `checkpoint-<step>`;
4. only then are older checkpoints beyond `--checkpoints_total_limit` deleted (renamed out of the way first).

[`checkpoint_problem`] tells a complete checkpoint from a torn one: the manifest's files must all be there with their
recorded sizes. Folders written before manifests existed are checked by their structure instead: Accelerate writes
the models, then the optimizers, the schedulers and the random states last, so a folder whose random states are
there and whose every file is whole (non-empty, zip archives and safetensors files not truncated, pickles ending
with their STOP opcode) was complete.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zipfile

CHECKPOINT_MANIFEST = "checkpoint_complete.json"
"""The file that marks a checkpoint folder complete: `{"step": int, "files": {relative path: size in bytes}}`."""
INCOMPLETE_SUFFIX = ".incomplete"
DELETING_SUFFIX = ".deleting"
PREFIX = "checkpoint-"


def list_checkpoints(output_dir: str) -> list[str]:
    """The `checkpoint-<step>` folders of `output_dir`, complete or not, in increasing step order."""
    if not os.path.isdir(output_dir):
        return []
    names = [
        name
        for name in os.listdir(output_dir)
        if name.startswith(PREFIX) and name[len(PREFIX) :].isdigit() and os.path.isdir(os.path.join(output_dir, name))
    ]
    return [os.path.join(output_dir, name) for name in sorted(names, key=lambda n: int(n[len(PREFIX) :]))]


def interrupted_saves(output_dir: str) -> list[str]:
    """Leftovers of saves or deletions that a kill interrupted (hidden folders): never resumed from."""
    if not os.path.isdir(output_dir):
        return []
    return sorted(
        os.path.join(output_dir, name)
        for name in os.listdir(output_dir)
        if name.startswith("." + PREFIX) and name.endswith((INCOMPLETE_SUFFIX, DELETING_SUFFIX))
    )


def _file_problem(path: str) -> str | None:
    """Why a file of a checkpoint written without a manifest is not whole, or None."""
    size = os.path.getsize(path)
    name = os.path.basename(path)
    if size == 0:
        return f"{name} is empty"
    if name.endswith((".bin", ".pt", ".pth")) and not zipfile.is_zipfile(path):
        return f"{name} is truncated (no zip directory at its end)"
    if name.endswith(".safetensors"):
        with open(path, "rb") as f:
            head = f.read(8)
            header_size = struct.unpack("<Q", head)[0] if len(head) == 8 else size
            try:
                header = json.loads(f.read(header_size)) if 8 + header_size <= size else None
            except ValueError:
                header = None
        if header is None:
            return f"{name} is truncated (its header is incomplete)"
        end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
        if size != 8 + header_size + end:
            return f"{name} is truncated ({size} bytes, its header describes {8 + header_size + end})"
    if name.endswith(".pkl"):
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b".":
                return f"{name} is truncated (a pickle ends with its STOP opcode)"
    if name.endswith(".json"):
        try:
            with open(path, encoding="utf-8") as f:
                json.load(f)
        except ValueError:
            return f"{name} is not valid JSON"
    return None


def checkpoint_problem(path: str) -> str | None:
    """
    Why `path` is not a complete checkpoint, or None when it is.

    With a manifest (`checkpoint_complete.json`), every file it lists must be there with its recorded size. Without one
    (a folder written before manifests existed), the optimizer state and the random states (written last) must be
    there, every model folder must hold its config, and no file may be empty or truncated.

    Args:
        path (`str`): A checkpoint folder.

    Returns:
        `str` or `None`: The problem, as a phrase such as `"optimizer.bin is empty"`.
    """
    if not os.path.isdir(path):
        return "it is not a folder"
    manifest = os.path.join(path, CHECKPOINT_MANIFEST)
    if os.path.isfile(manifest):
        try:
            with open(manifest, encoding="utf-8") as f:
                files = json.load(f)["files"]
        except (ValueError, KeyError, TypeError) as err:
            return f"its {CHECKPOINT_MANIFEST} is unreadable ({err})"
        for name, size in files.items():
            file = os.path.join(path, name)
            if not os.path.isfile(file):
                return f"{name} is missing"
            if os.path.getsize(file) != size:
                return f"{name} has {os.path.getsize(file)} bytes, not the {size} it was saved with"
        return None
    entries = os.listdir(path)
    if not any(name.startswith("optimizer") for name in entries):
        return "it holds no optimizer state"
    if not any(name.startswith("random_states") for name in entries):
        return "it holds no random states (Accelerate writes them last: the save was interrupted)"
    for name in sorted(entries):
        full = os.path.join(path, name)
        if os.path.isdir(full):
            if not {"config.json", "adapter_config.json"} & set(os.listdir(full)):
                return f"its {name} folder has no config.json"
            files = [os.path.join(full, f) for f in sorted(os.listdir(full)) if os.path.isfile(os.path.join(full, f))]
        else:
            files = [full]
        for file in files:
            problem = _file_problem(file)
            if problem is not None:
                return problem if file == full else f"{name}/{problem}"
    return None


def latest_complete_checkpoint(output_dir: str) -> tuple[str | None, list[tuple[str, str]]]:
    """
    The highest-step complete checkpoint of `output_dir` (None if there is none), and the `(path, problem)` of every
    incomplete one passed over, interrupted saves included.
    """
    skipped = [
        (path, "a save that was interrupted (it is deleted at the next save)")
        for path in interrupted_saves(output_dir)
    ]
    for path in reversed(list_checkpoints(output_dir)):
        problem = checkpoint_problem(path)
        if problem is None:
            return path, skipped
        skipped.append((path, problem))
    return None, skipped


def _fsync(path: str) -> None:
    """Flushes a file, or a folder's entries (where the platform allows opening folders), to disk."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # a folder on a platform that cannot open one
        if os.path.isdir(path):
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(folder: str, step: int) -> None:
    """Flushes every file of `folder` to disk, then writes (and flushes) the manifest that marks it complete."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in sorted(names):
            path = os.path.join(root, name)
            _fsync(path)
            files[os.path.relpath(path, folder)] = os.path.getsize(path)
    tmp = os.path.join(folder, CHECKPOINT_MANIFEST + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"step": step, "files": files}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(folder, CHECKPOINT_MANIFEST))
    _fsync(folder)


def remove_checkpoint(path: str) -> None:
    """Deletes a checkpoint folder, renaming it out of the way first so that a kill never leaves it half deleted."""
    parent, name = os.path.split(os.path.normpath(path))
    doomed = os.path.join(parent, f".{name}{DELETING_SUFFIX}")
    if os.path.exists(doomed):
        shutil.rmtree(doomed)
    os.replace(path, doomed)
    shutil.rmtree(doomed)


def prune_checkpoints(output_dir: str, total_limit: int | None, keep: str) -> list[str]:
    """
    Deletes the leftovers of interrupted saves, and the oldest complete checkpoints beyond `total_limit` (never
    `keep`, the one just saved). Incomplete `checkpoint-<step>` folders are left alone (a resume names them).

    Returns:
        `list[str]`: The checkpoints deleted.
    """
    for path in interrupted_saves(output_dir):
        shutil.rmtree(path, ignore_errors=True)
    if total_limit is None:
        return []
    complete = [path for path in list_checkpoints(output_dir) if checkpoint_problem(path) is None]
    removed = []
    for path in complete[: max(len(complete) - total_limit, 0)]:
        if os.path.normpath(path) != os.path.normpath(keep):
            remove_checkpoint(path)
            removed.append(path)
    return removed


def save_checkpoint(accelerator, output_dir: str, step: int, total_limit: int | None = None) -> str:
    """
    Saves the training state (`accelerator.save_state`, with its registered hooks) as `output_dir/checkpoint-<step>`,
    crash-safely: into `.checkpoint-<step>.incomplete`, completed with the manifest, renamed into place; then the
    oldest complete checkpoints beyond `total_limit` are deleted. Every process must call it.

    Args:
        accelerator (`accelerate.Accelerator`): The run's accelerator.
        output_dir (`str`): The run's output folder.
        step (`int`): The global step, which names the folder.
        total_limit (`int`, *optional*): How many complete checkpoints to keep, the new one included.

    Returns:
        `str`: The checkpoint folder.
    """
    final = os.path.join(output_dir, f"{PREFIX}{step}")
    tmp = os.path.join(output_dir, f".{PREFIX}{step}{INCOMPLETE_SUFFIX}")
    if accelerator.is_main_process and os.path.exists(tmp):
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(tmp)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_manifest(tmp, step)
        if os.path.isdir(final):  # a checkpoint of this step from an earlier run into the same folder
            remove_checkpoint(final)
        os.replace(tmp, final)
        _fsync(output_dir)
        prune_checkpoints(output_dir, total_limit, keep=final)
    accelerator.wait_for_everyone()
    return final
