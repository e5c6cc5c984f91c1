"""The DuckDB store and the stages that turn raw responses into published aggregates."""
