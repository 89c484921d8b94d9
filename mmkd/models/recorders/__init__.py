from .batch_data import BatchDataRecorder  # noqa: F401
