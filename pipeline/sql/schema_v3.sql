-- Store schema, version 3: frozen waves (issue 25).
--
-- A frozen wave's published rows are held here, table by table (created on the first
-- freeze as `held_<table>`, the published table's columns), and every later run publishes
-- them verbatim. Freezing and unfreezing are logged, with who and why: correcting a
-- frozen wave is an explicit unfreeze-rerun-freeze, never a side effect.

create table frozen_waves (
    wave        integer primary key,
    frozen_at   timestamp not null,
    frozen_by   varchar not null,
    version     integer not null,     -- 1 for the first freeze of the wave, 2 after a refreeze ...
    fingerprint varchar not null      -- sha256 of the held rows, table by table
);

create table wave_events (
    happened_at timestamp not null,
    wave   integer not null,
    action varchar not null check (action in ('freeze', 'unfreeze', 'purge')),
    done_by varchar not null,
    reason varchar not null,
    detail varchar
);

-- Every distinct version of every wave's cells ever published, open waves' too (a run
-- keeps, before replacing the published layer, the cells of each wave the new layer
-- changes; a freeze keeps the frozen version), kept through unfreezes and purges: the
-- verifier checks a new layer against all of them, so neither a corrected frozen wave nor
-- an open wave published again with a few more answers can be differenced against what
-- readers saw before.
create table cell_versions (
    wave         integer not null,
    version      integer not null,
    level        varchar not null,
    unit         varchar not null,
    breakdown    varchar not null,
    grp          varchar not null,
    measure_kind varchar not null,
    measure      varchar not null,
    n            bigint,
    suppressed   boolean not null,
    -- the shown statistics too: the same n with another mean across versions is a swap
    -- of a small set of respondents, which the verifier must catch
    peer_group       varchar,
    mean             double,
    sd               double,
    pct_favourable   double,
    pct_unfavourable double
);

create table cell_version_marks (
    wave        integer not null,
    version     integer not null,
    fingerprint varchar not null,     -- of the version's cells (pipeline.waves.cells_fingerprint)
    recorded_at timestamp not null,
    primary key (wave, version)
);
