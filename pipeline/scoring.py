"""Scale scores of respondents: reverse-keying and the minimum-answered rule.

One rule in two forms: `scale_score` on a pandas frame (small matrices, tests) and the
SQL definition `respondent_scores_sql` (pipeline/sql/respondent_scores.sql), which every
stage that scores respondents in DuckDB reads: the cell sums, the psychometrics' item
matrices (through `keyed_item_sql`) and the store's `scale_scores` view.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.sql_templates import columns, quote, render
from pipeline.store import drop_relation
from survey.instrument import Instrument

SQL_DIR = Path(__file__).resolve().parent / "sql"


def keyed_items(answers: pd.DataFrame, instrument: Instrument, scale_id: str) -> pd.DataFrame:
    """The scale's items with negatively worded ones reversed (6 - x on a 1-5 scale).

    Codes of the "don't know" option (9) are treated as missing.
    """
    members = instrument.items_of(scale_id)
    rs = instrument.response_scale(members[0].response_scale)
    low, high = min(rs.codes), max(rs.codes)
    data = answers[[i.id for i in members]].astype(float)
    data = data.where(data.isin(rs.codes))
    for item in members:
        if item.reverse:
            data[item.id] = low + high - data[item.id]
    return data


def scale_score(answers: pd.DataFrame, instrument: Instrument, scale_id: str) -> pd.Series:
    """Mean of answered items when at least the scale's `min_items` are answered, else NaN."""
    data = keyed_items(answers, instrument, scale_id)
    enough = data.notna().sum(axis=1) >= instrument.scale(scale_id).min_items
    return data.mean(axis=1).where(enough)


def keyed_item_sql(instrument: Instrument, item) -> str:
    """SQL for one item's answer after reverse-keying (low + high - code when reversed).

    The response scale's bounds are instrument structure, written as integers; stored
    answers are already within the scale's codes (ingest stores "don't know" as NULL).
    """
    rs = instrument.response_scale(item.response_scale)
    low, high = min(rs.codes), max(rs.codes)
    return f"({low + high} - {quote(item.id)})" if item.reverse else quote(item.id)


def scale_columns(instrument: Instrument, scale_id: str) -> list[str]:
    """The a_, f_ and s_ columns of one scale in respondent_scores.sql."""
    members = instrument.items_of(scale_id)
    rs = instrument.response_scale(members[0].response_scale)
    keyed = [keyed_item_sql(instrument, i) for i in members]
    answered = " + ".join(f"({quote(i.id)} is not null)::integer" for i in members)
    total = " + ".join(f"coalesce({k}, 0)" for k in keyed)
    favourable = " + ".join(
        f"coalesce({k} in ({', '.join(str(c) for c in rs.favourable)}), false)::integer"
        for k in keyed)
    min_items = instrument.scale(scale_id).min_items
    return [f"({answered}) as {quote('a_' + scale_id)}",
            f"({favourable}) as {quote('f_' + scale_id)}",
            f"case when ({answered}) >= {min_items} then ({total})::double / ({answered}) end "
            f"as {quote('s_' + scale_id)}"]


def respondent_scores_sql(instrument: Instrument, source: str) -> str:
    """A query giving every respondent of the relation `source` with their a_, f_ and
    s_ columns per scale (pipeline/sql/respondent_scores.sql)."""
    return render(SQL_DIR, "respondent_scores.sql", source=quote(source),
                  scale_columns=columns(c for scale in instrument.scales
                                        for c in scale_columns(instrument, scale.id)))


def scale_scores_sql(instrument: Instrument) -> str:
    """The statement defining the view `scale_scores` (pipeline/sql/scale_scores.sql)."""
    selects = []
    for scale in instrument.scales:
        members = instrument.items_of(scale.id)
        rs = instrument.response_scale(members[0].response_scale)
        low, high = min(rs.codes), max(rs.codes)
        step = 10 / (high - low)
        a, s, f = (quote(prefix + scale.id) for prefix in ("a_", "s_", "f_"))
        selects.append(
            f"select site_code, wave, response_id, '{scale.id}' as scale_id, "
            f"{len(members)} as n_items, {a} as n_answered, {s} as score, "
            f"({s} - {low}) * {step} as score_0_10, {f} as n_favourable from scored")
    query = render(SQL_DIR, "scale_scores.sql",
                   respondent_scores=respondent_scores_sql(instrument, "responses"),
                   per_scale="\n    union all\n    ".join(selects))
    return "create or replace view scale_scores as\n" + query


def score_responses(con, instrument: Instrument) -> int:
    """(Re)define the view `scale_scores` over every stored response; returns its row
    count (responses x scales)."""
    # Stores made before scale_scores became a view hold it as a table.
    drop_relation(con, "scale_scores")
    con.execute(scale_scores_sql(instrument))
    return con.execute("select count(*) from responses").fetchall()[0][0] * len(
        instrument.scales)
