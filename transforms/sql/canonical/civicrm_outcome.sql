-- canonical.outcome rows: activities whose outcome custom field is filled (the member's
-- connector.outcome_fields), one per target contact, with the outcome and status option
-- names mapped through mappings.outcomes and mappings.outcome_status. The programme is the
-- activity's case type when it is filed on a case (it must then be mapped).
SELECT
    $org_id AS org_id,
    'civicrm' AS source_system,
    CAST(a.id AS TEXT) || ':' || CAST(ac.contact_id AS TEXT) AS source_id,
    a.modified_date AS source_updated_at,
    COALESCE(a.is_deleted, FALSE) OR COALESCE(a.deleted_in_source, FALSE)
    OR COALESCE(ac.deleted_in_source, FALSE)
    -- A person deleted for good takes these with them at once (CiviCRM cascades).
    OR COALESCE(p.deleted_in_source, FALSE) AS is_deleted,
    a._dlt_load_id AS _load_id,
    CAST(ac.contact_id AS TEXT) AS person_source_id,
    prog.value AS programme_source_id,
    code.value AS outcome_code,
    stat.value AS status,
    CAST(a.activity_date_time AS DATE) AS measured_on,
    CAST(a.cfg__outcome_value AS DOUBLE) AS value
FROM raw.civicrm__activity AS a
JOIN raw.civicrm__activity_contact AS ac
    ON ac.activity_id = a.id AND ac.record_type = 'Activity Targets'
JOIN raw.civicrm__contact AS p
    ON p.id = ac.contact_id
JOIN hub.label_map AS code
    ON code.org_id = $org_id AND code.mapping = 'outcome'
    AND code.label = LOWER(TRIM(REGEXP_REPLACE(a.cfg__outcome, '\s+', ' ', 'g')))
JOIN hub.label_map AS stat
    ON stat.org_id = $org_id AND stat.mapping = 'outcome_status'
    AND stat.label = LOWER(TRIM(REGEXP_REPLACE(a.cfg__outcome_status, '\s+', ' ', 'g')))
LEFT JOIN raw.civicrm__case AS c
    ON c.id = a.case_id
LEFT JOIN hub.label_map AS prog
    ON prog.org_id = $org_id AND prog.mapping = 'programme'
    AND prog.label = LOWER(TRIM(REGEXP_REPLACE(c.case_type, '\s+', ' ', 'g')))
WHERE a.activity_date_time IS NOT NULL AND (c.id IS NULL OR prog.value IS NOT NULL)
