//! Reference data from one source: both migrated stores hold exactly the rows of
//! `migrations/reference-data.json` (which `scripts/gen-reference-migrations.py` turns into the
//! migrations).

use super::*;

/// `migrations/reference-data.json`: what `scripts/gen-reference-migrations.py` writes into both
/// migration sets, grouped by migration (keys starting with `$` are comments).
const REFERENCE_DATA: &str = include_str!("../../../migrations/reference-data.json");

/// What the generator seeds in a column the data file leaves out.
fn seeded(column: &str) -> Option<Value> {
    match column {
        "created_at" | "updated_at" => Some(Value::from(0)),
        "retired_at" => Some(Value::Null),
        _ => None,
    }
}

#[actix_web::test]
async fn both_migration_sets_seed_exactly_the_reference_data_file() {
    let source: Map<String, Value> = serde_json::from_str(REFERENCE_DATA).expect("reference-data.json parses");
    let mut expected: BTreeMap<String, Vec<Map<String, Value>>> = BTreeMap::new();
    for (migration, tables) in source.iter().filter(|(k, _)| !k.starts_with('$')) {
        for (table, rows) in tables.as_object().unwrap_or_else(|| panic!("{migration}: an object of tables")) {
            assert!(table.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "table name {table:?}");
            let rows = rows.as_array().unwrap_or_else(|| panic!("{migration}.{table}: an array of rows"));
            expected.entry(table.clone()).or_default().extend(
                rows.iter().map(|r| r.as_object().cloned().unwrap_or_else(|| panic!("{table}: a row is an object"))),
            );
        }
    }
    assert!(
        ["languages", "departments", "cancer_types", "record_types"].iter().all(|t| expected.contains_key(*t)),
        "reference-data.json lacks a reference table: {:?}",
        expected.keys()
    );

    let mut report = String::new();
    let sqlite_db = TestDb::sqlite();
    let sqlite = sqlite_db.connect().await;
    for (table, rows) in &expected {
        let actual = sqlite_rows(sqlite_pool(&sqlite), table).await;
        compare_rows("sqlite", table, rows, &actual, &mut report);
    }
    match pg_admin_url() {
        Some(admin) => {
            let pg_db = TestDb::postgres(&admin).await;
            let pg = pg_db.connect().await;
            for (table, rows) in &expected {
                let actual = pg_rows(pg_pool(&pg), table).await;
                compare_rows("postgres", table, rows, &actual, &mut report);
            }
        }
        None => eprintln!(
            "reference data: PostgreSQL skipped in this pass (CAREPORT_TEST_PG_URL is unset); SQLite compared"
        ),
    }
    assert!(
        report.is_empty(),
        "\nthe migrated stores do not hold exactly migrations/reference-data.json's rows \
         (regenerate with scripts/gen-reference-migrations.py, or fix the data):\n{report}"
    );
}

/// Compare a table's rows (all columns) with the data file's, the seeded columns filled in.
fn compare_rows(
    backend: &str,
    table: &str,
    source: &[Map<String, Value>],
    actual: &[Map<String, Value>],
    report: &mut String,
) {
    let columns: BTreeSet<&String> = actual.iter().flat_map(|r| r.keys()).collect();
    let expected: BTreeSet<String> = source
        .iter()
        .map(|row| {
            let mut row = row.clone();
            for column in &columns {
                if !row.contains_key(*column) {
                    let value = seeded(column).unwrap_or_else(|| {
                        panic!("{table}.{column} is neither in reference-data.json nor a seeded column")
                    });
                    row.insert((*column).clone(), value);
                }
            }
            row_text(&row)
        })
        .collect();
    let actual: BTreeSet<String> = actual.iter().map(row_text).collect();
    for row in expected.difference(&actual) {
        let _ = writeln!(report, "  {backend} {table}: missing  {row}");
    }
    for row in actual.difference(&expected) {
        let _ = writeln!(report, "  {backend} {table}: not in the data file  {row}");
    }
}

/// A row as JSON with its columns in name order, whatever order the map keeps.
fn row_text(row: &Map<String, Value>) -> String {
    serde_json::to_string(&row.iter().collect::<BTreeMap<_, _>>()).expect("a row serialises")
}

async fn sqlite_rows(pool: &SqlitePool, table: &str) -> Vec<Map<String, Value>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {table}")))
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("read sqlite {table}: {e}"));
    rows.iter()
        .map(|row| {
            use sqlx::Column as _;
            row.columns()
                .iter()
                .map(|c| {
                    let i = c.ordinal();
                    let value = if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
                        v.map(Value::from)
                    } else if let Ok(v) = row.try_get::<Option<String>, _>(i) {
                        v.map(Value::from)
                    } else {
                        panic!("sqlite {table}.{}: neither an integer nor text", c.name())
                    };
                    (c.name().to_owned(), value.unwrap_or(Value::Null))
                })
                .collect()
        })
        .collect()
}

async fn pg_rows(pool: &PgPool, table: &str) -> Vec<Map<String, Value>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {table}")))
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("read postgres {table}: {e}"));
    rows.iter()
        .map(|row| {
            use sqlx::Column as _;
            row.columns()
                .iter()
                .map(|c| {
                    let i = c.ordinal();
                    let value = if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
                        v.map(Value::from)
                    } else if let Ok(v) = row.try_get::<Option<i32>, _>(i) {
                        v.map(Value::from)
                    } else if let Ok(v) = row.try_get::<Option<String>, _>(i) {
                        v.map(Value::from)
                    } else {
                        panic!("postgres {table}.{}: neither an integer nor text", c.name())
                    };
                    (c.name().to_owned(), value.unwrap_or(Value::Null))
                })
                .collect()
        })
        .collect()
}
