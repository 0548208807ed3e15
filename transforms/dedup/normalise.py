"""Normalise canonical person records into the match fields the linker compares.

Splink scores agreement field by field, so two records of one person must reach it written
the same way: "Zoë O'Neil-Smith" and "zoe oneil smith" must be equal strings, "Bill" must
meet "William" on a shared formal name, and one phone number must not be two because one
member typed ``07700 900123`` and another ``+44 7700 900123``. This module does that once,
before linkage, so every comparison and blocking rule can stay a plain equality or
similarity on clean columns (:data:`NORMALISED_COLUMNS`).

It has to keep up with a hub of a million people on a small machine, so all string work is
DuckDB SQL over the Arrow table (vectorised, multi-threaded), names cleaned once per
distinct spelling; Python runs only for the phone numbers not already in E.164, once per
distinct value. Phones, e-mails and postcodes
follow the loader's own rules (:mod:`connectors.values`) so a value the load accepted is
never rejected here, and the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import duckdb
import pyarrow as pa
from nicknames import NickNamer

# The loader's patterns, imported rather than copied so that linkage and load cannot drift
# apart. Both are plain regular expressions that RE2 (DuckDB) reads as Python does.
from connectors.values import EMAIL_PATTERN, GB_POSTCODE_PATTERN, ValueProblem, parse_phone

NORMALISED_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("unique_id", pa.string()),  # "org_id|source_id": Splink's record id (null if either is)
    ("org_id", pa.string()),
    ("source_id", pa.string()),
    ("consent", pa.bool_()),  # consent_to_share; unknown counts as no
    ("given_name", pa.string()),
    ("given_canonical", pa.string()),  # formal form of the first given name
    ("family_name", pa.string()),
    ("family_tokens", pa.list_(pa.string())),  # parts of a double-barrelled name
    ("birth_date", pa.date32()),
    ("birth_date_swapped", pa.date32()),  # day and month exchanged, when that is a date
    ("birth_year", pa.int32()),
    ("email", pa.string()),
    ("phone", pa.string()),  # E.164
    ("postcode", pa.string()),
    ("postcode_outward", pa.string()),  # UK outward code ("M14"); null when not UK-shaped
)
"""Name and Arrow type of every column :func:`normalise_people` returns, in order."""

NORMALISED_SCHEMA = pa.schema(NORMALISED_COLUMNS)

INPUT_COLUMNS = (
    "org_id",
    "source_id",
    "given_name",
    "family_name",
    "birth_date",
    "email",
    "phone",
    "postcode",
    "consent_to_share",
)

# Honorifics people type into name fields; they say nothing about who the person is.
TITLES = ("mr", "mrs", "ms", "miss", "mx", "dr")

# Already E.164 (how the hub stores every loaded phone): kept as is, without a parse. None
# of the first four digits may be 0, so a trunk 0 typed after the country code ("+440...",
# which phonenumbers drops) cannot pass as E.164 whatever the country code's length; the
# real numbers this turns away (+20..., +39 0..., +1 201...) are simply parsed.
E164_PATTERN = r"^\+[1-9]{4}[0-9]{3,11}$"
# Two more forms skip phonenumbers because its answer is known: a UK number written with
# +44 or 0044 and spaces, and a UK national number in a UK member's data (the loader's own
# shortcut). Both are tested against ``parse_phone`` so they cannot drift from it. Removed
# first, as ``parse_phone`` removes them: spaces, - ( ) . / no-break space and tab.
PHONE_SEPARATORS = r"[ \-()./\x{00A0}\t]"
GB_INTERNATIONAL_PATTERN = r"^\+44[1-9][0-9]{9}$"
GB_NATIONAL_PATTERN = r"^0[1-9][0-9]{9}$"

# Formal given names common in England and Wales, roughly most common first, compiled by
# hand with the ONS top names of 1904-1994 and since as a guide. The nicknames data lists
# pairs in both directions and gives a nickname several formal names (bill: robert,
# william; bob: robert, and bob is itself listed with nicknames), so on its own it cannot
# say which name is the formal one; popularity is the best guide to what a nickname
# usually stands for. Only the order among a nickname's candidates matters, so an
# approximate order is enough.
_COMMON_GIVEN_NAMES_TEXT = """
    john william mary david margaret james elizabeth george thomas robert sarah michael
    susan peter patricia paul jean richard joan charles dorothy stephen helen andrew
    catherine mark katherine christopher ann anne anthony emma arthur jennifer kenneth
    christine brian linda alan karen ian julie edward jacqueline frederick deborah albert
    amanda henry nicola joseph rebecca daniel rachel matthew emily samuel charlotte
    benjamin jessica jonathan hannah timothy lauren philip sophie raymond laura ronald
    victoria donald joanne frank lisa walter michelle ernest claire harold alison stanley
    gillian gary pamela kevin barbara keith sandra colin janet graham carol martin valerie
    simon sheila nicholas brenda adam maureen ryan doris luke irene joshua kathleen oliver
    eileen lewis edith craig florence dean alice lee ada neil ethel barry lilian trevor
    winifred terence gladys gerald ivy dennis hilda derek mabel roy violet norman rose
    leonard grace sidney frances francis olivia patrick amelia geoffrey chloe roger megan
    gordon samantha eric stephanie jeffrey natalie gregory louise lawrence kelly douglas
    donna victor tracey alfred dawn herbert diane cyril wendy reginald angela bernard
    judith wilfred shirley clifford marion cecil marjorie percy beryl jeremy vera nathan
    evelyn jordan phyllis liam josephine connor teresa callum theresa jacob caroline ethan
    joanna aaron rosemary dylan ruth kieran abigail jake eleanor theodore ellen edmund jane
    hugh anna nigel lucy malcolm amy alexander zoe steven sophia leslie isabella howard ava
    vincent mia russell lily stuart georgia gavin bethany jason joyce scott sharon shaun
    tracy wayne kim carl alexandra darren christina robin julia maria marie louisa susannah
    suzanne paula pauline gwendolyn sylvia rita audrey norma muriel agnes
