-- canonical.outcome rows from the member's configured outcome object (connector.outcome:
-- PMM has none). cfg__* are the fields the member names; the outcome label and status map
-- through mappings.outcomes and mappings.outcome_status. The programme is optional; when
-- given it must be a mapped Program.
SELECT
    $org_id AS org_id,
    'salesforce_npsp' AS source_system,
    o.id AS source_id,
    o.system_modstamp AT TIME ZONE 'UTC' AS source_updated_at,
    COALESCE(o.is_deleted, FALSE) AS is_deleted,
    o._dlt_load_id AS _load_id,
    o.cfg__contact AS person_source_id,
    o.cfg__program AS programme_source_id,
    code.value AS outcome_code,
    stat.value AS status,
    CAST(o.cfg__measured_on AS DATE) AS measured_on,
    CAST(o.cfg__value AS DOUBLE) AS value
FROM raw.npsp__outcome AS o
JOIN raw.npsp__contact AS c
    ON c.id = o.cfg__contact
JOIN hub.label_map AS code
    ON code.org_id = $org_id AND code.mapping = 'outcome'
    AND code.label = LOWER(TRIM(REGEXP_REPLACE(CAST(o.cfg__label AS TEXT), '\s+', ' ', 'g')))
JOIN hub.label_map AS stat
    ON stat.org_id = $org_id AND stat.mapping = 'outcome_status'
    AND stat.label = LOWER(TRIM(REGEXP_REPLACE(CAST(o.cfg__status AS TEXT), '\s+', ' ', 'g')))
LEFT JOIN raw.pmdm__program AS p
    ON p.id = o.cfg__program
LEFT JOIN hub.label_map AS area
    ON area.org_id = $org_id AND area.mapping = 'programme_area'
    AND area.label = LOWER(TRIM(REGEXP_REPLACE(p.name, '\s+', ' ', 'g')))
WHERE o.cfg__measured_on IS NOT NULL
    AND (o.cfg__program IS NULL OR area.value IS NOT NULL)
