-- canonical.service_delivery rows: PMM Service Deliveries. The person is the delivery's
-- Contact (or its Program Engagement's when blank); the programme is the Service's Program
-- (or the engagement's). Deliveries whose attendance status the member lists as an
-- absence (connector.absent_statuses) delivered nothing and are set aside as 'skipped'.
WITH d AS (
    SELECT
        d.*,
        COALESCE(d.pmdm__contact__c, e.pmdm__contact__c) AS person_id,
        COALESCE(s.pmdm__program__c, e.pmdm__program__c) AS program_id,
        s.name AS service_name,
        s.pmdm__unit_of_measurement__c AS unit
    FROM raw.pmdm__service_delivery AS d
    LEFT JOIN raw.pmdm__service AS s
        ON s.id = d.pmdm__service__c
    LEFT JOIN raw.pmdm__program_engagement AS e
        ON e.id = d.pmdm__program_engagement__c
)
SELECT
    $org_id AS org_id,
    'salesforce_npsp' AS source_system,
    d.id AS source_id,
    d.system_modstamp AT TIME ZONE 'UTC' AS source_updated_at,
    COALESCE(d.is_deleted, FALSE) AS is_deleted,
    d._dlt_load_id AS _load_id,
    d.person_id AS person_source_id,
    d.program_id AS programme_source_id,
    d.service_name,
    d.pmdm__delivery_date__c AS delivered_on,
    d.pmdm__quantity__c AS quantity,
    d.unit
FROM d
JOIN raw.npsp__contact AS c
    ON c.id = d.person_id
JOIN raw.pmdm__program AS p
    ON p.id = d.program_id
JOIN hub.label_map AS area
    ON area.org_id = $org_id AND area.mapping = 'programme_area'
    AND area.label = LOWER(TRIM(REGEXP_REPLACE(p.name, '\s+', ' ', 'g')))
LEFT JOIN hub.label_map AS absent
    ON absent.org_id = $org_id AND absent.mapping = 'attendance_absent'
    AND absent.label = LOWER(TRIM(REGEXP_REPLACE(d.pmdm__attendance_status__c, '\s+', ' ', 'g')))
WHERE d.pmdm__delivery_date__c IS NOT NULL AND absent.value IS NULL
