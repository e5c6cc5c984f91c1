-- Store schema, version 1.
--
-- Respondent-level tables (responses, quarantine) are read only by the pipeline's
-- own stages; nothing downstream of publish may read them.
-- Item and attribute columns of `responses` are added per instrument version by
-- pipeline.store.ensure_instrument_columns (one column per item id, UTINYINT).

create table sites (
    site_code   varchar primary key,
    name        varchar not null,
    -- Site types of the RESTORE 2 study design (Table 1), plus primary care.
    site_type   varchar not null check (site_type in (
                    'acute_trust', 'professional_support_unit',
                    'independent_support_org', 'primary_care')),
    region      varchar
);

-- Optional staff-group headcounts, used for response rates and weighting.
create table site_headcounts (
    site_code   varchar not null,
    staff_group varchar not null,
    headcount   integer not null check (headcount >= 0),
    primary key (site_code, staff_group)
);

-- One survey wave per year.
create table waves (
    wave        integer primary key check (wave between 1990 and 2100),
    label       varchar not null
);

-- Every instrument version responses were ingested with, kept verbatim.
create table instruments (
    instrument_version varchar primary key,   -- e.g. 'support-culture@1.0'
    definition_yaml    varchar not null,
    registered_at      timestamp not null
);

create sequence ingest_batch_id start 1;

create table ingest_batches (
    batch_id           integer primary key,
    source_name        varchar not null,
    sha256             varchar not null,
    file_format        varchar not null,
    site_flag          varchar,              -- --site given on the command line
    wave_flag          integer,              -- --wave given on the command line
    instrument_version varchar not null,
    rows_read          bigint not null,
    rows_accepted      bigint not null,
    rows_rejected      bigint not null,
    ingested_at        timestamp not null
);

-- Respondent-level answers. No names, e-mail, IP addresses or user agents;
-- submitted_on is a day, never a time.
create table responses (
    response_id        varchar not null,
    site_code          varchar not null,
    wave               integer not null,
    instrument_version varchar not null,
    batch_id           integer not null,
    source_row         bigint not null,
    submitted_on       date,
    duration_seconds   double
);

-- Rejected rows: one line per problem, so a row with two problems appears twice.
create table quarantine (
    batch_id     integer not null,
    source_row   bigint not null,     -- 1-based data row of the file (header not counted)
    response_id  varchar,
    column_name  varchar not null,
    bad_value    varchar,
    reason_code  varchar not null,
    reason       varchar not null
);
