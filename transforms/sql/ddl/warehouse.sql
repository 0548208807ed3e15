-- The hub's own tables: canonical model, quarantine, linkage and published dataset.
-- Written in DuckDB SQL and transpiled by sqlglot; keep to portable types.
CREATE SCHEMA IF NOT EXISTS canonical;
CREATE SCHEMA IF NOT EXISTS quarantine;
CREATE SCHEMA IF NOT EXISTS hub;
CREATE SCHEMA IF NOT EXISTS published;

CREATE TABLE IF NOT EXISTS canonical.person (
    org_id TEXT NOT NULL,
    source_system TEXT NOT NULL,
    source_id TEXT NOT NULL,
    source_updated_at TIMESTAMP,
    is_deleted BOOLEAN NOT NULL,
    _load_id TEXT,
    given_name TEXT,
    family_name TEXT,
    birth_date DATE,
    email TEXT,
    phone TEXT,
    postcode TEXT,
    consent_to_share BOOLEAN NOT NULL,
    PRIMARY KEY (org_id, source_id)
);

CREATE TABLE IF NOT EXISTS canonical.programme (
    org_id TEXT NOT NULL,
    source_system TEXT NOT NULL,
    source_id TEXT NOT NULL,
    source_updated_at TIMESTAMP,
    is_deleted BOOLEAN NOT NULL,
    _load_id TEXT,
    name TEXT NOT NULL,
    outcome_area TEXT NOT NULL,
    PRIMARY KEY (org_id, source_id)
);

CREATE TABLE IF NOT EXISTS canonical.engagement (
    org_id TEXT NOT NULL,
    source_system TEXT NOT NULL,
    source_id TEXT NOT NULL,
    source_updated_at TIMESTAMP,
    is_deleted BOOLEAN NOT NULL,
    _load_id TEXT,
    person_source_id TEXT NOT NULL,
    programme_source_id TEXT NOT NULL,
    status TEXT NOT NULL,
    start_date DATE NOT NULL,
    end_date DATE,
    PRIMARY KEY (org_id, source_id)
);

CREATE TABLE IF NOT EXISTS canonical.service_delivery (
    org_id TEXT NOT NULL,
    source_system TEXT NOT NULL,
    source_id TEXT NOT NULL,
    source_updated_at TIMESTAMP,
    is_deleted BOOLEAN NOT NULL,
    _load_id TEXT,
    person_source_id TEXT NOT NULL,
    programme_source_id TEXT NOT NULL,
    service_name TEXT,
    delivered_on DATE NOT NULL,
    quantity DOUBLE PRECISION,
    unit TEXT,
    PRIMARY KEY (org_id, source_id)
);

CREATE TABLE IF NOT EXISTS canonical.outcome (
    org_id TEXT NOT NULL,
    source_system TEXT NOT NULL,
    source_id TEXT NOT NULL,
    source_updated_at TIMESTAMP,
    is_deleted BOOLEAN NOT NULL,
    _load_id TEXT,
    person_source_id TEXT NOT NULL,
    programme_source_id TEXT,
    outcome_code TEXT NOT NULL,
    status TEXT NOT NULL,
    measured_on DATE NOT NULL,
    value DOUBLE PRECISION,
    PRIMARY KEY (org_id, source_id)
);

-- Every row the hub did not take as it came: rejected (error), value dropped (warning) or
-- not a data row (skipped), with where it was and what to do about it.
CREATE TABLE IF NOT EXISTS quarantine.rejected_rows (
    org_id TEXT NOT NULL,
    source_system TEXT NOT NULL,
    entity TEXT NOT NULL,
    source_file TEXT,
    source_row BIGINT,
    source_id TEXT,
    column_name TEXT,
    raw_value TEXT,
    reason TEXT NOT NULL,
    -- A stable code per rule (transforms/quality/rules.py), for grouping and trends.
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    stage TEXT NOT NULL,
    _load_id TEXT
);
-- Warehouses made before rule codes: the column is added (rows are rebuilt per member).
ALTER TABLE quarantine.rejected_rows ADD COLUMN IF NOT EXISTS rule TEXT;

-- Member labels mapped onto the shared taxonomy (from members/<org>.yaml); labels are
-- stored normalised (lower case, single spaces) and matched the same way.
CREATE TABLE IF NOT EXISTS hub.label_map (
    org_id TEXT NOT NULL,
    mapping TEXT NOT NULL,
    label TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (org_id, mapping, label)
);

