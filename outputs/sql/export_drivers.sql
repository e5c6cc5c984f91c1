-- export_drivers: the published driver models (`drivers`) in the shape a researcher
-- receives, with the same site columns as export_cells.sql and the same pseudonyms and
-- left-out peer groups (session tables `site_pseudonyms`, `hidden_peer_groups`). Every
-- model rests on at least 100 respondents (stats.drivers.MIN_SITE_RESPONDENTS); a
-- site's own model carries no interval.

with

drivers as (
    select * from drivers
),

sites as (
    select site_code, name, region from sites
),

scales as (
    select measure, name from measures where measure_kind = 'scale'
),

pseudonyms as (
    select site_code, pseudonym, site_type, region from site_pseudonyms
),

joined as (
    select d.*, s.name as site_name, s.region, m.name as measure_name, p.pseudonym,
        p.site_code is not null as pseudonymised, p.site_type as shown_site_type,
        p.region as shown_region
    from drivers d
    left join sites s
        on d.scope = 'site' and s.site_code = d.unit
    left join scales m
        on m.measure = d.scale
    left join pseudonyms p
        on d.scope = 'site' and p.site_code = d.unit
    where not (d.scope = 'peer' and d.unit in (select peer_group from hidden_peer_groups))
),

final as (
    select
        wave,
        scope as level,
        coalesce(pseudonym, unit) as unit,
        site_name,
        case when scope = 'national' then null
             when pseudonymised then shown_site_type
             else peer_group end as site_type,
        case when pseudonymised then shown_region else region end as region,
        outcome,
        model,
        fit_measure,
        scale as measure,
        measure_name,
        n,
        sites,
        share,
        share_low,
        share_high,
        relative_weight,
        r2,
        r2_low,
        r2_high,
        rank,
        note,
        -- as in every level; always 0 here: no model under the minimum is published
        0 as suppressed
    from joined
)

select * from final
