"""The benchmark dashboard (reads published aggregates only)."""
