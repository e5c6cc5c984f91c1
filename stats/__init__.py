"""Pure statistics on small matrices and tables (reliability, factor models, invariance,
agreement, funnel comparisons, weights): no files, no respondents, no DuckDB."""
