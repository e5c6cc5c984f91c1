-- duplicate rows: the source_row of every row repeating an earlier row's site, wave
-- and response id, or an id already stored for that site and wave.
--
-- Slots: keys, a relation (or parenthesised query) with source_row, site_code, wave and
-- response_id.

with

keyed as (
    select source_row, site_code, wave, response_id from {{keys}}
    where response_id is not null and site_code is not null and wave is not null
),

repeated as (
    select source_row from (
        select source_row, row_number() over (
            partition by site_code, wave, response_id order by source_row) as nth
        from keyed)
    where nth > 1
),

already_stored as (
    select source_row from keyed
    semi join responses using (site_code, wave, response_id)
),

final as (
    select source_row from repeated
    union
    select source_row from already_stored
)

select * from final
