//! Schemas that cannot drift (#13): `migrations/sqlite` and `migrations/postgres` must build the
//! same store, and both must seed exactly the reference data of `migrations/reference-data.json`.
//!
//! [`the_two_migration_sets_build_the_same_schema`] applies each set to a fresh store (a SQLite
//! file, a PostgreSQL schema), reads both back from their catalogues (SQLite: `sqlite_master`,
//! `pragma_table_info`, `pragma_index_list`, `pragma_index_xinfo`, `pragma_foreign_key_list`;
//! PostgreSQL: `information_schema.columns`, `pg_index`, `pg_constraint`) and compares tables,
//! columns, column types (through [`TYPE_MAP`]), nullability, primary keys, UNIQUE constraints,
//! indexes by name (uniqueness, keys and their direction, access method, the predicate of a
//! partial index) and foreign keys (columns, target, ON DELETE). Any difference fails it unless
//! [`INTENDED`] lists it with its reason, and an INTENDED entry (or a [`TYPE_MAP`] row) that no
//! longer matches anything fails it too, so both lists stay true.
//!
//! One rule is applied before comparing: a PRIMARY KEY column counts as NOT NULL on SQLite as on
//! PostgreSQL. (SQLite, for compatibility with old versions, lets a non-INTEGER primary key column
//! hold NULL unless it is declared NOT NULL; the migrations never declare it, careport never
//! writes a NULL id, and rebuilding every table to add the constraint is not worth its risk.)
//!
//! It needs PostgreSQL: in CI's SQLite pass (`CAREPORT_TEST_PG_URL` unset) it says that it is
//! skipped and passes; CI's PostgreSQL pass (`.ci/run` sets `CAREPORT_TEST_PG_URL`) runs it.
//! [`reference_data::both_migration_sets_seed_exactly_the_reference_data_file`] checks the SQLite store in both
//! passes and the PostgreSQL store in the second. [`the_comparison_reports_what_one_side_lacks`]
//! checks, on SQLite alone, that the comparison sees a difference at all.
//!
//! Layout: this file holds the rules (the type map, the intended differences) and the
//! comparison; [`shape`] reads each backend's catalogue; [`reference_data`] checks the seeded
//! rows against their one source.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use careport_store::Db;
use careport_tests::{TestDb, pg_admin_url};
use serde_json::{Map, Value};
use sqlx::Row as _;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

mod reference_data;
mod shape;

use shape::{pg_shape, sqlite_shape};

/// How a column type declared in `migrations/sqlite` corresponds to one in `migrations/postgres`
/// (`information_schema.columns.data_type`, or the type's name for an extension's type).
/// SQLite has one integer class and no boolean: an integer's width and whether it is a flag are
/// PostgreSQL's alone (the column's Rust type decides). Only what the migrations use is listed,
/// and every row must be used: a new kind of column is a decision to write down here.
const TYPE_MAP: &[(&str, &str, &str)] = &[
    // SQLite    PostgreSQL  used for
    ("INTEGER", "bigint", "i64: milliseconds since the epoch, sizes, positions, row ids"),
    ("INTEGER", "integer", "i32: small bounded numbers (priorities, attempts, dimensions, frame sizes)"),
    ("INTEGER", "boolean", "flags: SQLite stores 0 and 1"),
    ("TEXT", "text", "strings: slugs, names, hashes, sealed values, JSON"),
    ("BLOB", "uuid", "ids: SQLite stores the 16 bytes"),
    ("BLOB", "bytea", "bytes: plugin modules"),
    ("REAL", "double precision", "f64: OCR confidences (0 to 100)"),
];

/// A difference that is meant. `sqlite` and `postgres` are what each side shows (as in the
/// failure message); `None` where that side has no such thing.
struct Intended {
    what: &'static str,
    sqlite: Option<&'static str>,
    postgres: Option<&'static str>,
    reason: &'static str,
}

impl Intended {
    /// Whether this is that difference: the same thing, shown the same on each side.
    fn matches(&self, d: &Difference) -> bool {
        self.what == d.what && self.sqlite == d.sqlite.as_deref() && self.postgres == d.postgres.as_deref()
    }
}