CREATE TABLE IF NOT EXISTS hub.outcome_taxonomy (
    outcome_code TEXT PRIMARY KEY,
    outcome_area TEXT NOT NULL,
    label TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS hub.member (
    org_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    connector TEXT NOT NULL,
    last_refreshed TIMESTAMP
);

-- Whether each member's data is current or held back (its last load or mapping failed, so
-- its last good canonical rows stay published), and why. reason is the member-facing error
-- text, kept inside the hub: releases carry only status, stage and dates.
CREATE TABLE IF NOT EXISTS hub.member_status (
    org_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    stage TEXT,
    reason TEXT,
    last_good_load TIMESTAMP,
    failed_at TIMESTAMP,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS hub.person_link (
    org_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    person_key TEXT NOT NULL,
    match_probability DOUBLE PRECISION NOT NULL,
    method TEXT NOT NULL,
    fingerprint TEXT,
    PRIMARY KEY (org_id, source_id)
);
-- Warehouses linked before incremental linking lack the fingerprint (their next run is full).
ALTER TABLE hub.person_link ADD COLUMN IF NOT EXISTS fingerprint TEXT;

-- Every change to a person key (created, merged into another, split from one, retired), so
-- a published figure that moves between releases can be explained. Never holds personal data.
CREATE TABLE IF NOT EXISTS hub.person_key_history (
    changed_at TIMESTAMP NOT NULL,
    person_key TEXT NOT NULL,
    change TEXT NOT NULL,
    other_key TEXT,
    records INTEGER NOT NULL,
    model_version TEXT
);

-- Trained linkage models, one row per version (a hash of the model's JSON).
CREATE TABLE IF NOT EXISTS hub.linkage_model (
    model_version TEXT PRIMARY KEY,
    trained_at TIMESTAMP NOT NULL,
    records INTEGER NOT NULL,
    model_json TEXT NOT NULL
);

-- One row per linkage run: full or incremental, why, and how much it re-linked.
CREATE TABLE IF NOT EXISTS hub.linkage_run (
    run_at TIMESTAMP NOT NULL,
    mode TEXT NOT NULL,
    reason TEXT NOT NULL,
    model_version TEXT,
    records INTEGER NOT NULL,
    changed_records INTEGER NOT NULL,
    deleted_records INTEGER NOT NULL,
    relinked_records INTEGER NOT NULL,
    people INTEGER NOT NULL,
    seconds DOUBLE PRECISION NOT NULL
);

-- Pairs the model is unsure about (between the review and accept thresholds), waiting for a
-- person's decision; rebuilt for the people each linkage run re-links.
CREATE TABLE IF NOT EXISTS hub.link_review (
    org_id_l TEXT NOT NULL,
    source_id_l TEXT NOT NULL,
    org_id_r TEXT NOT NULL,
    source_id_r TEXT NOT NULL,
    match_probability DOUBLE PRECISION NOT NULL,
    model_version TEXT,
    queued_at TIMESTAMP NOT NULL
);

-- A person's decisions on pairs (accept: same person; reject: different people). Later runs
-- honour them over the model.
CREATE TABLE IF NOT EXISTS hub.link_decision (
    org_id_l TEXT NOT NULL,
    source_id_l TEXT NOT NULL,
    org_id_r TEXT NOT NULL,
    source_id_r TEXT NOT NULL,
    decision TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    decided_at TIMESTAMP NOT NULL,
    PRIMARY KEY (org_id_l, source_id_l, org_id_r, source_id_r)
);

-- Calendar quarters covered by a publication run.
CREATE TABLE IF NOT EXISTS hub.period (
    period TEXT PRIMARY KEY,
    start_date DATE NOT NULL,
    end_date DATE NOT NULL
);

-- Every erasure the hub was asked for (issue #18): `hub forget` (one person) and
-- `hub remove-member` (a departing member). Who asked, what and when, and how many rows
-- each layer lost; never a name, a value or the record's id: `subject` is a digest of the
-- member and the record id, which later loads use to erase the record again if the
-- member's system sends it back.
CREATE TABLE IF NOT EXISTS hub.erasure_log (
    erasure_id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    org_id TEXT NOT NULL,
    subject TEXT,
    requested_by TEXT NOT NULL,
    erased_at TIMESTAMP NOT NULL,
    rows_erased TEXT NOT NULL
);

-- Quarters whose published figures counted someone since erased: the next release revises
-- them (disclosure-controlled with their earlier versions), then notes its version here.
CREATE TABLE IF NOT EXISTS hub.erasure_revision (
    erasure_id TEXT NOT NULL,
    period TEXT NOT NULL,
    revised_in TEXT
);
