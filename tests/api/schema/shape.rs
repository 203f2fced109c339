//! Each backend's shape as its catalogue tells it: SQLite's `sqlite_master` and `pragma_*`
//! tables, PostgreSQL's `information_schema` and `pg_catalog`, read into the [`Shape`] that the
//! comparison in `mod.rs` takes.

use super::*;

/// The shape of a migrated SQLite store.
pub(super) async fn sqlite_shape(pool: &SqlitePool) -> Shape {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .expect("SQLite tables");
    let mut shape = Shape::new();
    for table in tables {
        let mut facts = BTreeMap::new();
        let columns: Vec<(String, String, i64, i64)> =
            sqlx::query_as("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1)")
                .bind(&table)
                .fetch_all(pool)
                .await
                .expect("pragma_table_info");
        let mut primary_key: Vec<(i64, String)> = Vec::new();
        for (name, declared, not_null, pk) in columns {
            let declared = declared.to_ascii_uppercase();
            // The one rule (module doc): a primary key column counts as NOT NULL.
            let text = format!("{declared}{}", nullability(not_null != 0 || pk > 0));
            facts.insert(
                format!("column {name}"),
                Fact { canonical: text.clone(), shown: text, column_type: Some(declared) },
            );
            if pk > 0 {
                primary_key.push((pk, name));
            }
        }
        primary_key.sort();
        if !primary_key.is_empty() {
            let names: Vec<String> = primary_key.into_iter().map(|(_, n)| n).collect();
            facts.insert("primary key".to_owned(), Fact::same(format!("({})", names.join(", "))));
        }

        let indexes: Vec<(String, bool, String, bool)> =
            sqlx::query_as("SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1)")
                .bind(&table)
                .fetch_all(pool)
                .await
                .expect("pragma_index_list");
        for (index, unique, origin, _partial) in indexes {
            let keys: Vec<(i64, Option<String>, bool)> =
                sqlx::query_as("SELECT cid, name, \"desc\" FROM pragma_index_xinfo(?1) WHERE key ORDER BY seqno")
                    .bind(&index)
                    .fetch_all(pool)
                    .await
                    .expect("pragma_index_xinfo");
            match origin.as_str() {
                // The primary key's own index: the primary key is compared as such.
                "pk" => {}
                "u" => {
                    let names: Vec<String> = keys.into_iter().map(|(_, n, _)| n.unwrap_or_default()).collect();
                    facts.insert(format!("unique ({})", names.join(", ")), Fact::same("UNIQUE constraint".to_owned()));
                }
                _ => {
                    let sql: String =
                        sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?1")
                            .bind(&index)
                            .fetch_one(pool)
                            .await
                            .expect("the index's SQL");
                    let (written, predicate) = parse_create_index(&sql);
                    let keys: Vec<(String, bool)> = keys
                        .into_iter()
                        .enumerate()
                        .map(|(i, (_, name, desc))| {
                            // An expression (no column name): its text as written, less ASC/DESC.
                            let key = name.unwrap_or_else(|| {
                                let text = written.get(i).cloned().unwrap_or_default();
                                let upper = text.to_ascii_uppercase();
                                let cut = upper.strip_suffix(" DESC").or_else(|| upper.strip_suffix(" ASC"));
                                cut.map_or(text.clone(), |c| text[..c.len()].trim_end().to_owned())
                            });
                            (key, desc)
                        })
                        .collect();
                    facts.insert(format!("index {index}"), index_fact(unique, "btree", &keys, predicate.as_deref()));
                }
            }
        }

        let foreign_keys: Vec<(i64, String, String, Option<String>, String)> = sqlx::query_as(
            "SELECT id, \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
        )
        .bind(&table)
        .fetch_all(pool)
        .await
        .expect("pragma_foreign_key_list");
        let mut by_id: BTreeMap<i64, SqliteForeignKey> = BTreeMap::new();
        for (id, target, from, to, on_delete) in foreign_keys {
            let key = by_id.entry(id).or_insert_with(|| SqliteForeignKey { target, on_delete, ..Default::default() });
            key.from.push(from);
            key.to.push(to);
        }
        for SqliteForeignKey { target, from, to, on_delete } in by_id.into_values() {
            // `REFERENCES t` without columns names t's primary key.
            let to: Vec<String> = if to.iter().all(Option::is_some) {
                to.into_iter().flatten().collect()
            } else {
                sqlx::query_scalar("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk")
                    .bind(&target)
                    .fetch_all(pool)
                    .await
                    .expect("the referenced primary key")
            };
            insert_foreign_key(&mut facts, &from, &target, &to, &on_delete);
        }
        shape.insert(table, facts);
    }
    shape
}

/// A foreign key of SQLite's, from its rows in `pragma_foreign_key_list` (one per column).
#[derive(Default)]
struct SqliteForeignKey {
    target: String,
    from: Vec<String>,
    /// `None`: `REFERENCES t` without columns.
    to: Vec<Option<String>>,
    on_delete: String,
}

/// A PRIMARY KEY, UNIQUE or FOREIGN KEY constraint of PostgreSQL's.
#[derive(sqlx::FromRow)]
struct PgConstraint {
    table_name: String,
    /// `p`, `u` or `f`.
    kind: String,
    columns: Vec<String>,
    target: Option<String>,
    target_columns: Vec<String>,
    /// `confdeltype`: `a` NO ACTION, `r` RESTRICT, `c` CASCADE, `n` SET NULL, `d` SET DEFAULT.
    on_delete: String,
}

