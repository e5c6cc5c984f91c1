-- Numbers the rows of the temp table `checked` by their position, which is their order
-- in the file (CREATE TABLE AS keeps it), then marks the second and later rows with the
-- same site, wave and response id, and rows whose id is already stored for that site and
-- wave. Runs on `checked`'s key columns only.
-- Reason id 6 is duplicate_response_id (pipeline.ingest.row_checks.REASONS, from 1).
-- Slots: duplicate_rows (duplicate_rows.sql over `checked`).

alter table checked add column source_row bigint;

update checked set source_row = rowid + 1;

update checked set p__duplicate = 6, n_problems = n_problems + 1
where source_row in ({{duplicate_rows}});
