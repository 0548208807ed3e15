-- PMM Programs the member has not mapped to an outcome area. Their engagements, deliveries
-- and outcomes are set aside too (each with its own row), until the mapping is added.
SELECT
    $org_id AS org_id, 'salesforce_npsp' AS source_system, 'programme' AS entity,
    'pmdm__Program__c' AS source_file, CAST(NULL AS BIGINT) AS source_row, p.id AS source_id,
    'Name' AS column_name, p.name AS raw_value,
    'programme ''' || p.name || ''' has no mapping; add it under mappings.programmes in '
    || $config_file AS reason,
    'map.programme_unmapped' AS rule,
    'error' AS severity, 'mapping' AS stage, p._dlt_load_id AS _load_id
FROM raw.pmdm__program AS p
LEFT JOIN hub.label_map AS area
    ON area.org_id = $org_id AND area.mapping = 'programme_area'
    AND area.label = LOWER(TRIM(REGEXP_REPLACE(p.name, '\s+', ' ', 'g')))
WHERE NOT COALESCE(p.is_deleted, FALSE) AND area.value IS NULL
