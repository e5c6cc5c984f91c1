-- item_answers: the published answer distribution, one row per item cell of the
-- published `cells` x answer option (in the questionnaire's order), and one more row
-- for the unit's respondents who gave the item no answer.
--
-- Reads the session's `option_sums_wide` (option counts per unit, wide_sums.sql),
-- `answer_options` (one row per item x option, from the instrument; column_name is the
-- option's column of option_sums_wide, NULL for the no-answer row) and
-- `published_item_cells` / `published_response_cells` (the published cells, with
-- their suppression decided).
--
-- Hidden cells keep their rows with NULL counts and percentages: the same hidden
-- pattern as `cells`. Option counts add up across units exactly as the n do (a peer
-- group's count of "Agree" is the sum of its sites' counts), so with the same cells
-- hidden, any count worked out by subtraction is a sum over hidden cells whose n, which
-- the suppression guarantees is 0 or at least k, could be worked out the same way:
-- a hidden group's option counts can only be known summed with another hidden group's.
-- The no-answer count is the unit's responses minus the item's n, shown only where both
-- cells are shown (so it is the difference of two shown numbers, and adds nothing).

with

item_cells as (
    select wave, level, unit, peer_group, measure, n, suppressed
    from published_item_cells
),

response_cells as (
    select wave, level, unit, n as responses, suppressed as responses_hidden
    from published_response_cells
),

options as (
    select measure, position::bigint as position, option_code::bigint as option_code,
        option_label, scored_code::bigint as scored_code, favourable::boolean as favourable,
        is_answer::boolean as is_answer, column_name
    from answer_options
),

counts as (
    unpivot option_sums_wide
    on columns('^o__')
    into name column_name value answers
),

final as (
    select
        c.wave::bigint as wave,
        c.level,
        c.unit,
        c.peer_group,
        c.measure,
        o.position,
        o.option_code,
        o.option_label,
        o.scored_code,
        o.favourable,
        o.is_answer,
        case when c.suppressed then null
             when o.is_answer then coalesce(k.answers, 0)
             when r.responses_hidden then null
             else r.responses - c.n end::bigint as answers,
        case when c.suppressed or not o.is_answer then null
             else 100.0 * coalesce(k.answers, 0) / c.n end::double as pct,
        c.suppressed
    from item_cells c
    join options o
        on o.measure = c.measure
    left join counts k
        on k.wave = c.wave and k.level = c.level and k.unit = c.unit
        and k.column_name = o.column_name
    left join response_cells r
        on r.wave = c.wave and r.level = c.level and r.unit = c.unit
)

select * from final
order by wave, level, unit, measure, position
