"""Runbook steps 7-8 and its escalation: incidents, alerts and the cost cap (CONTRACT section 6).

- `settings`: what the environment switches on (channels, cost cap), read at run time.
- `payloads`: pure builders: severity, the runbook's fix per cause, each channel's message.
- `channels`: delivery over real HTTP, with timeouts and a retry policy; secrets never leave it.
- `store`: the `ops` tables and the detection marts, in SQL.
- `engine`: one tick: open, escalate, resolve, deliver and retry alerts, apply the cost cap.
- `costcap`: the runbook's escalation query as a guarded, recorded action.
Their Dagster side (the `ops/incidents` asset, sensors, checks) is `orchestration.defs`; the
`costwatch incidents` command is `orchestration.cli.incidents`.
"""
