from .cpu_distributed import prepare_cpu_distributed  # noqa: F401
