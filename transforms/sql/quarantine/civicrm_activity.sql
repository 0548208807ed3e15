-- Activities that should count but cannot, one row per target contact and problem:
-- a delivery (a completed activity of a counted type) not filed on a case with a mapped
-- case type, or an outcome whose option or status has no mapping; either for a contact that
-- is not a loaded individual. Deleted activities are not reported.
WITH a AS (
    SELECT
        a.*,
        ac.contact_id,
        p.id AS contact_found,
        c.id AS case_found,
        -- A case trashed or deleted for good (its marker row has no case type) while the
        -- activity survives: the fix is in CiviCRM, not in the member's mappings.
        COALESCE(c.is_deleted, FALSE) OR COALESCE(c.deleted_in_source, FALSE) AS case_deleted,
        c.case_type,
        prog.value AS programme,
        kind.value IS NOT NULL AND done.value IS NOT NULL AS is_delivery,
        a.cfg__outcome IS NOT NULL AS is_outcome,
        code.value AS code,
        stat.value AS mapped_status
    FROM raw.civicrm__activity AS a
    JOIN raw.civicrm__activity_contact AS ac
        ON ac.activity_id = a.id AND ac.record_type = 'Activity Targets'
        AND NOT COALESCE(ac.deleted_in_source, FALSE)
    LEFT JOIN raw.civicrm__contact AS p
        ON p.id = ac.contact_id
    LEFT JOIN raw.civicrm__case AS c
        ON c.id = a.case_id
    LEFT JOIN hub.label_map AS prog
        ON prog.org_id = $org_id AND prog.mapping = 'programme'
        AND prog.label = LOWER(TRIM(REGEXP_REPLACE(c.case_type, '\s+', ' ', 'g')))
    LEFT JOIN hub.label_map AS kind
        ON kind.org_id = $org_id AND kind.mapping = 'delivery_activity_type'
        AND kind.label = LOWER(TRIM(REGEXP_REPLACE(a.activity_type, '\s+', ' ', 'g')))
    LEFT JOIN hub.label_map AS done
        ON done.org_id = $org_id AND done.mapping = 'delivered_status'
        AND done.label = LOWER(TRIM(REGEXP_REPLACE(a.status, '\s+', ' ', 'g')))
    LEFT JOIN hub.label_map AS code
        ON code.org_id = $org_id AND code.mapping = 'outcome'
        AND code.label = LOWER(TRIM(REGEXP_REPLACE(a.cfg__outcome, '\s+', ' ', 'g')))
    LEFT JOIN hub.label_map AS stat
        ON stat.org_id = $org_id AND stat.mapping = 'outcome_status'
        AND stat.label = LOWER(TRIM(REGEXP_REPLACE(a.cfg__outcome_status, '\s+', ' ', 'g')))
    WHERE NOT COALESCE(a.is_deleted, FALSE) AND NOT COALESCE(a.deleted_in_source, FALSE)
),
problems AS (
    SELECT a.*, 'service_delivery' AS entity, 'case_id' AS column_name,
        CAST(a.case_id AS TEXT) AS raw_value,
        'the ' || a.activity_type || ' is not filed on a case, so its programme is unknown; '
        || 'file it on the client''s case in CiviCRM' AS reason,
        'ref.programme_missing' AS rule
    FROM a
    WHERE a.is_delivery AND a.case_found IS NULL
    UNION ALL
    SELECT a.*, 'service_delivery', 'case_id', a.case_type,
        'case type ''' || a.case_type || ''' has no mapping; add it under '
        || 'mappings.programmes in ' || $config_file,
        'map.programme_unmapped'
    FROM a
    WHERE a.is_delivery AND a.case_found IS NOT NULL AND NOT a.case_deleted
        AND a.programme IS NULL
    UNION ALL
    SELECT a.*, CASE WHEN a.is_outcome THEN 'outcome' ELSE 'service_delivery' END,
        'case_id', CAST(a.case_id AS TEXT),
        'the ' || a.activity_type || ' is filed on case ' || CAST(a.case_id AS TEXT)
        || ', which was deleted in CiviCRM, so its programme is unknown; file it on the '
        || 'client''s current case, or delete it, in CiviCRM',
        'ref.case_deleted'
    FROM a
    WHERE (a.is_delivery OR a.is_outcome) AND a.case_deleted
    UNION ALL
    SELECT a.*, 'outcome', $field_outcome, a.cfg__outcome,
        'outcome ''' || a.cfg__outcome || ''' has no mapping; add it under mappings.outcomes in '
        || $config_file,
        'map.outcome_unmapped'
    FROM a
    WHERE a.is_outcome AND a.code IS NULL
    UNION ALL
    SELECT a.*, 'outcome', $field_outcome_status, a.cfg__outcome_status,
        'outcome status ''' || COALESCE(a.cfg__outcome_status, '') || ''' has no mapping; add it '
        || 'under mappings.outcome_status in ' || $config_file,
        'map.outcome_status_unmapped'
    FROM a
    WHERE a.is_outcome AND a.mapped_status IS NULL
    UNION ALL
    SELECT a.*, 'outcome', 'case_id', a.case_type,
        'case type ''' || a.case_type || ''' has no mapping; add it under '
        || 'mappings.programmes in ' || $config_file,
        'map.programme_unmapped'
    FROM a
    WHERE a.is_outcome AND a.case_found IS NOT NULL AND NOT a.case_deleted
        AND a.programme IS NULL
    UNION ALL
    SELECT a.*, CASE WHEN a.is_outcome THEN 'outcome' ELSE 'service_delivery' END,
        'ActivityContact.contact_id', CAST(a.contact_id AS TEXT),
        'contact ' || CAST(a.contact_id AS TEXT) || ' is not a loaded individual (an '
        || 'organisation, or deleted); fix the activity''s target in CiviCRM',
        'ref.person_missing'
    FROM a
    WHERE (a.is_delivery OR a.is_outcome) AND a.contact_found IS NULL
)
SELECT
    $org_id AS org_id, 'civicrm' AS source_system, entity, 'Activity' AS source_file,
    CAST(NULL AS BIGINT) AS source_row,
    CAST(id AS TEXT) || ':' || CAST(contact_id AS TEXT) AS source_id, column_name, raw_value,
    reason, rule, 'error' AS severity, 'mapping' AS stage, _dlt_load_id AS _load_id
FROM problems
