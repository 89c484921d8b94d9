from .distill_weights import DistillWeightsHook  # noqa: F401
from .exact_resume import ExactResumeHook, add_exact_resume_hook  # noqa: F401
from .loss_guard import DistillLossGuardHook, NonFiniteLossError  # noqa: F401
from .teacher_check import TeacherCheckError, TeacherCheckHook  # noqa: F401
