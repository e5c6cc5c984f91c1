"""Aggregate, disclose, publish: cell sums over respondents, suppression of small cells,
the writer of the published file and its independent verifier."""
