"""The one measure every reader shows: a score out of 100.

The published layer keeps each measure in the unit it was computed in (scales and
agreement items as 1-5 means after reverse-keying, principles 0-100), which is what a
researcher's export carries. Readers for people (the dashboard, the board report,
`culture run`'s summary) show every score on one scale, 0-100, through `headline`:

- 0-100 because the principles and their targets already are, and a director reads
  "49 against a target of 64" at once; a 1-5 mean of 3.4 and a 0-10 of 6.0 say the same
  as 60 but invite the question of which scale one is looking at.
- Scales: (mean - 1) x 25, so 0 is every answer at the least supportive end and 100
  every answer at the most supportive end, as for principles (whose score is the mean of
  their scales rescaled the same way). The map is linear: verdicts, ranks, intervals and
  p-values are unchanged; differences scale by 25.
- Questions (items) are shown as % favourable: the share who gave a supportive answer
  (for a negatively worded question, the share who disagreed), also out of 100.
"""

from __future__ import annotations

import pandas as pd

#: What a headline score is, for axis titles and table headers.
SCORE = "Score (0-100)"
SCORE_AXIS = "Score out of 100 (higher is more supportive)"
FAVOURABLE = "% favourable"
#: One sentence defining the headline measure, shown beside charts and in the report.
SCORE_DEFINITION = (
    "Scores are out of 100: 0 means every answer was at the least supportive end, 100 "
    "every answer at the most supportive end. Questions show the % who answered "
    "favourably (for a negatively worded question, the % who disagreed).")

#: Measure kinds published on 1-5 (rescaled by `headline`); principles are already 0-100.
ONE_TO_FIVE_KINDS = ("scale", "item")

#: Published columns holding a level on the measure's own scale (mean, limits, quantiles).
LEVEL_COLUMNS = ("mean", "ci_low", "ci_high", "others_mean", "low", "high", "target",
                 "eb_mean", "eb_low", "eb_high", "mean_previous", "weighted_mean",
                 "weighted_ci_low", "weighted_ci_high", "best", "q3", "median", "q1", "worst",
                 "national_worst", "national_q1", "national_median", "national_q3",
                 "national_best", "peer_worst", "peer_q1", "peer_median", "peer_q3",
                 "peer_best", "mean_rest")
#: Published columns holding a difference or a spread (rescaled without the offset).
SPREAD_COLUMNS = ("sd", "se", "sigma", "target_se", "change", "change_low", "change_high",
                  "diff", "diff_low", "diff_high", "diff_vs_peer", "diff_vs_peer_low",
                  "diff_vs_peer_high", "diff_vs_national", "diff_vs_national_low",
                  "diff_vs_national_high", "weighted_se")


def to_score(value: float, kind: str) -> float:
    """One level of a measure of `kind` on the headline 0-100 scale."""
    return (value - 1) * 25 if kind in ONE_TO_FIVE_KINDS else value


def headline(frame: pd.DataFrame, kind: str | None = None) -> pd.DataFrame:
    """`frame` with every level and spread column of 1-5 measures on the 0-100 scale.

    The kind comes from `kind`, else from the frame's `measure_kind` column; rows of
    principles (already 0-100) are left as they are. tau2 scales by 25 squared.
    """
    if kind is None and "measure_kind" not in frame:
        raise ValueError("headline needs a kind or a measure_kind column")
    if kind is not None:
        rescale = pd.Series(kind in ONE_TO_FIVE_KINDS, index=frame.index)
    else:
        rescale = frame["measure_kind"].isin(ONE_TO_FIVE_KINDS)
    if not rescale.any():
        return frame
    out = frame.copy()
    for column in LEVEL_COLUMNS:
        if column in out:
            out[column] = out[column].where(~rescale, (out[column] - 1) * 25)
    for column in SPREAD_COLUMNS:
        if column in out:
            out[column] = out[column].where(~rescale, out[column] * 25)
    if "tau2" in out:
        out["tau2"] = out["tau2"].where(~rescale, out["tau2"] * 625)
    return out


def headline_params(params: dict | None, kind: str) -> dict | None:
    """A funnel's parameters (target, target_se, tau2, sigma) on the 0-100 scale."""
    if params is None or kind not in ONE_TO_FIVE_KINDS:
        return params
    out = dict(params)
    out["target"] = (out["target"] - 1) * 25
    for key in ("target_se", "sigma"):
        if out.get(key) is not None:
            out[key] = out[key] * 25
    if out.get("tau2") is not None:
        out["tau2"] = out["tau2"] * 625
    return out
