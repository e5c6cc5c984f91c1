-- row_values: every data row of the file as cleaned values, codes and problem markers,
-- in one vectorised pass (pipeline.ingest.row_checks explains the markers).
--
-- Reads `raw_typed` (the file as its reader types it) or, for a file read with row
-- numbers, `raw_numbered` (the same plus DuckDB's 0-based file_row_number).
-- Reason ids are pipeline.ingest.row_checks.REASONS in order, from 1:
--   3 missing_required, 4 unknown_site, 5 unknown_wave, 8 invalid_value.
--
-- Slots (filled by pipeline.ingest.row_checks.build_checked_sql; a list slot ends each
-- of its columns with a comma, and DuckDB accepts the last one):
--   raw                                  raw_typed or raw_numbered
--   source_row, keep_source_row          the row number columns of a numbered file
--   response_id, site, wave, submitted_on, duration
--                                        the file's cell as text, or null::varchar when
--                                        the file has no such column
--   attribute_texts, attribute_codes, attribute_values
--                                        per attribute: its text, its code (the cell
--                                        itself, or its label looked up), and the code
--                                        with its p__ marker
--   item_values, item_statuses           per item: its value and its status s__<item>;
--                                        an item asked of some only (asked_if) also
--                                        has b__<item>, true where its answer was
--                                        blanked because the row's attribute code
--                                        (c__<attribute>) is not one it is asked of
-- Parameters: $site_flag, $wave_flag (fill blank cells), $known_sites, $known_waves,
-- $earliest_date, $latest_date, $max_duration, and per attribute $keys_<id> /
-- $codes_<id>, per response scale $labels_<id> / $labelcodes_<id>, per routed item
-- $asked_<item> (the attribute codes it is asked of).

with

cleaned as (
    select
        {{source_row}}
        {{response_id}} as v__response_id,
        coalesce({{site}}, $site_flag) as v__site,
        coalesce({{wave}}, $wave_flag) as v__wave,
        {{submitted_on}} as v__submitted_on,
        {{duration}} as v__duration,
        {{attribute_texts}}
        {{item_values}}
    from {{raw}}
),

coded as (
    select
        *,
        upper(v__site) as c__site,
        try_cast(try_cast(v__wave as double) as integer) as c__wave,
        -- Exports carry dates or timestamps; only the day is kept.
        coalesce(try_cast(v__submitted_on as date),
                 try_strptime(v__submitted_on, '%d/%m/%Y')::date,
                 try_cast(v__submitted_on as timestamp)::date,
                 try_strptime(v__submitted_on, '%d/%m/%Y %H:%M')::date) as c__submitted_on,
        try_cast(v__duration as double) as c__duration,
        {{attribute_codes}}
    from cleaned
),

final as (
    select
        {{keep_source_row}}
        v__response_id as response_id,
        v__site as site_text,
        v__wave as wave_text,
        case when list_contains($known_sites, c__site) then c__site end as site_code,
        case when list_contains($known_waves, c__wave) then c__wave end as wave,
        -- Out-of-range dates and durations are problems (below), so the rows holding
        -- them are never stored; the CASEs only keep the clean columns clean.
        case when c__submitted_on between $earliest_date and $latest_date
            then c__submitted_on end as submitted_on,
        case when isfinite(c__duration) and c__duration between 0 and $max_duration
            then c__duration end as duration_seconds,
        case when v__response_id is null then 3 end::utinyint as p__response_id,
        case when v__site is null then 3
             when not list_contains($known_sites, c__site) then 4 end::utinyint as p__site,
        case when v__wave is null then 3
             when not coalesce(list_contains($known_waves, c__wave), false) then 5
        end::utinyint as p__wave,
        case when v__submitted_on is not null and not coalesce(c__submitted_on
                between $earliest_date and $latest_date, false)
            then 8 end::utinyint as p__submitted_on,
        case when v__duration is not null and not coalesce(isfinite(c__duration)
                and c__duration between 0 and $max_duration, false)
            then 8 end::utinyint as p__duration_seconds,
        {{attribute_values}}
        {{item_statuses}}
    from coded
)

select * from final
