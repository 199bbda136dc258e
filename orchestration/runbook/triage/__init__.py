"""The filled-in Cost Spike Runbook (`costwatch triage`): queries of the report marts, the
sections and the on-call summary, the chart, and the report as Markdown (`report`)."""