"""
COMMON_GIVEN_NAMES: tuple[str, ...] = tuple(_COMMON_GIVEN_NAMES_TEXT.split())


def normalise_people(
    people: pa.Table,
    *,
    phone_regions: Mapping[str, str] | None = None,
    default_region: str = "GB",
) -> pa.Table:
    """Return the match fields of every person row (see :data:`NORMALISED_COLUMNS`).

    Every input row comes out, in the input's order (callers may line columns up by
    position), however empty, because the linker must give each canonical record a person
    key; a field that cannot be read becomes null rather than costing the row.
    ``phone_regions`` maps org_id to the region a member's numbers are dialled from (an
    Irish member's ``087 ...``), since a national number means nothing without one.
    """
    missing = [name for name in INPUT_COLUMNS if name not in people.column_names]
    if missing:
        raise ValueError(f"normalise_people needs the columns {', '.join(missing)}")
    regions = pa.table(
        {
            "org_id": pa.array([str(org) for org in (phone_regions or {})], pa.string()),
            "region": pa.array([r.upper() for r in (phone_regions or {}).values()], pa.string()),
        }
    )
    # Joins do not keep row order; the input's position puts every row back in its place.
    people = people.select(list(INPUT_COLUMNS)).append_column(
        "hub_row", pa.array(range(people.num_rows), pa.int64())
    )
    with duckdb.connect() as con:
        con.register("people_in", people)
        con.register("phone_regions", regions)
        con.register("nickname_canonicals", _nickname_table())
        con.execute(_CLEAN_NAME_MACRO)
        con.execute(_NAMES_TABLE)
        birth = _birth_date_sql(people.schema.field("birth_date").type)
        con.execute(
            _SOURCE_VIEW.format(
                birth_date=birth,
                default_region=_lit(default_region),
            )
        )
        con.register("parsed_phones", _parse_phones(con))
        result = con.sql(_SELECT).to_arrow_table()
    return result.cast(NORMALISED_SCHEMA)


def canonical_given_name(name: str) -> str:
    """The formal name a (cleaned, lower-case) given name is compared under: bob -> robert.

    Kept alongside the SQL so that review screens and tests can ask the same question the
    linker's data answers.
    """
    return nickname_canonicals().get(name, name)


@lru_cache(maxsize=1)
def nickname_canonicals() -> dict[str, str]:
    """Nickname -> formal name, for every name whose formal name is another name.

    A name in :data:`COMMON_GIVEN_NAMES` is formal in its own right and maps to itself
    (robert stays robert although the data also lists robert as a nickname of bob). Any
    other name takes, among itself and its formal names in the nicknames data, the most
    common; ties go to the name with more nicknames (a hub of the data rather than a
    leaf), then to the alphabetically first, so the answer never depends on set order.
    Chains are followed to the end, so a nickname and its formal name always agree.
    """
    namer = NickNamer()
    nicknames_of = namer.nickname_lookup
    formal_of = namer.canonical_lookup
    rank = {name: position for position, name in enumerate(COMMON_GIVEN_NAMES)}

    def preference(name: str) -> tuple[int, int, str]:
        return (rank.get(name, len(rank)), -len(nicknames_of.get(name, ())), name)

    best = {
        name: min((name, *formal), key=preference)
        for name, formal in formal_of.items()
        if name not in rank
    }
    mapping: dict[str, str] = {}
    for name, choice in best.items():
        # Each step strictly improves the preference, so the walk ends.
        while choice in best and best[choice] != choice:
            choice = best[choice]
        if choice != name:
            mapping[name] = choice
    return mapping


@lru_cache(maxsize=1)
def _nickname_table() -> pa.Table:
    """The mapping as a table DuckDB joins on; built once per process."""
    mapping = nickname_canonicals()
    return pa.table(
        {
            "name": pa.array(list(mapping), pa.string()),
            "canonical": pa.array(list(mapping.values()), pa.string()),
        }
    )


def _parse_phones(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """E.164 for each distinct (region, number) not already in E.164.

    A hub's phones are mostly E.164 already and the rest repeat (shared office numbers,
    test data), so parsing distinct values keeps phonenumbers off the per-row path.
    ``parse_phone`` is the loader's parser, so numbers are judged here as at load.
    """
    regions: list[str] = []
    raws: list[str] = []
    parsed: list[str | None] = []
    for region, raw in con.sql(_PHONES_TO_PARSE).fetchall():
        try:
            e164 = parse_phone(raw, region)
        except ValueProblem:
            e164 = None
        regions.append(region)
        raws.append(raw)
        parsed.append(e164)
    return pa.table(
        {
            "parsed_region": pa.array(regions, pa.string()),
            "parsed_text": pa.array(raws, pa.string()),
            "e164": pa.array(parsed, pa.string()),
        }
    )


def _birth_date_sql(arrow_type: pa.DataType) -> str:
    """Read birth_date as a DATE whether it arrives typed or as ISO text."""
    if pa.types.is_date(arrow_type) or pa.types.is_timestamp(arrow_type):
        return "CAST(p.birth_date AS DATE)"
    text = "nullif(trim(CAST(p.birth_date AS VARCHAR)), '')"
    # Unreadable text is null, not an error: the loader has already reported it.
    return f"coalesce(TRY_CAST({text} AS DATE), CAST(TRY_CAST({text} AS TIMESTAMP) AS DATE))"


def _lit(text: str) -> str:
    """A SQL string literal (patterns contain quotes, so they cannot be pasted as they are)."""
    return "'" + text.replace("'", "''") + "'"


# Lower case and accents stripped; letters that carry no accent to strip (ø, ß, æ) spelt
# the way English-language records write them. Hyphens, dashes, slashes and full stops
# separate parts of a name ("Mary-Jane", "Smith-Jones", "J.R."); anything else that is not
# a letter (apostrophes, digits, brackets) is dropped so "O'Neil" meets "ONeil". Titles go.
_CLEAN_NAME_MACRO = rf"""
CREATE MACRO hub_clean_name(s) AS nullif(array_to_string(list_filter(string_split(
    regexp_replace(
        regexp_replace(
            translate(
                replace(replace(replace(replace(
                    strip_accents(lower(s)), 'ß', 'ss'), 'æ', 'ae'), 'œ', 'oe'), 'þ', 'th'),
                'øłđðıħ', 'olddih'),
            '[\s\-‐‑‒–—_/.,;:&+]+', ' ', 'g'),
        '[^\p{{L}}\p{{M}} ]', '', 'g'),
    ' '), lambda t: t <> '' AND t NOT IN ({", ".join(_lit(t) for t in TITLES)})), ' '), '')
