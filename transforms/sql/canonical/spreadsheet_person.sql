-- canonical.person rows for one spreadsheet member (raw = raw_<org_id>).
SELECT
    $org_id AS org_id,
    'spreadsheet' AS source_system,
    p.source_id,
    p.source_updated_at,
    FALSE AS is_deleted,
    p._dlt_load_id AS _load_id,
    p.given_name,
    p.family_name,
    p.birth_date,
    p.email,
    p.phone,
    p.postcode,
    COALESCE(p.consent_to_share, FALSE) AS consent_to_share
FROM raw.spreadsheet__person AS p
