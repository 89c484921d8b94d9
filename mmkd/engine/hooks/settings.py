"""The top-level config dicts of the diagnostics hooks (``teacher_check``, ``loss_balance``,
``distill_schedule``): one rule for merging them into their defaults."""
from typing import Mapping


def merged_settings(key: str, given: Mapping, defaults: Mapping, off_hint: str = '') -> dict:
    """``given`` (the config's ``key``) over ``defaults``; a ``KeyError`` naming the unknown
    settings, the known ones and ``off_hint`` (how to turn the feature off) for a typo."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise KeyError(f'{key}: unknown setting(s) {unknown}; the settings are '
                       f'{sorted(defaults)}{off_hint}.')
    return dict(defaults, **given)
