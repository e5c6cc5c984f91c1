-- export_answers: the published answer distributions (`item_answers`) in the shape a
-- researcher receives, with the same site columns as export_cells.sql and the same
-- pseudonyms and left-out peer groups (session tables `site_pseudonyms`,
-- `hidden_peer_groups`). Hidden cells keep their rows with blank counts, as published.

with

answers as (
    select * from item_answers
),

sites as (
    select site_code, name, region from sites
),

items as (
    select measure, name from measures where measure_kind = 'item'
),

pseudonyms as (
    select site_code, pseudonym, site_type, region from site_pseudonyms
),

joined as (
    select a.*, s.name as site_name, s.region, i.name as measure_name, p.pseudonym,
        p.site_code is not null as pseudonymised, p.site_type as shown_site_type,
        p.region as shown_region
    from answers a
    left join sites s
        on a.level = 'site' and s.site_code = a.unit
    left join items i
        on i.measure = a.measure
    left join pseudonyms p
        on a.level = 'site' and p.site_code = a.unit
    where not (a.level = 'peer' and a.unit in (select peer_group from hidden_peer_groups))
),

final as (
    select
        wave,
        level,
        coalesce(pseudonym, unit) as unit,
        site_name,
        case when level = 'national' then null
             when pseudonymised then shown_site_type
             else peer_group end as site_type,
        case when pseudonymised then shown_region else region end as region,
        measure,
        measure_name,
        position as option_position,
        option_code,
        option_label,
        scored_code,
        cast(favourable as integer) as favourable,
        cast(is_answer as integer) as is_answer,
        answers,
        pct as pct_answers,
        cast(suppressed as integer) as suppressed
    from joined
)

select * from final
