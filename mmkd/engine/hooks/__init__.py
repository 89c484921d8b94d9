from .loss_guard import DistillLossGuardHook, NonFiniteLossError  # noqa: F401