/// The differences between the two sets that are meant, each with its reason.
const INTENDED: &[Intended] = &[
    Intended {
        what: "embeddings: column vector",
        sqlite: Some("BLOB NOT NULL"),
        postgres: Some("vector NOT NULL"),
        reason: "pgvector's type on PostgreSQL; SQLite has none and keeps the vector as a BLOB of little-endian f32",
    },
    Intended {
        what: "knowledge_chunks: column tsv",
        sqlite: None,
        postgres: Some("tsvector"),
        reason: "the knowledge base's full text on PostgreSQL: a generated tsvector of the chunk's text ('simple' configuration); SQLite has an FTS5 table instead",
    },
    Intended {
        what: "knowledge_chunks: index knowledge_chunks_tsv",
        sqlite: None,
        postgres: Some("INDEX USING gin (tsv)"),
        reason: "the GIN index of that tsvector (PostgreSQL only)",
    },
    Intended {
        what: "table knowledge_fts",
        sqlite: Some("table (text)"),
        postgres: None,
        reason: "the knowledge base's full text on SQLite: an FTS5 table over knowledge_chunks.text (and the shadow tables FTS5 makes), kept in step by triggers; PostgreSQL has a generated tsvector column instead",
    },
    Intended {
        what: "table knowledge_fts_config",
        sqlite: Some("table (k, v)"),
        postgres: None,
        reason: "the knowledge base's full text on SQLite: an FTS5 table over knowledge_chunks.text (and the shadow tables FTS5 makes), kept in step by triggers; PostgreSQL has a generated tsvector column instead",
    },
    Intended {
        what: "table knowledge_fts_data",
        sqlite: Some("table (block, id)"),
        postgres: None,
        reason: "the knowledge base's full text on SQLite: an FTS5 table over knowledge_chunks.text (and the shadow tables FTS5 makes), kept in step by triggers; PostgreSQL has a generated tsvector column instead",
    },
    Intended {
        what: "table knowledge_fts_docsize",
        sqlite: Some("table (id, sz)"),
        postgres: None,
        reason: "the knowledge base's full text on SQLite: an FTS5 table over knowledge_chunks.text (and the shadow tables FTS5 makes), kept in step by triggers; PostgreSQL has a generated tsvector column instead",
    },
    Intended {
        what: "table knowledge_fts_idx",
        sqlite: Some("table (pgno, segid, term)"),
        postgres: None,
        reason: "the knowledge base's full text on SQLite: an FTS5 table over knowledge_chunks.text (and the shadow tables FTS5 makes), kept in step by triggers; PostgreSQL has a generated tsvector column instead",
    },
];

/// One thing a schema says about a table: as the backend shows it, and in the terms both share.
#[derive(Debug, Clone)]
struct Fact {
    shown: String,
    canonical: String,
    /// For a column: its type as declared (SQLite) or named (PostgreSQL), for [`TYPE_MAP`].
    column_type: Option<String>,
}

impl Fact {
    fn same(text: String) -> Self {
        Self { canonical: text.clone(), shown: text, column_type: None }
    }
}

/// Table → (what, within the table → fact). What: `column C`, `primary key`, `unique (C, …)`,
/// `index NAME`, `foreign key (C, …)`.
type Shape = BTreeMap<String, BTreeMap<String, Fact>>;

/// A difference between the two shapes; `None` where that side lacks the thing.
#[derive(Debug)]
struct Difference {
    what: String,
    sqlite: Option<String>,
    postgres: Option<String>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = |s: &Option<String>| s.clone().unwrap_or_else(|| "(none)".to_owned());
        write!(f, "  {}\n      sqlite:   {}\n      postgres: {}", self.what, side(&self.sqlite), side(&self.postgres))
    }
}

#[actix_web::test]
async fn the_two_migration_sets_build_the_same_schema() {
    let Some(admin) = pg_admin_url() else {
        careport_tests::skipping("CAREPORT_TEST_PG_URL", "schema parity: CI's PostgreSQL pass compares");
        return;
    };
    let sqlite_db = TestDb::sqlite();
    let sqlite = sqlite_shape(sqlite_pool(&sqlite_db.connect().await)).await;
    let pg_db = TestDb::postgres(&admin).await;
    let pg = pg_shape(pg_pool(&pg_db.connect().await)).await;
    for (name, shape) in [("sqlite", &sqlite), ("postgres", &pg)] {
        assert!(
            shape.get("users").is_some_and(|t| t.contains_key("column email")),
            "the {name} catalogue read back no users.email: the comparison would be vacuous"
        );
    }

    let mut report = String::new();
    let differences = differences(&sqlite, &pg);
    let unmeant: Vec<&Difference> = differences.iter().filter(|d| !INTENDED.iter().any(|i| i.matches(d))).collect();
    if !unmeant.is_empty() {
        let _ = writeln!(
            report,
            "{} difference(s) between migrations/sqlite and migrations/postgres that INTENDED does not list \
             (fix them with a new migration pair, or list them in INTENDED with a reason):",
            unmeant.len()
        );
        for d in &unmeant {
            let _ = writeln!(report, "{d}");
        }
    }
    let stale: Vec<&Intended> = INTENDED.iter().filter(|i| !differences.iter().any(|d| i.matches(d))).collect();
    for i in stale {
        let _ = writeln!(
            report,
            "INTENDED entry matches no difference (remove or correct it): {} (sqlite {:?}, postgres {:?}; {})",
            i.what, i.sqlite, i.postgres, i.reason
        );
    }
    for (lite, pg_type, why) in unused_type_map_rows(&sqlite, &pg) {
        let _ = writeln!(report, "TYPE_MAP row {lite} ↔ {pg_type} ({why}) is used by no column: remove it");
    }
    assert!(report.is_empty(), "\n{report}");
}

