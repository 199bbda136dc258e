"""What one incident step did: the run's metadata and the line `costwatch run` prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class TickReport:
    skipped: str | None = None
    opened: list[str] = field(default_factory=list)
    recorded_quietly: int = 0
    updated: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    reopened: list[int] = field(default_factory=list)
    followed_up: list[str] = field(default_factory=list)
    still_open: int = 0
    sent: int = 0
    failed: int = 0
    gave_up: int = 0
    pending: int = 0
    actions: list[str] = field(default_factory=list)
    next_due_at: datetime | None = None
    # Settings that could not be read, and steps that failed: each makes the step fail.
    problems: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add_delivery(self, counts: Any) -> None:
        self.sent += counts.sent
        self.failed += counts.failed
        self.gave_up += counts.gave_up

    def metadata(self) -> dict[str, Any]:
        return {
            "incidents_opened": len(self.opened),
            "incidents_updated": len(self.updated),
            "incidents_escalated": len(self.escalated),
            "incidents_resolved": len(self.resolved),
            "incidents_reopened": len(self.reopened),
            "incidents_followed_up": len(self.followed_up),
            "incidents_open": self.still_open,
            "alerts_sent": self.sent,
            "alerts_failed": self.failed + self.gave_up,
            "alerts_pending": self.pending,
        }

    def summary(self) -> str:
        parts: list[str] = []
        if self.skipped:
            parts.append(f"skipped ({self.skipped})")
        else:
            opened = f"{len(self.opened)} opened"
            if self.opened:
                opened += f" ({', '.join(self.opened)})"
            parts.append(opened)
            for label, items in (
                ("updated", self.updated),
                ("escalated", self.escalated),
                ("resolved", self.resolved),
                ("reopened", self.reopened),
                ("followed up", self.followed_up),
            ):
                if items:
                    parts.append(f"{len(items)} {label}")
            if self.recorded_quietly:
                parts.append(f"{self.recorded_quietly} past spikes recorded without alerts")
            parts.append(f"{self.still_open} open")
        alerts = f"{self.sent} alerts sent"
        if self.failed:
            alerts += f", {self.failed} failed (retry later)"
        if self.gave_up:
            alerts += f", {self.gave_up} failed for good"
        if self.pending:
            alerts += f", {self.pending} pending"
        parts.append(alerts)
        parts += self.actions
        parts += [f"setting: {p}" for p in self.problems]
        parts += [f"error: {e}" for e in self.errors]
        return "incidents: " + ", ".join(parts)
