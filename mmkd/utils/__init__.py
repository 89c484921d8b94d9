"""Helpers that are not models: statistics over repeated training runs."""
from .paired_stats import (PairedDifference, mean_sd, paired_difference,  # noqa: F401
                           t_critical)
