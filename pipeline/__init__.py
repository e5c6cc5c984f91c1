"""The respondent side: the DuckDB store and the stages that turn raw responses into the
published layer, in the order `run.py` calls them: `ingest/` -> `quality` (flags) ->
`scoring` -> `psychometrics/` -> `publish/` (cell sums, suppression, the writer, the
verifier) with `benchmark` (funnels, targets, gaps on the cell sums)."""
