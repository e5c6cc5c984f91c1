-- purge_quarantine: blank the answer values and response ids of the quarantined rows of
-- purged waves, keeping why each was rejected (pipeline.retention).
--
-- The reason text quotes the bad value (pipeline/ingest/sql/ingest_quarantine.sql), so
-- it is rewritten with the value replaced, in the form each reason writes it: after the
-- column name (out_of_range), as the count (too_few_answers), else in quotes. A reason
-- whose value is not found in that form is replaced as a whole by its code and column,
-- rather than kept with a value in it.
-- Slots: quarantine_waves (sql/quarantine_waves.sql). Parameters: $waves (purged).

update quarantine
set
    reason = case
        when bad_value is null then reason
        when reason_code = 'out_of_range'
             and contains(reason, column_name || ': ' || bad_value || ' is not')
            then replace(reason, column_name || ': ' || bad_value || ' is not',
                         column_name || ': (value purged) is not')
        when reason_code = 'too_few_answers'
             and contains(reason, 'only ' || bad_value || ' questions')
            then replace(reason, 'only ' || bad_value || ' questions',
                         'only (count purged) questions')
        when contains(reason, '''' || bad_value || '''')
            then replace(reason, '''' || bad_value || '''', '(value purged)')
        else reason_code || ' in ' || column_name || ' (the reason quoted the value, '
             || 'which was purged)'
    end,
    bad_value = null,
    response_id = null
from ({{quarantine_waves}}) as told
where quarantine.batch_id = told.batch_id
    and quarantine.source_row = told.source_row
    and list_contains($waves, told.wave)
    and (quarantine.bad_value is not null or quarantine.response_id is not null)
