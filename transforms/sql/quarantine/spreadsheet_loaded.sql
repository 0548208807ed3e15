-- Rows the spreadsheet connector set aside while reading one file (bad dates, duplicate
-- ids, totals rows, dropped values), for one member and one entity.
SELECT
    $org_id AS org_id,
    'spreadsheet' AS source_system,
    q.entity,
    q.source_file,
    q.source_row,
    q.source_id,
    q.column_name,
    q.raw_value,
    q.reason,
    COALESCE(q.cfg__rule, 'unclassified') AS rule,
    q.severity,
    'load' AS stage,
    q._dlt_load_id AS _load_id
FROM raw.spreadsheet__entity_quarantine AS q
