-- row keys: the source row and key columns of every row of a numbered file, to find
-- duplicates before the rows are written. DuckDB keeps only the columns this query
-- needs: it reads four of the file's.
--
-- Slots: row_values (row_values.sql for this file). Parameters: those it uses.

with

row_values as (
    {{row_values}}
),

final as (
    select source_row, site_code, wave, response_id from row_values
)

select * from final
