-- Deterministic linkage: one person per exact match on normalised given name, family name
-- and birth date. Records without consent to share match only within their own member;
-- records missing any of the three fields stand alone. A cluster keeps the person_key any
-- of its records already had (hub.person_link from the previous run), so adding records
-- never renames a person; a new cluster gets a key derived from its first record's ids,
-- which holds no personal data. (The probabilistic pass and review queue are issue #5.)
WITH base AS (
    SELECT
        p.org_id,
        p.source_id,
        p.consent_to_share,
        p.birth_date,
        LOWER(TRIM(REGEXP_REPLACE(p.given_name, '\s+', ' ', 'g'))) AS given_key,
        LOWER(TRIM(REGEXP_REPLACE(p.family_name, '\s+', ' ', 'g'))) AS family_key
    FROM canonical.person AS p
    WHERE NOT p.is_deleted
),
keyed AS (
    SELECT
        b.*,
        CASE
            WHEN b.given_key IS NULL OR b.given_key = '' OR b.family_key IS NULL
                OR b.family_key = '' OR b.birth_date IS NULL
                THEN 'record|' || b.org_id || '|' || b.source_id
            WHEN b.consent_to_share
                THEN 'shared|' || b.given_key || '|' || b.family_key || '|'
                    || CAST(b.birth_date AS TEXT)
            ELSE 'member|' || b.org_id || '|' || b.given_key || '|' || b.family_key || '|'
                || CAST(b.birth_date AS TEXT)
        END AS cluster_key
    FROM base AS b
),
clustered AS (
    SELECT
        k.org_id,
        k.source_id,
        k.cluster_key,
        MIN(prev.person_key) OVER (PARTITION BY k.cluster_key) AS previous_key,
        MIN(k.org_id || ':' || k.source_id) OVER (PARTITION BY k.cluster_key) AS anchor,
        COUNT(*) OVER (PARTITION BY k.cluster_key) AS records
    FROM keyed AS k
    LEFT JOIN hub.person_link AS prev
        ON prev.org_id = k.org_id AND prev.source_id = k.source_id
)
SELECT
    org_id,
    source_id,
    COALESCE(previous_key, 'p_' || SUBSTRING(MD5(anchor), 1, 16)) AS person_key,
    1.0 AS match_probability,
    'deterministic' AS method
FROM clustered
