"""Scale scores of respondents: reverse-keying and the minimum-answered rule.

This is the Python form used on small matrices (psychometrics, tests); the store-wide
scoring of every respondent belongs in SQL (not yet built: see issue 3).
"""

from __future__ import annotations

import pandas as pd

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
