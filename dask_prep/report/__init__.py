"""The run's report: report.json, the summary table, report.html and its plots."""
