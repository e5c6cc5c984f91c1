"""Which waves a run computes and which it holds as published (issue 25).

A frozen wave's published rows are held in the store (`pipeline.waves`) and every later
run publishes them verbatim; a run computes only the open waves (those with responses
that are not frozen), so it reads the new wave's respondents, not every earlier one. A
full run (`culture run --full`) recomputes every wave with respondents, frozen ones too,
and then publishes the held rows of the frozen waves in place of what it computed for
them: both runs publish the same layer (tests/test_incremental_runs.py compares them).

Rows that describe no single wave (the pooled validity checks, the overall reliability)
describe the open waves in both modes; with no wave open they stay as last published.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import duckdb

from pipeline.waves import frozen_waves


def wave_list_sql(waves: Iterable[int], column: str = "wave") -> str:
    """`column in (1, 2)` with the waves written as literals (a constant list lets DuckDB
    skip the stored row groups of other waves rather than join against a subquery);
    `false` for no wave."""
    waves = sorted({int(w) for w in waves})
    if not waves:
        return "false"
    return f"{column} in ({', '.join(map(str, waves))})"


@dataclass(frozen=True)
class RunScope:
    """The waves of one run.

    computed  waves whose rows the run computes from respondents (the open ones; every
              wave with respondents in a full run)
    pooled    the open waves: what rows pooled over waves describe
    frozen    waves held as published
    full      whether this is a full run
    """

    computed: tuple[int, ...]
    pooled: tuple[int, ...]
    frozen: tuple[int, ...]
    full: bool = False

    @classmethod
    def of_store(cls, con: duckdb.DuckDBPyConnection, full: bool = False) -> RunScope:
        frozen = tuple(frozen_waves(con))
        with_respondents = [int(w) for (w,) in con.execute(
            "select distinct wave from responses order by wave").fetchall()]
        pooled = tuple(w for w in with_respondents if w not in frozen)
        return cls(computed=tuple(with_respondents) if full else pooled, pooled=pooled,
                   frozen=frozen, full=full)

    @property
    def fresh(self) -> tuple[int, ...]:
        """The waves whose computed rows are published: the open ones."""
        return self.pooled

    def filter(self, column: str = "wave") -> str:
        """SQL condition: a row of a computed wave."""
        return wave_list_sql(self.computed, column)

    def describe(self) -> dict[str, str]:
        """The published meta keys saying which waves were computed and which held."""
        def listed(waves):
            return ",".join(map(str, waves))
        return {"waves_computed": listed(w for w in self.computed if w not in self.frozen),
                "waves_held": listed(self.frozen),
                "run_mode": "full" if self.full else "incremental"}