#[actix_web::test]
async fn the_comparison_reports_what_one_side_lacks() {
    let (a, b) = (TestDb::sqlite(), TestDb::sqlite());
    let (a_db, b_db) = (a.connect().await, b.connect().await);
    let same = differences(&sqlite_shape(sqlite_pool(&a_db)).await, &sqlite_shape(sqlite_pool(&b_db)).await);
    assert!(same.is_empty(), "one migration set read twice differs from itself: {same:?}");

    let Db::Sqlite { write, .. } = &b_db else { unreachable!("a SQLite TestDb") };
    for ddl in [
        "ALTER TABLE patients ADD COLUMN nickname TEXT",
        "CREATE INDEX patients_nickname ON patients (lower(nickname)) WHERE deleted_at IS NULL",
    ] {
        sqlx::query(ddl).execute(write).await.expect("change the schema");
    }
    // Two SQLite stores: the second stands where PostgreSQL's would.
    let found = differences(&sqlite_shape(sqlite_pool(&a_db)).await, &sqlite_shape(sqlite_pool(&b_db)).await);
    let whats: Vec<&str> = found.iter().map(|d| d.what.as_str()).collect();
    assert_eq!(whats, ["patients: column nickname", "patients: index patients_nickname"], "{found:#?}");
    assert_eq!(found[1].postgres.as_deref(), Some("INDEX (lower(nickname)) WHERE deleted_at IS NULL"));
}

fn sqlite_pool(db: &Db) -> &SqlitePool {
    match db {
        Db::Sqlite { read, .. } => read,
        Db::Postgres(_) => unreachable!("a SQLite TestDb"),
    }
}

fn pg_pool(db: &Db) -> &PgPool {
    match db {
        Db::Postgres(pool) => pool,
        Db::Sqlite { .. } => unreachable!("a PostgreSQL TestDb"),
    }
}

/// Every difference between the two shapes, in table order, then in order of what differs.
fn differences(sqlite: &Shape, pg: &Shape) -> Vec<Difference> {
    let mut out = Vec::new();
    let tables: BTreeSet<&String> = sqlite.keys().chain(pg.keys()).collect();
    for table in tables {
        let (Some(a), Some(b)) = (sqlite.get(table), pg.get(table)) else {
            out.push(Difference {
                what: format!("table {table}"),
                sqlite: sqlite.get(table).map(describe_table),
                postgres: pg.get(table).map(describe_table),
            });
            continue;
        };
        let whats: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for what in whats {
            let (x, y) = (a.get(what), b.get(what));
            if x.map(|f| &f.canonical) != y.map(|f| &f.canonical) {
                out.push(Difference {
                    what: format!("{table}: {what}"),
                    sqlite: x.map(|f| f.shown.clone()),
                    postgres: y.map(|f| f.shown.clone()),
                });
            }
        }
    }
    out
}

fn describe_table(facts: &BTreeMap<String, Fact>) -> String {
    let columns: Vec<&str> = facts.keys().filter_map(|w| w.strip_prefix("column ")).collect();
    format!("table ({})", columns.join(", "))
}

/// The [`TYPE_MAP`] rows that no column present on both sides uses.
fn unused_type_map_rows(sqlite: &Shape, pg: &Shape) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut used = BTreeSet::new();
    for (table, facts) in sqlite {
        for (what, fact) in facts {
            if let (Some(a), Some(b)) = (
                fact.column_type.as_deref(),
                pg.get(table).and_then(|t| t.get(what)).and_then(|f| f.column_type.as_deref()),
            ) {
                used.insert((a.to_owned(), b.to_owned()));
            }
        }
    }
    TYPE_MAP.iter().copied().filter(|(a, b, _)| !used.contains(&((*a).to_owned(), (*b).to_owned()))).collect()
}

