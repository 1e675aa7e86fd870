"""Config helpers shared by the models and the scheduler (a leaf module: it imports nothing of the package)."""

from __future__ import annotations

from diffusers.utils import logging

logger = logging.get_logger(__name__)


class DropLegacyConfigKeysMixin:
    """
    Lets a `ConfigMixin` class load configs saved by older versions that carry keys it no longer takes: the keys in
    `_legacy_config_keys` (key -> where it went) are dropped with an info log, not kept as hidden config entries, so
    a re-saved config is clean.
    """

    _legacy_config_keys: dict[str, str] = {}

    @classmethod
    def extract_init_dict(cls, config_dict: dict, **kwargs):
        legacy = sorted(key for key in cls._legacy_config_keys if key in config_dict)
        if legacy:
            moved: dict[str, list[str]] = {}
            for key in legacy:
                moved.setdefault(cls._legacy_config_keys[key], []).append(key)
            where = "; ".join(f"{keys}: {reason}" for reason, keys in moved.items())
            logger.info(f"Ignoring the keys of this {cls.__name__} config that it no longer takes ({where}).")
            config_dict = {k: v for k, v in config_dict.items() if k not in legacy}
            if "_use_default_values" in config_dict:
                config_dict["_use_default_values"] = [k for k in config_dict["_use_default_values"] if k not in legacy]
        return super().extract_init_dict(config_dict, **kwargs)
