"""The step table every DR workflow keeps: what ran, what is running, what was skipped."""

from __future__ import annotations

from dataclasses import dataclass, field

PENDING = "pending"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
SKIPPED = "skipped"
PLANNED = "planned"  # dry run: what would be done

_ICONS = {PENDING: "·", RUNNING: "▶", DONE: "✓", FAILED: "✗", SKIPPED: "-", PLANNED: "○"}


@dataclass
class Step:
    key: str
    title: str
    status: str = PENDING
    started_at: str | None = None
    finished_at: str | None = None
    detail: str = ""
    calls: list[str] = field(default_factory=list)  # ARM/ops calls issued, or planned in a dry run


@dataclass
class StepTable:
    steps: list[Step] = field(default_factory=list)

    def add(self, key: str, title: str) -> Step:
        step = Step(key, title)
        self.steps.append(step)
        return step

    def get(self, key: str) -> Step:
        for step in self.steps:
            if step.key == key:
                return step
        raise KeyError(key)

    def by_status(self, *statuses: str) -> list[str]:
        return [s.key for s in self.steps if s.status in statuses]

    def markdown(self) -> str:
        """The table as the Temporal UI shows it in the workflow's current details."""
        rows = ["| | step | status | detail |", "|---|---|---|---|"]
        for s in self.steps:
            detail = s.detail.replace("|", "/").replace("\n", " ")
            rows.append(f"| {_ICONS.get(s.status, '?')} | {s.title} | {s.status} | {detail} |")
        return "\n".join(rows)
