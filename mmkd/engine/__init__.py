from . import atomic_checkpoint  # noqa: F401  (makes mmengine's checkpoint saving atomic)
from . import checkpoint_downloads  # noqa: F401  (a failed download names the URL and the fix)
from .cpu_distributed import prepare_cpu_distributed  # noqa: F401
from .distributed_exit import shut_down_distributed  # noqa: F401
from .hooks import (DistillLossGuardHook, DistillWeightsHook, ExactResumeHook,  # noqa: F401
                    NonFiniteLossError, TeacherCheckError, TeacherCheckHook,
                    add_exact_resume_hook)
