-- Site totals of group_sums: every attribute's groups partition the site (not_stated
-- included), so each site total is the sum of one attribute's groups, which saves a
-- grouping set over the respondents. Every measure column is a count or a sum; the
-- insert casts each sum back to its column's type.
-- Parameters: $breakdown (the attribute whose groups are summed).

insert into group_sums

with

groups as (
    select * from group_sums where breakdown = $breakdown
),

final as (
    select wave, site_code, 'all', 'all',
        sum(columns(* exclude (wave, site_code, breakdown, grp)))
    from groups
    group by wave, site_code
)

select * from final
