"""The published layer: its layout and the one read API every reader uses (read-only,
aggregates only; nothing here reads respondents)."""
