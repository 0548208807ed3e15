-- Program Engagements that cannot enter the canonical model, one row per problem: contact
-- not loaded, Program not loaded or not mapped, Stage not mapped, no start date.
-- Deleted records are gone from the source and are not reported.
WITH e AS (
    SELECT
        e.*,
        c.id AS contact_found,
        p.id AS program_found,
        p.name AS program_name,
        area.value AS area,
        stage.value AS status
    FROM raw.pmdm__program_engagement AS e
    LEFT JOIN raw.npsp__contact AS c
        ON c.id = e.pmdm__contact__c
    LEFT JOIN raw.pmdm__program AS p
        ON p.id = e.pmdm__program__c
    LEFT JOIN hub.label_map AS area
        ON area.org_id = $org_id AND area.mapping = 'programme_area'
        AND area.label = LOWER(TRIM(REGEXP_REPLACE(p.name, '\s+', ' ', 'g')))
    LEFT JOIN hub.label_map AS stage
        ON stage.org_id = $org_id AND stage.mapping = 'engagement_status'
        AND stage.label = LOWER(TRIM(REGEXP_REPLACE(e.pmdm__stage__c, '\s+', ' ', 'g')))
    WHERE NOT COALESCE(e.is_deleted, FALSE)
),
problems AS (
    SELECT e.*, 'pmdm__Contact__c' AS column_name, e.pmdm__contact__c AS raw_value,
        CASE WHEN e.pmdm__contact__c IS NULL THEN 'the engagement has no Contact; set it in '
            || 'Salesforce'
        ELSE 'Contact ' || e.pmdm__contact__c || ' was not loaded (deleted, or hidden from '
            || 'the integration user); fix the engagement''s Contact or share the contact'
        END AS reason,
        CASE WHEN e.pmdm__contact__c IS NULL THEN 'ref.person_unset' ELSE 'ref.person_missing' END AS rule
    FROM e
    WHERE e.contact_found IS NULL
    UNION ALL
    SELECT e.*, 'pmdm__Program__c', COALESCE(e.program_name, e.pmdm__program__c),
        CASE WHEN e.program_found IS NULL THEN 'Program ' || COALESCE(e.pmdm__program__c, '(none)')
            || ' was not loaded; set the engagement''s Program in Salesforce'
        ELSE 'programme ''' || e.program_name || ''' has no mapping; add it under '
            || 'mappings.programmes in ' || $config_file
        END,
        CASE WHEN e.program_found IS NULL THEN 'ref.programme_missing' ELSE 'map.programme_unmapped' END
    FROM e
    WHERE e.area IS NULL
    UNION ALL
    SELECT e.*, 'pmdm__Stage__c', e.pmdm__stage__c,
        'engagement stage ''' || COALESCE(e.pmdm__stage__c, '') || ''' has no mapping; add '
        || 'it under mappings.engagement_status in ' || $config_file,
        'map.engagement_status_unmapped'
    FROM e
    WHERE e.status IS NULL
    UNION ALL
    SELECT e.*, 'pmdm__StartDate__c', NULL,
        'the engagement has no start date; fill pmdm__StartDate__c in Salesforce',
        'date.missing'
    FROM e
    WHERE e.pmdm__start_date__c IS NULL
)
SELECT
    $org_id AS org_id, 'salesforce_npsp' AS source_system, 'engagement' AS entity,
    'pmdm__ProgramEngagement__c' AS source_file, CAST(NULL AS BIGINT) AS source_row,
    id AS source_id, column_name, raw_value, reason, rule, 'error' AS severity, 'mapping' AS stage,
    _dlt_load_id AS _load_id
FROM problems
