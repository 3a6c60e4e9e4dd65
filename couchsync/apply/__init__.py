"""Apply: carry out a plan's steps on the server (``_run`` says how)."""

from couchsync.apply._result import ApplyError, ApplyInterrupted, ApplyResult, StepResult
from couchsync.apply._run import apply_plan

__all__ = ["ApplyError", "ApplyInterrupted", "ApplyResult", "StepResult", "apply_plan"]
