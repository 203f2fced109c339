//! Statistics, each role's dashboard, and the cache never serving a stale read.

use careport_domain::Role;
use serde_json::{Value, json};

use super::{at, next_monday, paris, send, token, unique};

#[actix_web::test]
async fn statistics_and_each_roles_dashboard() {
    let (app, c, tz) = paris(1).await;
    let monday = next_monday(&tz);
    let email = unique("dash");
    let pid = app.create_user(&email, Role::Patient, None, None).await;
    let patient = token(&app, &email).await;
    send(
        &app,
        "POST",
        &format!("/api/v1/patients/{pid}/assignments"),
        &c.admin,
        Some(json!({"clinician_id": c.doctor_id, "cancer_type_id": "uterine-leiomyosarcoma-ulms"})),
    )
    .await;
    let (s, _) = send(
        &app,
        "POST",
        &format!("/api/v1/patients/{pid}/appointments"),
        &patient,
        Some(json!({"clinician_id": c.doctor_id, "starts_at": at(&tz, monday, 11, 0)})),
    )
    .await;
    assert_eq!(s, 201);

    let (s, stats) = send(&app, "GET", "/api/v1/admin/stats", &c.admin, None).await;
    assert_eq!(s, 200, "{stats}");
    assert_eq!(stats["users_by_role"]["clinician"], 3);
    assert_eq!(stats["appointments_by_status"]["scheduled"], 1);
    let by_type = stats["patients_by_cancer_type"].as_array().expect("types");
    assert!(
        by_type.iter().any(|t| t["cancer_type_id"] == "uterine-leiomyosarcoma-ulms" && t["patients"] == 1),
        "{stats}"
    );
    let weeks = stats["appointments_by_week"].as_array().expect("weeks");
    assert_eq!(weeks.iter().map(|w| w["by_status"]["scheduled"].as_i64().unwrap_or(0)).sum::<i64>(), 1);
    let (s, _) = send(&app, "GET", "/api/v1/admin/stats", &c.doctor, None).await;
    assert_eq!(s, 403);

    let (_, d) = send(&app, "GET", "/api/v1/dashboard", &patient, None).await;
    assert_eq!(d["role"], "patient");
    assert_eq!(d["next_appointment"]["starts_at"], at(&tz, monday, 11, 0));
    assert_eq!(d["care_team"][0]["clinician_id"], c.doctor_id.to_string());
    let (_, d) = send(&app, "GET", "/api/v1/dashboard", &c.doctor, None).await;
    assert_eq!((d["role"].as_str(), d["patients"].as_i64()), (Some("clinician"), Some(1)), "{d}");
    assert_eq!(
        d["upcoming"].as_array().map(Vec::len).unwrap_or(0) + d["today"].as_array().map(Vec::len).unwrap_or(0),
        1
    );
    let (_, d) = send(&app, "GET", "/api/v1/dashboard", &c.admin, None).await;
    assert_eq!(d["stats"]["appointments_by_status"]["scheduled"], 1);
}

#[actix_web::test]
async fn cached_reads_are_never_stale_after_a_write() {
    let (app, c, tz) = paris(1).await;
    let monday = next_monday(&tz);
    let slots = format!(
        "/api/v1/clinicians/{}/slots?from={}&to={}",
        c.doctor_id,
        at(&tz, monday, 0, 0),
        at(&tz, monday.tomorrow().expect("d"), 0, 0)
    );
    let count = |v: &Value| v["items"].as_array().map(Vec::len).unwrap_or(0);
    // Read twice (the second from the cache when Redis is on), write, read again.
    for _ in 0..2 {
        let (_, v) = send(&app, "GET", &slots, &c.nurse, None).await;
        assert_eq!(count(&v), 6);
    }
    let (s, _) = send(
        &app,
        "PUT",
        &format!("/api/v1/clinicians/{}/hours", c.doctor_id),
        &c.doctor,
        Some(json!({"hours": [{"weekday": 1, "start_minute": 540, "end_minute": 600}]})),
    )
    .await;
    assert_eq!(s, 200);
    let (_, v) = send(&app, "GET", &slots, &c.nurse, None).await;
    assert_eq!(count(&v), 2, "new hours at once: {v}");
    for _ in 0..2 {
        let (_, v) = send(&app, "GET", &format!("/api/v1/clinicians/{}", c.doctor_id), &c.nurse, None).await;
        assert_eq!(v["slot_minutes"], 30);
    }
    send(&app, "PATCH", &format!("/api/v1/clinicians/{}", c.doctor_id), &c.doctor, Some(json!({"slot_minutes": 20})))
        .await;
    let (_, v) = send(&app, "GET", &format!("/api/v1/clinicians/{}", c.doctor_id), &c.nurse, None).await;
    assert_eq!(v["slot_minutes"], 20);
    let (_, v) = send(&app, "GET", &slots, &c.nurse, None).await;
    assert_eq!(count(&v), 3, "20-minute slots from 09:00 to 10:00");

    let (_, tree) = send(&app, "GET", "/api/v1/cancer-types", &c.nurse, None).await;
    assert!(tree.to_string().contains("Uterine"));
    let (s, _) =
        send(&app, "PATCH", "/api/v1/admin/cancer-types/uterine", &c.admin, Some(json!({"name": "Uterine cancers"})))
            .await;
    assert_eq!(s, 200);
    let (_, tree) = send(&app, "GET", "/api/v1/cancer-types", &c.nurse, None).await;
    assert!(tree.to_string().contains("Uterine cancers"), "renamed at once");

    // With Redis, the reads above went through the cache.
    if let Some(url) = careport_tests::redis_url() {
        let client = redis::Client::open(url).expect("redis");
        let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
        let pattern = format!("{}cache:*", app.settings.redis.prefix);
        let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(&mut conn).await.expect("keys");
        assert!(keys.iter().any(|k| k.contains(":cancer_types:active")), "{keys:?}");
        assert!(keys.iter().any(|k| k.ends_with(":hours")), "{keys:?}");
    }
}
