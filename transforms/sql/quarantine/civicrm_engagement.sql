-- Case clients that cannot become engagements, one row per problem: the client is not a
-- loaded individual, the case type or status has no mapping, the case has no start date.
-- Trashed or deleted cases are gone from the source and are not reported.
WITH e AS (
    SELECT
        c.*,
        cc.contact_id,
        p.id AS contact_found,
        prog.value AS programme,
        stat.value AS mapped_status
    FROM raw.civicrm__case AS c
    JOIN raw.civicrm__case_contact AS cc
        ON cc.case_id = c.id AND NOT COALESCE(cc.deleted_in_source, FALSE)
    LEFT JOIN raw.civicrm__contact AS p
        ON p.id = cc.contact_id
    LEFT JOIN hub.label_map AS prog
        ON prog.org_id = $org_id AND prog.mapping = 'programme'
        AND prog.label = LOWER(TRIM(REGEXP_REPLACE(c.case_type, '\s+', ' ', 'g')))
    LEFT JOIN hub.label_map AS stat
        ON stat.org_id = $org_id AND stat.mapping = 'engagement_status'
        AND stat.label = LOWER(TRIM(REGEXP_REPLACE(c.status, '\s+', ' ', 'g')))
    WHERE NOT COALESCE(c.is_deleted, FALSE) AND NOT COALESCE(c.deleted_in_source, FALSE)
),
problems AS (
    SELECT e.*, 'CaseContact.contact_id' AS column_name, CAST(e.contact_id AS TEXT) AS raw_value,
        'contact ' || CAST(e.contact_id AS TEXT) || ' is not a loaded individual (an '
        || 'organisation, or deleted); fix the case''s client in CiviCRM' AS reason,
        'ref.person_missing' AS rule
    FROM e
    WHERE e.contact_found IS NULL
    UNION ALL
    SELECT e.*, 'case_type_id', e.case_type,
        'case type ''' || COALESCE(e.case_type, '') || ''' has no mapping; add it under '
        || 'mappings.programmes in ' || $config_file,
        'map.programme_unmapped'
    FROM e
    WHERE e.programme IS NULL
    UNION ALL
    SELECT e.*, 'status_id', e.status,
        'case status ''' || COALESCE(e.status, '') || ''' has no mapping; add it under '
        || 'mappings.engagement_status in ' || $config_file,
        'map.engagement_status_unmapped'
    FROM e
    WHERE e.mapped_status IS NULL
    UNION ALL
    SELECT e.*, 'start_date', NULL,
        'the case has no start date; set it in CiviCRM',
        'date.missing'
    FROM e
    WHERE e.start_date IS NULL
)
SELECT
    $org_id AS org_id, 'civicrm' AS source_system, 'engagement' AS entity,
    'Case' AS source_file, CAST(NULL AS BIGINT) AS source_row,
    CAST(id AS TEXT) || ':' || CAST(contact_id AS TEXT) AS source_id, column_name, raw_value,
    reason, rule, 'error' AS severity, 'mapping' AS stage, _dlt_load_id AS _load_id
FROM problems