"""

# Names repeat (a hub has far fewer distinct names than people), so each distinct spelling
# is cleaned once and joined back (a million rows: 0.2 s instead of 2.2 s).
_NAMES_TABLE = """
CREATE TEMP TABLE names AS
SELECT raw, clean,
    coalesce(nk.canonical, split_part(clean, ' ', 1)) AS first_canonical
FROM (
    SELECT raw, hub_clean_name(raw) AS clean
    FROM (
        SELECT CAST(given_name AS VARCHAR) AS raw FROM people_in
        UNION SELECT CAST(family_name AS VARCHAR) FROM people_in
    )
    WHERE raw IS NOT NULL
)
LEFT JOIN nickname_canonicals AS nk ON nk.name = split_part(clean, ' ', 1)
"""

_SOURCE_VIEW = r"""
CREATE TEMP VIEW src AS
SELECT
    p.hub_row,
    CAST(p.org_id AS VARCHAR) AS org_id,
    CAST(p.source_id AS VARCHAR) AS source_id,
    coalesce(TRY_CAST(p.consent_to_share AS BOOLEAN), false) AS consent,
    g.clean AS given_name,
    g.first_canonical AS given_canonical,
    f.clean AS family_name,
    {birth_date} AS birth_date,
    regexp_replace(
        regexp_replace(lower(CAST(p.email AS VARCHAR)), '\s+', '', 'g'), '^mailto:', ''
    ) AS email_compact,
    trim(CAST(p.phone AS VARCHAR)) AS phone_raw,
    upper(regexp_replace(CAST(p.postcode AS VARCHAR), '\s+', '', 'g')) AS postcode_compact,
    upper(trim(regexp_replace(CAST(p.postcode AS VARCHAR), '\s+', ' ', 'g')))
        AS postcode_spaced,
    coalesce(r.region, upper({default_region})) AS region