/// A PostgreSQL type in SQLite's terms, through [`TYPE_MAP`]; a type it lacks stays distinct.
fn pg_type_in_sqlite_terms(pg_type: &str) -> String {
    TYPE_MAP
        .iter()
        .find(|(_, pg, _)| *pg == pg_type)
        .map_or_else(|| format!("{pg_type} (not in TYPE_MAP)"), |(lite, _, _)| (*lite).to_owned())
}

fn nullability(not_null: bool) -> &'static str {
    if not_null { " NOT NULL" } else { "" }
}

/// SQL text in the terms both backends share: outside string literals no whitespace, lower case
/// and no `::type` casts (PostgreSQL adds them), and no parentheses around the whole.
fn normalize_sql(sql: &str) -> String {
    let mut out = String::new();
    let mut chars = sql.chars().peekable();
    let mut in_literal = false;
    while let Some(c) = chars.next() {
        if in_literal {
            out.push(c);
            in_literal = c != '\'';
            continue;
        }
        match c {
            '\'' => {
                in_literal = true;
                out.push(c);
            }
            ':' if chars.peek() == Some(&':') => {
                chars.next();
                while chars.peek().is_some_and(|c| c.is_alphanumeric() || *c == '_') {
                    chars.next();
                }
            }
            c if c.is_whitespace() => {}
            c => out.extend(c.to_lowercase()),
        }
    }
    while out.starts_with('(') && out.ends_with(')') && encloses_whole(&out) {
        out = out[1..out.len() - 1].to_owned();
    }
    out
}

/// Whether the parenthesis that opens `s` is the one that closes it.
fn encloses_whole(s: &str) -> bool {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return i == s.len() - 1;
                }
            }
            _ => {}
        }
    }
    false
}

/// The keys and the WHERE clause of a `CREATE INDEX` statement, as written.
fn parse_create_index(sql: &str) -> (Vec<String>, Option<String>) {
    let on = sql.to_ascii_uppercase().find(" ON ").expect("CREATE INDEX … ON");
    let open = on + sql[on..].find('(').expect("an index's key list");
    let (mut keys, mut start, mut depth, mut in_literal) = (Vec::new(), open + 1, 0, false);
    let mut rest = "";
    for (i, c) in sql[open..].char_indices().map(|(i, c)| (open + i, c)) {
        match c {
            '\'' => in_literal = !in_literal,
            _ if in_literal => {}
            '(' => depth += 1,
            ',' if depth == 1 => {
                keys.push(sql[start..i].trim().to_owned());
                start = i + 1;
            }
            ')' => {
                depth -= 1;
                if depth == 0 {
                    keys.push(sql[start..i].trim().to_owned());
                    rest = sql[i + 1..].trim();
                    break;
                }
            }
            _ => {}
        }
    }
    let predicate = rest.get(..5).filter(|w| w.eq_ignore_ascii_case("WHERE")).map(|_| rest[5..].trim().to_owned());
    (keys, predicate)
}

/// An index's fact: shown as `[UNIQUE ]INDEX [USING am ](keys)[ WHERE predicate]`.
fn index_fact(unique: bool, method: &str, keys: &[(String, bool)], predicate: Option<&str>) -> Fact {
    let using = if method == "btree" { String::new() } else { format!("USING {method} ") };
    let unique = if unique { "UNIQUE " } else { "" };
    let shown_keys: Vec<String> =
        keys.iter().map(|(k, desc)| format!("{k}{}", if *desc { " DESC" } else { "" })).collect();
    let canonical_keys: Vec<String> =
        keys.iter().map(|(k, desc)| format!("{}{}", normalize_sql(k), if *desc { " desc" } else { "" })).collect();
    Fact {
        shown: format!(
            "{unique}INDEX {using}({}){}",
            shown_keys.join(", "),
            predicate.map(|p| format!(" WHERE {p}")).unwrap_or_default()
        ),
        canonical: format!(
            "{unique}{using}({}){}",
            canonical_keys.join(","),
            predicate.map(|p| format!(" where {}", normalize_sql(p))).unwrap_or_default()
        ),
        column_type: None,
    }
}
