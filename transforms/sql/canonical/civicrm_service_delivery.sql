-- canonical.service_delivery rows: completed activities of the types the member counts as
-- help delivered (connector.delivery_activity_types), one per target contact (a group
-- session with six people is six deliveries; source_id '<activity id>:<contact id>'). The
-- programme is the type of the case the activity is filed on; quantity is its duration in
-- minutes. Activities not on a mapped case are quarantined (quarantine/civicrm_activity.sql).
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
    a.activity_type AS service_name,
    CAST(a.activity_date_time AS DATE) AS delivered_on,
    CAST(a.duration AS DOUBLE) AS quantity,
    CASE WHEN a.duration IS NULL THEN NULL ELSE 'minutes' END AS unit
FROM raw.civicrm__activity AS a
JOIN raw.civicrm__activity_contact AS ac
    ON ac.activity_id = a.id AND ac.record_type = 'Activity Targets'
JOIN raw.civicrm__contact AS p
    ON p.id = ac.contact_id
JOIN hub.label_map AS kind
    ON kind.org_id = $org_id AND kind.mapping = 'delivery_activity_type'
    AND kind.label = LOWER(TRIM(REGEXP_REPLACE(a.activity_type, '\s+', ' ', 'g')))
JOIN hub.label_map AS done
    ON done.org_id = $org_id AND done.mapping = 'delivered_status'
    AND done.label = LOWER(TRIM(REGEXP_REPLACE(a.status, '\s+', ' ', 'g')))
JOIN raw.civicrm__case AS c
    ON c.id = a.case_id
JOIN hub.label_map AS prog
    ON prog.org_id = $org_id AND prog.mapping = 'programme'
    AND prog.label = LOWER(TRIM(REGEXP_REPLACE(c.case_type, '\s+', ' ', 'g')))
WHERE a.activity_date_time IS NOT NULL
