-- canonical.person rows for one Salesforce NPSP member: its Contacts. The postcode is the
-- contact's mailing postcode, or its household Account's billing postcode when blank (NPSP
-- keeps the household address on the Account). Consent comes from the member's configured
-- field (cfg__consent). A deleted contact stays as an is_deleted row with its personal
-- fields blanked: the hub keeps no more of a deleted record than its id. Phones, postcodes
-- and e-mails are normalised afterwards in Python (transforms.people).
SELECT
    $org_id AS org_id,
    'salesforce_npsp' AS source_system,
    c.id AS source_id,
    c.system_modstamp AT TIME ZONE 'UTC' AS source_updated_at,
    COALESCE(c.is_deleted, FALSE) AS is_deleted,
    c._dlt_load_id AS _load_id,
    CASE WHEN c.is_deleted THEN NULL ELSE c.first_name END AS given_name,
    CASE WHEN c.is_deleted THEN NULL ELSE c.last_name END AS family_name,
    CASE WHEN c.is_deleted THEN NULL ELSE c.birthdate END AS birth_date,
    CASE WHEN c.is_deleted THEN NULL ELSE c.email END AS email,
    CASE WHEN c.is_deleted THEN NULL ELSE c.phone END AS phone,
    CASE
        WHEN c.is_deleted THEN NULL
        ELSE COALESCE(NULLIF(TRIM(c.mailing_postal_code), ''), a.billing_postal_code)
    END AS postcode,
    CASE
        WHEN c.is_deleted OR $consent_policy = 'none' THEN FALSE
        -- 'all' fills in only a missing answer: an explicit no stays no.
        WHEN $consent_policy = 'all' AND NULLIF(TRIM(CAST(c.cfg__consent AS TEXT)), '') IS NULL
            THEN TRUE
        ELSE EXISTS (
            SELECT 1
            FROM hub.label_map AS m
            WHERE m.org_id = $org_id AND m.mapping = 'consent_yes'
                AND m.label = LOWER(TRIM(CAST(c.cfg__consent AS TEXT)))
        )
    END AS consent_to_share
FROM raw.npsp__contact AS c
LEFT JOIN raw.npsp__account AS a
    ON a.id = c.account_id
