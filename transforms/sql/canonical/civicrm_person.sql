-- canonical.person rows for one CiviCRM member: Individuals with their primary e-mail,
-- phone and postcode. Trashed contacts and hard deletes (marker rows) become is_deleted, with
-- every personal field blank and no consent.
-- Phones, postcodes and e-mails are normalised afterwards in Python (transforms.people),
-- as the spreadsheet connector does, so every source gives E.164 numbers.
WITH email AS (
    SELECT contact_id, MIN(email) AS email
    FROM raw.civicrm__email
    WHERE is_primary AND NOT COALESCE(is_deleted, FALSE)
    GROUP BY contact_id
),
phone AS (
    SELECT contact_id, MIN(phone) AS phone
    FROM raw.civicrm__phone
    WHERE is_primary AND NOT COALESCE(is_deleted, FALSE)
    GROUP BY contact_id
),
address AS (
    SELECT contact_id, MIN(postal_code) AS postal_code
    FROM raw.civicrm__address
    WHERE is_primary AND NOT COALESCE(is_deleted, FALSE)
    GROUP BY contact_id
)
SELECT
    $org_id AS org_id,
    'civicrm' AS source_system,
    CAST(c.id AS TEXT) AS source_id,
    c.modified_date AS source_updated_at,
    COALESCE(c.is_deleted, FALSE) OR COALESCE(c.deleted_in_source, FALSE) AS is_deleted,
    c._dlt_load_id AS _load_id,
    -- A trashed or deleted contact keeps no personal field in the hub (as Salesforce's).
    CASE WHEN c.is_deleted OR c.deleted_in_source THEN NULL ELSE c.first_name END
        AS given_name,
    CASE WHEN c.is_deleted OR c.deleted_in_source THEN NULL ELSE c.last_name END
        AS family_name,
    CASE WHEN c.is_deleted OR c.deleted_in_source THEN NULL ELSE c.birth_date END
        AS birth_date,
    CASE WHEN c.is_deleted OR c.deleted_in_source THEN NULL ELSE email.email END AS email,
    CASE WHEN c.is_deleted OR c.deleted_in_source THEN NULL ELSE phone.phone END AS phone,
    CASE WHEN c.is_deleted OR c.deleted_in_source THEN NULL ELSE address.postal_code END
        AS postcode,
    CASE
        WHEN COALESCE(c.is_deleted OR c.deleted_in_source, FALSE) THEN FALSE
        WHEN $consent_policy = 'none' THEN FALSE
        -- 'all' fills in only a missing answer: an explicit no stays no.
        WHEN $consent_policy = 'all' AND NULLIF(TRIM(CAST(c.consent_to_share AS TEXT)), '') IS NULL
            THEN TRUE
        ELSE EXISTS (
            SELECT 1
            FROM hub.label_map AS m
            WHERE m.org_id = $org_id AND m.mapping = 'consent_yes'
                AND m.label = LOWER(TRIM(c.consent_to_share))
        )
    END AS consent_to_share
FROM raw.civicrm__contact AS c
LEFT JOIN email ON email.contact_id = c.id
LEFT JOIN phone ON phone.contact_id = c.id
LEFT JOIN address ON address.contact_id = c.id
WHERE c.contact_type = 'Individual' OR COALESCE(c.deleted_in_source, FALSE)