/// An index of PostgreSQL's that no constraint owns.
#[derive(sqlx::FromRow)]
struct PgIndex {
    table_name: String,
    index_name: String,
    is_unique: bool,
    method: String,
    keys: Vec<String>,
    descending: Vec<bool>,
    predicate: Option<String>,
}

fn insert_foreign_key(
    facts: &mut BTreeMap<String, Fact>,
    from: &[String],
    target: &str,
    to: &[String],
    on_delete: &str,
) {
    let mut what = format!("foreign key ({})", from.join(", "));
    while facts.contains_key(&what) {
        what.push('\'');
    }
    facts.insert(what, Fact::same(format!("REFERENCES {target} ({}) ON DELETE {on_delete}", to.join(", "))));
}

/// The shape of a migrated PostgreSQL store (its connection's `current_schema()`).
pub(super) async fn pg_shape(pool: &PgPool) -> Shape {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .expect("PostgreSQL tables");
    let mut shape: Shape = tables.into_iter().map(|t| (t, BTreeMap::new())).collect();

    let columns: Vec<(String, String, String, bool)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, \
                CASE WHEN data_type IN ('USER-DEFINED', 'ARRAY') THEN udt_name::text ELSE data_type::text END, \
                is_nullable::text = 'NO' \
         FROM information_schema.columns WHERE table_schema = current_schema()",
    )
    .fetch_all(pool)
    .await
    .expect("information_schema.columns");
    for (table, name, pg_type, not_null) in columns {
        let Some(facts) = shape.get_mut(&table) else { continue };
        facts.insert(
            format!("column {name}"),
            Fact {
                shown: format!("{pg_type}{}", nullability(not_null)),
                canonical: format!("{}{}", pg_type_in_sqlite_terms(&pg_type), nullability(not_null)),
                column_type: Some(pg_type),
            },
        );
    }

    let constraints: Vec<PgConstraint> = sqlx::query_as(
        "SELECT cl.relname::text AS table_name, con.contype::text AS kind, \
                ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(att, i) \
                      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.att ORDER BY k.i) AS columns, \
                rc.relname::text AS target, \
                ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY AS k(att, i) \
                      JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.att ORDER BY k.i) \
                    AS target_columns, \
                con.confdeltype::text AS on_delete \
         FROM pg_constraint con \
         JOIN pg_class cl ON cl.oid = con.conrelid \
         JOIN pg_namespace n ON n.oid = cl.relnamespace \
         LEFT JOIN pg_class rc ON rc.oid = con.confrelid \
         WHERE n.nspname = current_schema() AND con.contype IN ('p', 'u', 'f')",
    )
    .fetch_all(pool)
    .await
    .expect("pg_constraint");
    for PgConstraint { table_name, kind, columns, target, target_columns, on_delete } in constraints {
        let Some(facts) = shape.get_mut(&table_name) else { continue };
        match kind.as_str() {
            "p" => {
                facts.insert("primary key".to_owned(), Fact::same(format!("({})", columns.join(", "))));
            }
            "u" => {
                facts.insert(format!("unique ({})", columns.join(", ")), Fact::same("UNIQUE constraint".to_owned()));
            }
            _ => {
                let on_delete = match on_delete.as_str() {
                    "a" => "NO ACTION",
                    "r" => "RESTRICT",
                    "c" => "CASCADE",
                    "n" => "SET NULL",
                    "d" => "SET DEFAULT",
                    other => other,
                };
                let target = target.unwrap_or_default();
                insert_foreign_key(facts, &columns, &target, &target_columns, on_delete);
            }
        }
    }

    // Indexes other than those of PRIMARY KEY, UNIQUE and EXCLUDE constraints.
    let indexes: Vec<PgIndex> = sqlx::query_as(
        "SELECT c.relname::text AS table_name, i.relname::text AS index_name, x.indisunique AS is_unique, \
                am.amname::text AS method, \
                ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true) \
                      FROM generate_series(1, x.indnkeyatts) AS k ORDER BY k) AS keys, \
                ARRAY(SELECT x.indoption[k - 1] & 1 = 1 \
                      FROM generate_series(1, x.indnkeyatts) AS k ORDER BY k) AS descending, \
                pg_get_expr(x.indpred, x.indrelid, true) AS predicate \
         FROM pg_index x \
         JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_class c ON c.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_am am ON am.oid = i.relam \
         WHERE n.nspname = current_schema() \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = x.indexrelid \
                           AND con.conrelid = x.indrelid AND con.contype IN ('p', 'u', 'x'))",
    )
    .fetch_all(pool)
    .await
    .expect("pg_index");
    for PgIndex { table_name, index_name, is_unique, method, keys, descending, predicate } in indexes {
        let Some(facts) = shape.get_mut(&table_name) else { continue };
        let keys: Vec<(String, bool)> = keys.into_iter().zip(descending).collect();
        facts.insert(format!("index {index_name}"), index_fact(is_unique, &method, &keys, predicate.as_deref()));
    }
    shape
}
