"""Error types of the orchestrator. Their class names are the ``ApplicationError.type`` values.

DrError
├── PlanError                 a plan file is invalid (names the field and the fix)
├── PreflightRefused          a workflow refuses to start: every reason at once
├── AzureOperationError       an Azure call failed
│   ├── AzureNonRetryableError    auth, 400, 403, 404, 409: retrying cannot help
│   └── AzureRetryableError       429 and 5xx: retried with backoff (Retry-After honoured)
├── CatalogError              the backup catalog refuses a request
│   ├── RecoveryPointNotFound     no (completed) recovery point matches
│   ├── PointInTimeInFuture       a restore asked for a time after now
│   ├── PointInTimeBeyondRetention  a restore asked for a time older than the retention window
│   └── RecoveryPointConflict     a recovery point id is reused with other content, or a bad status change
└── QuarantineError           a quarantine is sealed (no more writes) or not yet sealed (no promotion)
"""

from __future__ import annotations

from dataclasses import dataclass


class DrError(Exception):
    """Base of every error this project raises on purpose."""


@dataclass(frozen=True)
class PlanIssue:
    """One problem in a plan file: where it is, what is wrong, and how to fix it."""

    field: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem} (fix: {self.fix})"


class PlanError(DrError):
    """A plan file is invalid; carries every problem found, not just the first."""

    def __init__(self, source: str, issues: list[PlanIssue]) -> None:
        self.source = source
        self.issues = issues
        lines = "\n".join(f"  - {issue}" for issue in issues)
        super().__init__(f"invalid plan {source}: {len(issues)} problem(s)\n{lines}")


class PreflightRefused(DrError):
    """A workflow refused to start; ``reasons`` lists every failed check."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__("refused: " + "; ".join(reasons))


class AzureOperationError(DrError):
    """An Azure management call failed."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


class AzureNonRetryableError(AzureOperationError):
    """Authentication, 400, 403, 404 or 409: the request itself is wrong or not allowed."""


class AzureRetryableError(AzureOperationError):
    """Throttling (429) or a server fault (5xx): worth retrying after ``retry_after`` seconds."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status, code=code)


class CatalogError(DrError):
    """The backup catalog refuses a request; the message says what was asked and what exists."""


class CatalogUnavailable(CatalogError):
    """The backup catalog could not be reached or opened (a server down, a file system away): worth
    retrying, unlike a refusal."""


class RecoveryPointNotFound(CatalogError):
    """No recovery point with that id, or no completed one for the tenant at or before the time."""


class PointInTimeInFuture(CatalogError):
    """A restore asked for a point in time after now: nothing can have been backed up yet."""


class PointInTimeBeyondRetention(CatalogError):
    """A restore asked for a point in time older than the plan's backup.retention_days."""


class RecoveryPointConflict(CatalogError):
    """A recovery point id was registered again with other content, or its status cannot change so."""


class QuarantineError(DrError):
    """Writing into a sealed (read-only) quarantine, or promoting one that was never sealed."""
