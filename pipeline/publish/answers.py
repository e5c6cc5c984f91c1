"""The full answer distribution of every published item cell: % for each answer option.

The published `cells` give an item's n, mean and % favourable / unfavourable; a
researcher comparing with another survey needs every option's share too ("12%
strongly disagree"), and how many gave no answer. `item_answers` counts them from the
respondents in one scan (sql/option_sums.sql), sums sites into peer groups and all
sites the way the cells are summed (sql/wide_sums.sql), and publishes them only for
the item cells the suppression step shows (sql/item_answers.sql, which says why the
same hidden pattern keeps a hidden group's counts unrecoverable).

Options are counted as answered, before reverse-keying: "Agree" is the respondent's
"Agree" whatever the item's direction. Each row also says the option's code after
reverse-keying (`scored_code`) and whether it counts as favourable, so the shares add
up to the cell's % favourable. The store keeps "don't know" and a blank answer alike
as missing (`pipeline.ingest`), so the one no-answer row counts both (and, for an item
asked of some groups only, those not asked).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from pipeline.publish.cells import NATIONAL, SQL_DIR as CELLS_SQL_DIR
from pipeline.sql_templates import columns, quote, render
from published.layout import ITEM_ANSWER_COLUMNS
from survey.instrument import Instrument

SQL_DIR = Path(__file__).resolve().parent / "sql"
#: Position of the no-answer row, after every answer option of any scale.
NO_ANSWER_POSITION = 99


def no_answer_label(instrument: Instrument, item) -> str:
    """What the no-answer row counts, in the instrument's words where it has them."""
    rs = instrument.response_scale(item.response_scale)
    offered = rs.missing[0].label if rs.missing else "Don't know"
    label = f"No answer: {offered}, or left blank"
    return label + (", or not asked" if item.asked_if is not None else "")


def answer_options(instrument: Instrument) -> pd.DataFrame:
    """One row per item x answer option in the questionnaire's order, then the no-answer
    row: code and label as offered, the code after reverse-keying, whether favourable,
    and the option's column in option_sums (None for the no-answer row)."""
    rows = []
    for item in instrument.items:
        rs = instrument.response_scale(item.response_scale)
        low, high = min(rs.codes), max(rs.codes)
        for position, option in enumerate(rs.options, start=1):
            scored = low + high - option.code if item.reverse else option.code
            rows.append({"measure": item.id, "position": position,
                         "option_code": option.code, "option_label": option.label,
                         "scored_code": scored, "favourable": scored in rs.favourable,
                         "is_answer": True,
                         "column_name": f"o__{item.id}__{option.code}"})
        missing_code = rs.missing[0].code if rs.missing else None
        rows.append({"measure": item.id, "position": NO_ANSWER_POSITION,
                     "option_code": missing_code,
                     "option_label": no_answer_label(instrument, item),
                     "scored_code": None, "favourable": None, "is_answer": False,
                     "column_name": None})
    return pd.DataFrame(rows).astype({"option_code": "Int64", "scored_code": "Int64",
                                      "favourable": "boolean"})


def _option_sums(instrument: Instrument) -> list[str]:
    """The select list of sql/option_sums.sql: one count per item x answer option."""
    sums = []
    for item in instrument.items:
        for option in instrument.response_scale(item.response_scale).options:
            # A sum of 0/1 rather than count(*) filter (...): four times faster here.
            sums.append(f"sum(({quote(item.id)} = {option.code})::integer)::bigint "
                        f"as {quote(f'o__{item.id}__{option.code}')}")
    return sums


def item_answers(con: duckdb.DuckDBPyConnection, instrument: Instrument,
                 cells: pd.DataFrame) -> pa.Table:
    """The published `item_answers` rows for the published `cells` (suppression decided),
    counted from `analysis_responses` on the store connection `con`, as an Arrow table
    (some 400k rows at national scale: pandas would only slow them down on the way)."""
    options = answer_options(instrument)
    con.execute(render(SQL_DIR, "option_sums.sql", option_sums=columns(_option_sums(instrument))))
    measures = [quote(c) for c in options["column_name"].dropna()]
    totals = cells[cells["breakdown"].eq("all")]
    try:
        con.execute(render(CELLS_SQL_DIR, "wide_sums.sql", wide_table="option_sums_wide",
                           sums="option_sums", measures=columns(measures),
                           summed=columns(f"sum({c}) as {c}" for c in measures)),
                    {"national": NATIONAL})
        con.register("answer_options", options)
        # Arrow, not pandas: DuckDB scans a pandas frame's strings value by value.
        for name, kind in (("published_item_cells", "item"),
                           ("published_response_cells", "responses")):
            con.register(name, pa.Table.from_pandas(totals[totals["measure_kind"].eq(kind)],
                                                    preserve_index=False))
        answers = con.sql(render(SQL_DIR, "item_answers.sql")).to_arrow_table()
    finally:
        for name in ("answer_options", "published_item_cells", "published_response_cells"):
            con.unregister(name)
        for table in ("option_sums", "option_sums_wide"):
            con.execute(f"drop table if exists {table}")
    if answers.column_names != list(ITEM_ANSWER_COLUMNS):
        raise ValueError(f"item_answers.sql gives {answers.column_names}, not the layout's "
                         f"{list(ITEM_ANSWER_COLUMNS)}")
    return answers
