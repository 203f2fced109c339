//! Migrations: idempotent, and a failing one leaves no partial schema.

use careport_store::Backend;
use careport_tests::TestDb;

#[actix_web::test]
async fn migrating_twice_changes_nothing_and_every_migration_is_applied() {
    let tdb = TestDb::new().await;
    let db = tdb.connect().await;
    db.migrate().await.expect("second run");
    let status = db.migration_status().await.expect("status");
    assert!(status.len() >= 2);
    assert!(status.iter().all(|(_, _, applied)| *applied), "{status:?}");
}

#[actix_web::test]
async fn a_failing_migration_leaves_no_partial_schema() {
    use sqlx::migrate::Migrator;
    let tdb = TestDb::new().await;
    let db = tdb.connect().await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("1_good.sql"), "CREATE TABLE mig_good (id INTEGER);").expect("write");
    std::fs::write(
        dir.path().join("2_bad.sql"),
        "CREATE TABLE mig_partial (id INTEGER);\nINSERT INTO mig_good (no_such_column) VALUES (1);",
    )
    .expect("write");
    let mut migrator = Migrator::new(dir.path()).await.expect("migrator");
    // The careport migrations are already recorded in this store; these are extra.
    migrator.set_ignore_missing(true);
    let failed = match &db {
        careport_store::Db::Sqlite { write, .. } => migrator.run(write).await,
        careport_store::Db::Postgres(pool) => migrator.run(pool).await,
    };
    assert!(failed.is_err(), "the second migration must fail");
    let table_exists = |name: &'static str| {
        let db = db.clone();
        async move {
            let sql = match db.backend() {
                Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
                Backend::Postgres => {
                    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
                }
            };
            let n: i64 = match &db {
                careport_store::Db::Sqlite { read, .. } => {
                    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.replace("$1", "?1"))).bind(name).fetch_one(read).await
                }
                careport_store::Db::Postgres(p) => sqlx::query_scalar(sql).bind(name).fetch_one(p).await,
            }
            .expect("count");
            n > 0
        }
    };
    assert!(table_exists("mig_good").await, "the first migration stays applied");
    assert!(!table_exists("mig_partial").await, "the failed migration was rolled back whole");
}

/// Two processes' handles on one store (a CLI command beside a running server, a test beside
/// its app): read-then-write transactions on both at once all commit. On SQLite a deferred
/// transaction that read first could not wait for the other writer and failed with "database
/// is locked"; write transactions now take the lock when they begin.
#[actix_web::test]
async fn write_transactions_from_two_handles_on_one_store_all_commit() {
    use careport_store::assignments;
    let tdb = TestDb::new().await;
    let (a, b) = (tdb.connect().await, tdb.connect().await);
    let mut ids = Vec::new();
    for i in 0..12 {
        let email = careport_domain::Email::parse(&format!("c{i}-{}@example.org", uuid::Uuid::new_v4().simple()))
            .expect("email");
        let id = careport_actors::accounts::create_account(
            &a,
            &careport_actors::identity::Argon2Config { memory_kib: 8, iterations: 1, parallelism: 1 },
            careport_actors::accounts::NewAccount {
                email,
                password: "violet-otter-harbour-42".into(),
                full_name: None,
                role: careport_domain::Role::Patient,
                staff_role: None,
                department: None,
                preferred_language: None,
                email_verified: true,
                link_record: false,
            },
        )
        .await
        .expect("account");
        ids.push(id);
    }
    let clinician = ids[0];
    let runs = ids[1..].iter().enumerate().map(|(i, &patient)| {
        let db = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move { assignments::assign(&db, clinician, patient, None, None).await }
    });
    for result in futures_util::future::join_all(runs).await {
        result.expect("every assignment commits");
    }
}
