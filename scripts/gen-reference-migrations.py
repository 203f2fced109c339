"""Writes the reference-data migrations of both dialects from one source,
migrations/reference-data.json (languages, departments, the cancer-type tree, record types):

    python3 scripts/gen-reference-migrations.py          # (re)write the four files
    python3 scripts/gen-reference-migrations.py --check  # exit 1 if a file differs from the data

It owns the text of migrations/{sqlite,postgres}/20261126120000_reference_data.sql,
migrations/{sqlite,postgres}/20261126150000_record_types.sql and
migrations/{sqlite,postgres}/20261210100000_medical_images.sql: the same rows in both dialects,
only the integer type of the DDL differs. Released migrations never change (sqlx checks their
checksums), so --check must pass on them; new reference data is a new migration (a new group in
the JSON and a template here). tests/api/schema.rs checks the migrated stores against the JSON.
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "migrations" / "reference-data.json"
DIALECTS = {"sqlite": "INTEGER", "postgres": "BIGINT"}  # the i64 column type of each dialect


def literal(value):
    if value is None:
        return "NULL"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise SystemExit(f"reference-data.json: unsupported value {value!r}")
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


def insert(table, columns, rows, seeded=()):
    """One INSERT of `rows` (dicts with exactly `columns`), then the `seeded` constant columns."""
    lines = []
    for row in rows:
        if list(row) != columns:
            raise SystemExit(f"reference-data.json: a {table} row has {list(row)}, expected {columns}")
        values = [literal(row[c]) for c in columns] + [v for _, v in seeded]
        lines.append("    (" + ", ".join(values) + ")")
    names = ", ".join(columns + [c for c, _ in seeded])
    return f"INSERT INTO {table} ({names}) VALUES\n" + ",\n".join(lines) + ";\n"


def reference_data(data, B):
    top = [r for r in data["cancer_types"] if r["parent_id"] is None]
    subtypes = [r for r in data["cancer_types"] if r["parent_id"] is not None]
    cancer_columns = ["id", "parent_id", "name", "description", "position"]
    return f"""-- Reference data of the clinic directory: languages, departments and the cancer-type tree
-- (DESIGN §10). Ids are stable slugs, so links and seeds agree on every node. Descriptions
-- are our own. Times are milliseconds since the Unix epoch.

CREATE TABLE languages (
    code          TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL,
    native_name   TEXT    NOT NULL,
    display_order INTEGER NOT NULL UNIQUE
);
{insert("languages", ["code", "name", "native_name", "display_order"], data["languages"])}
CREATE TABLE departments (
    id          TEXT   PRIMARY KEY,
    name        TEXT   NOT NULL UNIQUE,
    description TEXT   NOT NULL,
    created_at  {B} NOT NULL
);
{insert("departments", ["id", "name", "description"], data["departments"], [("created_at", "0")])}
-- Two levels: a top-level type (parent_id NULL) and its subtypes. Retired types stay (old
-- assignments name them) but are no longer offered.
CREATE TABLE cancer_types (
    id          TEXT   PRIMARY KEY,
    parent_id   TEXT   REFERENCES cancer_types (id),
    name        TEXT   NOT NULL,
    description TEXT   NOT NULL,
    position    {B} NOT NULL,
    created_at  {B} NOT NULL,
    updated_at  {B} NOT NULL,
    retired_at  {B}
);
CREATE UNIQUE INDEX cancer_types_name ON cancer_types (COALESCE(parent_id, ''), lower(name));
CREATE INDEX cancer_types_parent ON cancer_types (parent_id);
{insert("cancer_types", cancer_columns, top, [("created_at", "0"), ("updated_at", "0")])}
{insert("cancer_types", cancer_columns, subtypes, [("created_at", "0"), ("updated_at", "0")])}"""


def record_types(data, B):
    return f"""-- The twenty medical record types (DESIGN §10), with descriptions of our own and the free-text
-- names people use for them (aliases, `|`-separated), which GET /api/v1/record-types/match ranks.
CREATE TABLE record_types (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL,
    aliases     TEXT    NOT NULL,
    position    {B} NOT NULL
);
{insert("record_types", ["id", "name", "description", "aliases", "position"], data["record_types"])}"""


def medical_images(data, B):
    return f"""-- Medical images (#18) are records of their own type; record_images holds what is read from
-- them (20261210110000_images.sql).
{insert("record_types", ["id", "name", "description", "aliases", "position"], data["record_types"])}"""


# Each migration of the JSON, and the function that writes its file.
TEMPLATES = {
    "20261126120000_reference_data": reference_data,
    "20261126150000_record_types": record_types,
    "20261210100000_medical_images": medical_images,
}


def main():
    check = sys.argv[1:] == ["--check"]
    if sys.argv[1:] not in ([], ["--check"]):
        raise SystemExit(__doc__)
    data = json.loads(DATA.read_text(encoding="utf-8"))
    groups = {k: v for k, v in data.items() if not k.startswith("$")}
    if set(groups) != set(TEMPLATES):
        raise SystemExit(f"reference-data.json has {sorted(groups)}, the generator knows {sorted(TEMPLATES)}")
    stale = []
    for migration, template in TEMPLATES.items():
        for dialect, B in DIALECTS.items():
            path = ROOT / "migrations" / dialect / f"{migration}.sql"
            text = template(groups[migration], B)
            if check:
                if not path.is_file() or path.read_text(encoding="utf-8") != text:
                    stale.append(str(path.relative_to(ROOT)))
            else:
                path.write_text(text, encoding="utf-8", newline="\n")
    if stale:
        raise SystemExit("not what migrations/reference-data.json makes: " + ", ".join(stale))


if __name__ == "__main__":
    main()
