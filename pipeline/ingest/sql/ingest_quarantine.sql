-- Rejected rows of one ingest batch, one line per problem, with a reason a survey
-- lead can act on.
--
-- Reads the temp relations the ingest step builds (pipeline.ingest.row_checks):
--   checked       one row per data row: cleaned values, reason ids in p__<column>,
--                 item statuses in s__<item> (>= 250 marks a problem: status - 249 is
--                 the reason id)
--   problem_map   marker column -> reported column name, source column, accepted values
--   raw           the file as text, with source_row
-- Parameters: $batch_id, $min_answered.

with

bad_rows as (
    select * from checked where n_problems > 0
),

markers as (
    -- UNPIVOT drops NULL markers; item statuses below 250 are answers, not problems.
    unpivot (select source_row, response_id, site_text, wave_text, answered,
                    columns('^[ps]__')
             from bad_rows)
    on columns('^[ps]__')
    into name marker value code
),

problems as (
    select *,
        case when starts_with(marker, 's__') then code - 249 else code end as reason_id
    from markers
    where starts_with(marker, 'p__') or code >= 250
),

bad_raw as (
    unpivot (select * from raw where source_row in (select source_row from bad_rows))
    on columns(* exclude (source_row))
    into name source_column value bad_value
),

located as (
    select
        problems.source_row,
        problems.response_id,
        problem_map.column_name,
        problem_map.accepts,
        problems.reason_id,
        case problem_map.column_name
            when '(answers)' then problems.answered::varchar
            when 'site' then coalesce(bad_raw.bad_value, problems.site_text)
            when 'wave' then coalesce(bad_raw.bad_value, problems.wave_text)
            else bad_raw.bad_value
        end as bad_value
    from problems
    join problem_map using (marker)
    left join bad_raw
        on bad_raw.source_row = problems.source_row
        and bad_raw.source_column = problem_map.source_column
),

final as (
    select
        $batch_id::integer as batch_id,
        source_row,
        response_id,
        column_name,
        bad_value,
        -- Reason ids are pipeline.ingest.row_checks.REASONS in order, starting at 1.
        [ 'out_of_range', 'unknown_label', 'missing_required', 'unknown_site',
          'unknown_wave', 'duplicate_response_id', 'too_few_answers',
          'invalid_value' ][reason_id] as reason_code,
        case reason_id
            when 1 then format('{}: {} is not an answer code; accepted: {}',
                               column_name, bad_value, accepts)
            when 2 then format('{}: ''{}'' is not a recognised answer; accepted: {}',
                               column_name, bad_value, accepts)
            when 3 then format('{} is blank; every row needs a {}', column_name, column_name)
            when 4 then format('site ''{}'' is not set up; add it with `culture sites add` '
                               || 'or `culture sites load`, or correct the code', bad_value)
            when 5 then format('wave ''{}'' is not set up; add the year with '
                               || '`culture waves add YEAR`, or correct it', bad_value)
            when 6 then format('response id ''{}'' is already used for this site and wave '
                               || '(earlier in this file or in an earlier file)', bad_value)
            when 7 then format('only {} questions answered; a usable response needs at '
                               || 'least {}', bad_value, $min_answered)
            when 8 then format('{}: ''{}'' is not valid; accepted: {}',
                               column_name, bad_value, accepts)
        end as reason
    from located
)

select * from final
order by source_row, column_name
