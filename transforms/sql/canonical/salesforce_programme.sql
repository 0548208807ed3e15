-- canonical.programme rows for one Salesforce member: PMM Programs whose name the member
-- maps to an outcome area (mappings.programmes). Unmapped ones are quarantined
-- (quarantine/salesforce_programme.sql) and so is everything recorded against them.
SELECT
    $org_id AS org_id,
    'salesforce_npsp' AS source_system,
    p.id AS source_id,
    p.system_modstamp AT TIME ZONE 'UTC' AS source_updated_at,
    COALESCE(p.is_deleted, FALSE) AS is_deleted,
    p._dlt_load_id AS _load_id,
    p.name,
    area.value AS outcome_area
FROM raw.pmdm__program AS p
JOIN hub.label_map AS area
    ON area.org_id = $org_id AND area.mapping = 'programme_area'
    AND area.label = LOWER(TRIM(REGEXP_REPLACE(p.name, '\s+', ' ', 'g')))
