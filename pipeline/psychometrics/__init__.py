"""Psychometrics: reliability, structure, invariance and agreement of every scale, from
moments DuckDB sums over respondents, and the validation report."""
