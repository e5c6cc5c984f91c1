-- export_cells: every published cell in the shape a researcher receives.
--
-- Reads only the published layer (its connection opened read-only) and the session's
-- `site_pseudonyms` (site_code -> pseudonym and the coarsened site type and region to
-- show; empty when the export names sites) and `hidden_peer_groups` (peer groups whose
-- rows a pseudonymised export leaves out, see outputs.export.coarsen_quasi_identifiers).
-- One row per unit (site, peer group, all sites) x wave x breakdown group x measure.
-- Hidden cells keep their row with NULL statistics and suppressed = 1, so a
-- researcher sees that a cell exists and was withheld, never its count.

with

cells as (
    select * from cells
),

sites as (
    select site_code, name, region from sites
),

measures as (
    select measure_kind, measure, name from measures
),

-- Readable names of attribute groups (e.g. "Locally employed doctor").
group_labels as (
    select breakdown, grp, label from groups
),

-- Reliability is published per site x wave only where the site's scale cell is shown,
-- and per wave for all sites together; peer groups have none.
site_reliability as (
    select cast(wave as integer) as wave, site_code, scale, alpha, ci_low, ci_high, omega_total
    from reliability
    where level = 'site_wave'
),

national_reliability as (
    select cast(wave as integer) as wave, scale, alpha, ci_low, ci_high, omega_total
    from reliability
    where level = 'wave'
),

gaps as (
    select wave, site_code, principle, target, target_basis, gap, gap_low, gap_high,
        certainty, priority
    from principle_gaps
),

pseudonyms as (
    select site_code, pseudonym, site_type, region from site_pseudonyms
),

hidden_peer_groups as (
    select peer_group from hidden_peer_groups
),

joined as (
    select
        c.*,
        s.name as site_name,
        s.region,
        m.name as measure_name,
        gl.label as group_label,
        coalesce(sr.alpha, nr.alpha) as alpha,
        coalesce(sr.ci_low, nr.ci_low) as alpha_ci_low,
        coalesce(sr.ci_high, nr.ci_high) as alpha_ci_high,
        coalesce(sr.omega_total, nr.omega_total) as omega_total,
        p.pseudonym,
        p.site_code is not null as pseudonymised,
        p.site_type as shown_site_type,
        p.region as shown_region,
        -- Sites sharing a peer group's target share its type: where a pseudonymised
        -- export does not show the type as itself, it shows no such target either (nor
        -- the gap, certainty and priority worked from it).
        p.site_code is not null and p.site_type is distinct from c.peer_group
            and g.target_basis like 'peer group%' as hides_peer_target,
        g.target, g.gap, g.gap_low, g.gap_high, g.certainty, g.priority
    from cells as c
    left join sites as s
        on c.level = 'site' and s.site_code = c.unit
    left join measures as m
        on m.measure_kind = c.measure_kind and m.measure = c.measure
    left join group_labels as gl
        on gl.breakdown = c.breakdown and gl.grp = c.grp
    left join site_reliability as sr
        on c.level = 'site' and c.breakdown = 'all' and c.measure_kind = 'scale'
        and sr.wave = c.wave and sr.site_code = c.unit and sr.scale = c.measure
    left join national_reliability as nr
        on c.level = 'national' and c.breakdown = 'all' and c.measure_kind = 'scale'
        and nr.wave = c.wave and nr.scale = c.measure
    left join pseudonyms as p
        on c.level = 'site' and p.site_code = c.unit
    left join gaps as g
        on c.level = 'site' and c.breakdown = 'all' and c.measure_kind = 'principle'
        and g.wave = c.wave and g.site_code = c.unit and g.principle = c.measure
    -- A pseudonymised export drops the rows of peer groups too small to show.
    where not (c.level = 'peer' and c.unit in (select peer_group from hidden_peer_groups))
),

final as (
    select
        wave,
        level,
        coalesce(pseudonym, unit) as unit,
        site_name,
        -- A site's type is its peer group (coarsened when pseudonymised); a peer group's
        -- rows carry their own type.
        case when level = 'national' then null
             when pseudonymised then shown_site_type
             else peer_group end as site_type,
        case when pseudonymised then shown_region else region end as region,
        breakdown,
        grp as group_value,
        group_label,
        measure_kind,
        measure,
        measure_name,
        n,
        mean,
        sd,
        se,
        ci_low,
        ci_high,
        mean_0_10,
        pct_favourable,
        pct_unfavourable,
        -- Belt and braces: reliability is already published only for shown cells.
        case when suppressed then null else alpha end as alpha,
        case when suppressed then null else alpha_ci_low end as alpha_ci_low,
        case when suppressed then null else alpha_ci_high end as alpha_ci_high,
        case when suppressed then null else omega_total end as omega_total,
        case when hides_peer_target then null else target end as target,
        case when hides_peer_target then null else gap end as gap,
        case when hides_peer_target then null else gap_low end as gap_low,
        case when hides_peer_target then null else gap_high end as gap_high,
        case when hides_peer_target then null else certainty end as certainty,
        case when hides_peer_target then null else priority end as priority,
        cast(suppressed as integer) as suppressed
    from joined
)

select * from final
