-- canonical.engagement rows: PMM Program Engagements whose contact was loaded, whose
-- Program is mapped and whose Stage maps to an engagement status. Deleted engagements stay
-- as is_deleted rows. Rows failing any of these are quarantined
-- (quarantine/salesforce_engagement.sql).
SELECT
    $org_id AS org_id,
    'salesforce_npsp' AS source_system,
    e.id AS source_id,
    e.system_modstamp AT TIME ZONE 'UTC' AS source_updated_at,
    COALESCE(e.is_deleted, FALSE) AS is_deleted,
    e._dlt_load_id AS _load_id,
    e.pmdm__contact__c AS person_source_id,
    e.pmdm__program__c AS programme_source_id,
    stage.value AS status,
    e.pmdm__start_date__c AS start_date,
    e.pmdm__end_date__c AS end_date
FROM raw.pmdm__program_engagement AS e
JOIN raw.npsp__contact AS c
    ON c.id = e.pmdm__contact__c
JOIN raw.pmdm__program AS p
    ON p.id = e.pmdm__program__c
JOIN hub.label_map AS area
    ON area.org_id = $org_id AND area.mapping = 'programme_area'
    AND area.label = LOWER(TRIM(REGEXP_REPLACE(p.name, '\s+', ' ', 'g')))
JOIN hub.label_map AS stage
    ON stage.org_id = $org_id AND stage.mapping = 'engagement_status'
    AND stage.label = LOWER(TRIM(REGEXP_REPLACE(e.pmdm__stage__c, '\s+', ' ', 'g')))
WHERE e.pmdm__start_date__c IS NOT NULL
