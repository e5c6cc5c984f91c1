"""Psychometrics: reliability, structure, invariance and agreement of every scale, from
moments DuckDB sums over respondents, and the validation report.

`stage` runs it (`run_psychometrics`), `moments` sums the item moments in DuckDB,
`results` holds the frozen result types, `report` writes the validation report."""
