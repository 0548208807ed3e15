-- Outcome records (the member's configured object) that cannot enter the canonical model,
-- one row per problem: contact not loaded, outcome label or status not mapped, no date,
-- a Program given but not mapped. Columns are named by the member's own field names.
WITH o AS (
    SELECT
        o.id,
        o._dlt_load_id,
        CAST(o.cfg__contact AS TEXT) AS contact_id,
        CAST(o.cfg__program AS TEXT) AS program_id,
        CAST(o.cfg__label AS TEXT) AS label,
        CAST(o.cfg__status AS TEXT) AS status,
        o.cfg__measured_on AS measured_on,
        c.id AS contact_found,
        p.name AS program_name,
        area.value AS area,
        code.value AS code,
        stat.value AS mapped_status
    FROM raw.npsp__outcome AS o
    LEFT JOIN raw.npsp__contact AS c
        ON c.id = o.cfg__contact
    LEFT JOIN raw.pmdm__program AS p
        ON p.id = o.cfg__program
    LEFT JOIN hub.label_map AS area
        ON area.org_id = $org_id AND area.mapping = 'programme_area'
        AND area.label = LOWER(TRIM(REGEXP_REPLACE(p.name, '\s+', ' ', 'g')))
    LEFT JOIN hub.label_map AS code
        ON code.org_id = $org_id AND code.mapping = 'outcome'
        AND code.label = LOWER(TRIM(REGEXP_REPLACE(CAST(o.cfg__label AS TEXT), '\s+', ' ', 'g')))
    LEFT JOIN hub.label_map AS stat
        ON stat.org_id = $org_id AND stat.mapping = 'outcome_status'
        AND stat.label = LOWER(TRIM(REGEXP_REPLACE(CAST(o.cfg__status AS TEXT), '\s+', ' ', 'g')))
    WHERE NOT COALESCE(o.is_deleted, FALSE)
),
problems AS (
    SELECT o.*, $field_contact AS column_name, o.contact_id AS raw_value,
        CASE WHEN o.contact_id IS NULL THEN 'the outcome has no Contact; set it in Salesforce'
        ELSE 'Contact ' || o.contact_id || ' was not loaded (deleted, or hidden from the '
            || 'integration user); fix the outcome''s Contact or share the contact'
        END AS reason,
        CASE WHEN o.contact_id IS NULL THEN 'ref.person_unset' ELSE 'ref.person_missing' END AS rule
    FROM o
    WHERE o.contact_found IS NULL
    UNION ALL
    SELECT o.*, $field_label, o.label,
        'outcome ''' || COALESCE(o.label, '') || ''' has no mapping; add it under '
        || 'mappings.outcomes in ' || $config_file,
        'map.outcome_unmapped'
    FROM o
    WHERE o.code IS NULL
    UNION ALL
    SELECT o.*, $field_status, o.status,
        'outcome status ''' || COALESCE(o.status, '') || ''' has no mapping; add it under '
        || 'mappings.outcome_status in ' || $config_file,
        'map.outcome_status_unmapped'
    FROM o
    WHERE o.mapped_status IS NULL
    UNION ALL
    SELECT o.*, $field_measured_on, NULL,
        'the outcome has no date; fill ' || $field_measured_on || ' in Salesforce',
        'date.missing'
    FROM o
    WHERE o.measured_on IS NULL
    UNION ALL
    SELECT o.*, $field_program, COALESCE(o.program_name, o.program_id),
        CASE WHEN o.program_name IS NULL THEN 'Program ' || o.program_id || ' was not loaded; '
            || 'fix the outcome''s Program in Salesforce'
        ELSE 'programme ''' || o.program_name || ''' has no mapping; add it under '
            || 'mappings.programmes in ' || $config_file
        END,
        CASE WHEN o.program_name IS NULL THEN 'ref.programme_missing' ELSE 'map.programme_unmapped' END
    FROM o
    WHERE o.program_id IS NOT NULL AND o.area IS NULL
)
SELECT
    $org_id AS org_id, 'salesforce_npsp' AS source_system, 'outcome' AS entity,
    $outcome_object AS source_file, CAST(NULL AS BIGINT) AS source_row, id AS source_id,
    column_name, raw_value, reason, rule, 'error' AS severity, 'mapping' AS stage,
    _dlt_load_id AS _load_id
FROM problems
