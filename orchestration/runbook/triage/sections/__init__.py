"""The triage report's sections, one per runbook step, from the marts' rows (no SQL, no maths).

Steps 2-6 render `marts.spike_runbook_steps` (before, after, change and the runbook's verdict
`is_signal`, all judged by dbt); the causes render `marts.spike_causes` (the catalogue's words,
each cause's part of the one excess figure). Every name from the data goes through `escape_md`.

One module a part of the report: `spike` (header, step 1), `signals` (steps 2-6), `outcome`
(changes, causes, steps 7-8, no spike); `common` holds what they share.
"""

from __future__ import annotations

from orchestration.runbook.triage.sections.common import Step, cause_label, causes_found
from orchestration.runbook.triage.sections.outcome import (
    alert_deliveries,
    causes_section,
    changes_section,
    no_spike,
    step7,
    step8,
)
from orchestration.runbook.triage.sections.signals import step2, step3, step4, step5, step6
from orchestration.runbook.triage.sections.spike import header, step1

__all__ = [
    "Step",
    "alert_deliveries",
    "cause_label",
    "causes_found",
    "causes_section",
    "changes_section",
    "header",
    "no_spike",
    "step1",
    "step2",
    "step3",
    "step4",
    "step5",
    "step6",
    "step7",
    "step8",
]
