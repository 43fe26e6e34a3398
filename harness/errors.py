"""User-facing errors: one clear line each, shown without a traceback."""


class HarnessError(Exception):
    """Bad input or an unsupported setting; the message is shown to the user as one line."""


class SkipJob(HarnessError):
    """The job cannot run in this environment (for example a CUDA-only peer on a CPU)."""
