//! Account creation, as `careport user create`, administrators and invitations do it.

use careport_actors::accounts::{self, Argon2Config, NewAccount};
use careport_domain::{Code, Email, Role};
use careport_store::users;
use careport_tests::TestDb;

fn cheap() -> Argon2Config {
    Argon2Config { memory_kib: 1024, iterations: 1, parallelism: 1 }
}

fn request(email: &str, password: &str) -> NewAccount {
    NewAccount {
        email: Email::parse(email).expect("email"),
        role: Role::Admin,
        password: password.to_owned(),
        full_name: Some("Ada Admin".into()),
        staff_role: None,
        department: None,
        preferred_language: None,
        email_verified: true,
        link_record: false,
    }
}

#[actix_web::test]
async fn an_account_is_stored_with_an_argon2id_hash_never_the_password() {
    let tdb = TestDb::new().await;
    let db = tdb.connect().await;
    let id = accounts::create_account(&db, &cheap(), request("Ada@Example.org", "correct horse battery"))
        .await
        .expect("create");
    let row =
        users::find_by_email(&db, &Email::parse("ada@example.org").expect("email")).await.expect("find").expect("row");
    assert_eq!(row.id, id);
    assert_eq!(row.role, "admin");
    assert!(row.email_verified_at.is_some());
    let hash: String = match &db {
        careport_store::Db::Sqlite { read, .. } => {
            sqlx::query_scalar("SELECT password_hash FROM users").fetch_one(read).await
        }
        careport_store::Db::Postgres(p) => sqlx::query_scalar("SELECT password_hash FROM users").fetch_one(p).await,
    }
    .expect("hash");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("correct horse"));
}

#[actix_web::test]
async fn a_second_account_with_the_same_email_is_refused() {
    let tdb = TestDb::new().await;
    let db = tdb.connect().await;
    accounts::create_account(&db, &cheap(), request("ada@example.org", "correct horse battery")).await.expect("first");
    let err = accounts::create_account(&db, &cheap(), request("ADA@example.org", "another long password"))
        .await
        .expect_err("dup");
    assert_eq!(err.code(), Code::EmailTaken);
    assert_eq!(users::count_by_role(&db).await.expect("count"), vec![("admin".to_owned(), 1)]);
}

#[actix_web::test]
async fn a_short_password_is_refused_and_nothing_is_stored() {
    let tdb = TestDb::new().await;
    let db = tdb.connect().await;
    let err = accounts::create_account(&db, &cheap(), request("ada@example.org", "short")).await.expect_err("short");
    assert_eq!(err.code(), Code::PasswordTooShort);
    assert!(err.message().contains("12"), "{}", err.message());
    assert!(users::count_by_role(&db).await.expect("count").is_empty());
}

#[actix_web::test]
async fn a_clinician_needs_a_staff_role_and_only_clinicians_have_one() {
    let tdb = TestDb::new().await;
    let db = tdb.connect().await;
    let mut req = request("nina@example.org", "correct horse battery");
    req.role = Role::Clinician;
    let err = accounts::create_account(&db, &cheap(), req).await.expect_err("no staff role");
    assert_eq!(err.code(), Code::InvalidValue);
    let mut req = request("pat@example.org", "correct horse battery");
    req.role = Role::Patient;
    req.staff_role = Some(careport_policy::StaffRole::Doctor);
    let err = accounts::create_account(&db, &cheap(), req).await.expect_err("patient with staff role");
    assert_eq!(err.code(), Code::InvalidValue);
    assert!(users::count_by_role(&db).await.expect("count").is_empty());
}
