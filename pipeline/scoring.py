"""Scale scores of respondents: reverse-keying and the minimum-answered rule.

Two forms of one rule: `scale_score` on a pandas frame (small matrices, tests) and
`score_responses`, which scores every stored respondent in DuckDB.
"""

from __future__ import annotations

import pandas as pd

from pipeline.store import drop_relation
from pipeline.ingest.row_checks import quote
from survey.instrument import Instrument


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


def scale_sql_terms(instrument: Instrument, scale_id: str) -> tuple[str, str, str]:
    """SQL expressions over one response row: (items answered, sum of answers after
    reverse-keying, answers in the favourable codes after keying)."""
    members = instrument.items_of(scale_id)
    rs = instrument.response_scale(members[0].response_scale)
    low, high = min(rs.codes), max(rs.codes)
    keyed = [f"({low + high} - {quote(i.id)})" if i.reverse else quote(i.id) for i in members]
    answered = " + ".join(f"({quote(i.id)} is not null)::integer" for i in members)
    total = " + ".join(f"coalesce({k}, 0)" for k in keyed)
    favourable = " + ".join(
        f"coalesce({k} in ({', '.join(str(c) for c in rs.favourable)}), false)::integer"
        for k in keyed)
    return answered, total, favourable


def scale_score_sql(instrument: Instrument, scale_id: str) -> str:
    """SQL for a respondent's scale score (1-5 after keying): the mean of answered items
    when at least the scale's `min_items` are answered, else NULL."""
    answered, total, _ = scale_sql_terms(instrument, scale_id)
    return (f"case when ({answered}) >= {instrument.scale(scale_id).min_items} "
            f"then ({total})::double / ({answered}) end")


def scoring_sql(instrument: Instrument) -> str:
    """SQL defining `scale_scores`: one row per respondent and scale.

    A view, not a stored table: at national scale writing its 8 million rows took
    ~9 s of the pipeline, while the few queries that read it (ICC, tests, users'
    own analysis) aggregate the view in well under a second; and a view can never be
    out of date with the responses it is computed from.

    Columns: site_code, wave, response_id, scale_id, n_items, n_answered, score (mean of
    answered items after reverse-keying, 1-5, NULL below the scale's min_items),
    score_0_10 (NHS Staff Survey convention: 1..5 -> 0, 2.5, 5, 7.5, 10, averaged, which
    is (score - 1) * 2.5), n_favourable (answers in the favourable codes after keying).
    """
    selects = []
    for scale in instrument.scales:
        answered, total, favourable = scale_sql_terms(instrument, scale.id)
        members = instrument.items_of(scale.id)
        rs = instrument.response_scale(members[0].response_scale)
        low, high = min(rs.codes), max(rs.codes)
        step = (10 / (high - low))
        selects.append(f"""
            select site_code, wave, response_id, '{scale.id}' as scale_id,
                   {len(members)} as n_items, n_answered,
                   case when n_answered >= {scale.min_items} then total / n_answered end
                       as score,
                   case when n_answered >= {scale.min_items}
                        then (total / n_answered - {low}) * {step} end as score_0_10,
                   n_favourable
            from (select site_code, wave, response_id, ({answered}) as n_answered,
                         ({total})::double as total, ({favourable}) as n_favourable
                  from responses)""")
    return "create or replace view scale_scores as\n" + "\nunion all\n".join(selects)


def score_responses(con, instrument: Instrument) -> int:
    """(Re)define `scale_scores` over every stored response; returns its row count
    (responses x scales)."""
    # Stores made before scale_scores became a view hold it as a table.
    drop_relation(con, "scale_scores")
    con.execute(scoring_sql(instrument))
    return con.execute("select count(*) from responses").fetchall()[0][0] * len(
        instrument.scales)
