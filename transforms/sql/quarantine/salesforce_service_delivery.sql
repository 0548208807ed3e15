-- Service Deliveries that cannot enter the canonical model, one row per problem: no person,
-- no programme or an unmapped one, no delivery date; and, as 'skipped', deliveries whose
-- attendance status the member lists as an absence (nothing was delivered).
WITH d AS (
    SELECT
        d.*,
        COALESCE(d.pmdm__contact__c, e.pmdm__contact__c) AS person_id,
        COALESCE(s.pmdm__program__c, e.pmdm__program__c) AS program_id,
        c.id AS contact_found,
        p.name AS program_name,
        area.value AS area,
        absent.value AS absent
    FROM raw.pmdm__service_delivery AS d
    LEFT JOIN raw.pmdm__service AS s
        ON s.id = d.pmdm__service__c
    LEFT JOIN raw.pmdm__program_engagement AS e
        ON e.id = d.pmdm__program_engagement__c
    LEFT JOIN raw.npsp__contact AS c
        ON c.id = COALESCE(d.pmdm__contact__c, e.pmdm__contact__c)
    LEFT JOIN raw.pmdm__program AS p
        ON p.id = COALESCE(s.pmdm__program__c, e.pmdm__program__c)
    LEFT JOIN hub.label_map AS area
        ON area.org_id = $org_id AND area.mapping = 'programme_area'
        AND area.label = LOWER(TRIM(REGEXP_REPLACE(p.name, '\s+', ' ', 'g')))
    LEFT JOIN hub.label_map AS absent
        ON absent.org_id = $org_id AND absent.mapping = 'attendance_absent'
        AND absent.label = LOWER(TRIM(REGEXP_REPLACE(d.pmdm__attendance_status__c, '\s+', ' ', 'g')))
    WHERE NOT COALESCE(d.is_deleted, FALSE)
),
problems AS (
    SELECT d.*, 'pmdm__Contact__c' AS column_name, d.person_id AS raw_value,
        CASE WHEN d.person_id IS NULL THEN 'the delivery has no Contact and no Program '
            || 'Engagement with one; set the Contact in Salesforce'
        ELSE 'Contact ' || d.person_id || ' was not loaded (deleted, or hidden from the '
            || 'integration user); fix the delivery''s Contact or share the contact'
        END AS reason,
        'error' AS severity,
        CASE WHEN d.person_id IS NULL THEN 'ref.person_unset' ELSE 'ref.person_missing' END AS rule
    FROM d
    WHERE d.contact_found IS NULL
    UNION ALL
    SELECT d.*, 'pmdm__Service__c', COALESCE(d.program_name, d.program_id),
        CASE WHEN d.program_name IS NULL THEN 'no Program found through the delivery''s '
            || 'Service or Program Engagement; set the Service in Salesforce'
        ELSE 'programme ''' || d.program_name || ''' has no mapping; add it under '
            || 'mappings.programmes in ' || $config_file
        END,
        'error',
        CASE WHEN d.program_name IS NULL THEN 'ref.programme_missing' ELSE 'map.programme_unmapped' END
    FROM d
    WHERE d.area IS NULL
    UNION ALL
    SELECT d.*, 'pmdm__DeliveryDate__c', NULL,
        'the delivery has no date; fill pmdm__DeliveryDate__c in Salesforce', 'error',
        'date.missing'
    FROM d
    WHERE d.pmdm__delivery_date__c IS NULL
    UNION ALL
    SELECT d.*, 'pmdm__AttendanceStatus__c', d.pmdm__attendance_status__c,
        'attendance ''' || d.pmdm__attendance_status__c || ''' is an absence '
        || '(connector.absent_statuses in ' || $config_file || '): nothing was delivered, '
        || 'so it is not counted',
        'skipped',
        'delivery.absent'
    FROM d
    WHERE d.absent IS NOT NULL
)
SELECT
    $org_id AS org_id, 'salesforce_npsp' AS source_system, 'service_delivery' AS entity,
    'pmdm__ServiceDelivery__c' AS source_file, CAST(NULL AS BIGINT) AS source_row,
    id AS source_id, column_name, raw_value, reason, rule, severity, 'mapping' AS stage,
    _dlt_load_id AS _load_id
FROM problems
