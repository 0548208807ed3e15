-- canonical.programme rows for one CiviCRM member: CiviCRM has no programme entity; a case
-- type is the programme. The member maps case types (by name, as `case_type_id:name` gives
-- them) to outcome areas under mappings.programmes; each mapped one is a programme.
SELECT
    $org_id AS org_id,
    'civicrm' AS source_system,
    prog.value AS source_id,
    CAST(NULL AS TIMESTAMP) AS source_updated_at,
    FALSE AS is_deleted,
    CAST(NULL AS TEXT) AS _load_id,
    prog.value AS name,
    area.value AS outcome_area
FROM hub.label_map AS prog
JOIN hub.label_map AS area
    ON area.org_id = prog.org_id AND area.mapping = 'programme_area' AND area.label = prog.label
WHERE prog.org_id = $org_id AND prog.mapping = 'programme'
