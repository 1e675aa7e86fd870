"""Checks of the numeric flags of the training scripts, run before any work."""

from __future__ import annotations

import argparse
import math
import numbers


def check_numeric_flags(args: argparse.Namespace, flags: dict, hints: dict | None = None) -> None:
    """
    Raises a `ValueError` naming the flag, its accepted range and the value when a numeric flag has the wrong type, is
    not finite or lies out of its range (e.g. `--checkpointing_steps 0`, which divided by zero after the first step).

    Args:
        args (`argparse.Namespace`): Parsed flags.
        flags (`dict`): Flag -> `(int or float, interval such as "[1, inf)", whether None is allowed)`.
        hints (`dict`, *optional*): Flag -> text appended to its error.

    Examples:

    ```py
    >>> import argparse
    >>> from arg_checks import check_numeric_flags

    >>> check_numeric_flags(argparse.Namespace(checkpointing_steps=0), {"checkpointing_steps": (int, "[1, inf)", False)})
    Traceback (most recent call last):
    ...
    ValueError: --checkpointing_steps must be an integer >= 1, got 0.

    ```
    """
    for flag, (kind, interval, optional) in flags.items():
        value = getattr(args, flag)
        if value is None and optional:
            continue
        low, high = (float(bound) for bound in interval[1:-1].split(","))
        ok = isinstance(value, numbers.Integral if kind is int else numbers.Real) and not isinstance(value, bool)
        ok = ok and (kind is int or math.isfinite(value))
        ok = ok and (value > low if interval[0] == "(" else value >= low)
        ok = ok and (value < high if interval[-1] == ")" else value <= high)
        if not ok:
            what = "an integer" if kind is int else "a finite number"
            bounds = f">= {low:g}" if interval[0] == "[" else f"> {low:g}"
            if math.isfinite(high):
                bounds = f"in {interval}"
            raise ValueError(f"--{flag} must be {what} {bounds}, got {value!r}.{(hints or {}).get(flag, '')}")
