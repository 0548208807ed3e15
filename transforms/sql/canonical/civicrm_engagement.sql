-- canonical.engagement rows: one per case client (CaseContact), the case type being the
-- programme and the case status mapped to an engagement status. A case with two clients is
-- two engagements (source_id '<case id>:<contact id>'). Trashed or hard-deleted cases stay
-- as is_deleted rows. Cases failing a mapping are quarantined (quarantine/civicrm_case.sql).
SELECT
    $org_id AS org_id,
    'civicrm' AS source_system,
    CAST(c.id AS TEXT) || ':' || CAST(cc.contact_id AS TEXT) AS source_id,
    c.modified_date AS source_updated_at,
    COALESCE(c.is_deleted, FALSE) OR COALESCE(c.deleted_in_source, FALSE)
    OR COALESCE(cc.deleted_in_source, FALSE)
    -- A person deleted for good takes these with them at once (CiviCRM cascades).
    OR COALESCE(p.deleted_in_source, FALSE) AS is_deleted,
    c._dlt_load_id AS _load_id,
    CAST(cc.contact_id AS TEXT) AS person_source_id,
    prog.value AS programme_source_id,
    stat.value AS status,
    c.start_date,
    c.end_date
FROM raw.civicrm__case AS c
JOIN raw.civicrm__case_contact AS cc
    ON cc.case_id = c.id
JOIN raw.civicrm__contact AS p
    ON p.id = cc.contact_id
JOIN hub.label_map AS prog
    ON prog.org_id = $org_id AND prog.mapping = 'programme'
    AND prog.label = LOWER(TRIM(REGEXP_REPLACE(c.case_type, '\s+', ' ', 'g')))
JOIN hub.label_map AS stat
    ON stat.org_id = $org_id AND stat.mapping = 'engagement_status'
    AND stat.label = LOWER(TRIM(REGEXP_REPLACE(c.status, '\s+', ' ', 'g')))
WHERE c.start_date IS NOT NULL