FROM people_in AS p
LEFT JOIN phone_regions AS r ON r.org_id = CAST(p.org_id AS VARCHAR)
LEFT JOIN names AS g ON g.raw = CAST(p.given_name AS VARCHAR)
LEFT JOIN names AS f ON f.raw = CAST(p.family_name AS VARCHAR)
"""

# The phone when no parse is needed; null sends it to phonenumbers. Separators are removed
# only for phones that are not E.164 already, so the hub's stored phones cost one regex.
_PHONE_COMPACT = (
    f"regexp_replace(regexp_replace(phone_raw, {_lit(PHONE_SEPARATORS)}, '', 'g'), '^00', '+')"
)
_PHONE_WITHOUT_PARSE = f"""CASE
    WHEN regexp_full_match(phone_raw, {_lit(E164_PATTERN)}) THEN phone_raw
    WHEN regexp_full_match({_PHONE_COMPACT}, {_lit(GB_INTERNATIONAL_PATTERN)})
        THEN {_PHONE_COMPACT}
    WHEN region = 'GB' AND regexp_full_match({_PHONE_COMPACT}, {_lit(GB_NATIONAL_PATTERN)})
        THEN '+44' || substr({_PHONE_COMPACT}, 2)
END"""

_PHONES_TO_PARSE = f"""
SELECT DISTINCT region, phone_raw
FROM src
WHERE phone_raw <> '' AND ({_PHONE_WITHOUT_PARSE}) IS NULL
"""

_GB_POSTCODE = f"regexp_full_match(s.postcode_compact, {_lit(GB_POSTCODE_PATTERN.pattern)})"

_SELECT = f"""
SELECT
    s.org_id || '|' || s.source_id AS unique_id,
    s.org_id,
    s.source_id,
    s.consent,
    s.given_name,
    s.given_canonical,
    s.family_name,
    string_split(s.family_name, ' ') AS family_tokens,
    s.birth_date,
    CASE WHEN day(s.birth_date) <= 12 AND day(s.birth_date) <> month(s.birth_date)
        THEN make_date(year(s.birth_date), day(s.birth_date), month(s.birth_date))
    END AS birth_date_swapped,
    CAST(year(s.birth_date) AS INTEGER) AS birth_year,
    CASE WHEN regexp_full_match(s.email_compact, {_lit(EMAIL_PATTERN.pattern)})
        AND NOT contains(s.email_compact, '..') THEN s.email_compact
    END AS email,
    CASE WHEN s.phone_raw <> '' THEN coalesce({_PHONE_WITHOUT_PARSE}, ph.e164) END AS phone,
    CASE WHEN s.postcode_compact = '' THEN NULL
        WHEN {_GB_POSTCODE} THEN left(s.postcode_compact, length(s.postcode_compact) - 3)
            || ' ' || right(s.postcode_compact, 3)
        ELSE s.postcode_spaced
    END AS postcode,
    CASE WHEN {_GB_POSTCODE}
        THEN left(s.postcode_compact, length(s.postcode_compact) - 3)
    END AS postcode_outward
FROM src AS s
LEFT JOIN parsed_phones AS ph ON ph.parsed_region = s.region AND ph.parsed_text = s.phone_raw
ORDER BY s.hub_row
"""
