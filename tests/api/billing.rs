//! Billing (#18) over HTTP: items in minor units with exact tax, totals per status with overdue
//! computed from the due date, paying and cancelling as transitions, monthly revenue; who may.

use serde_json::{Value, json};

use crate::records::chart;

#[actix_web::test]
async fn bills_total_per_status_overdue_is_computed_and_revenue_is_by_month() {
    let c = chart().await;
    let p = c.patient_id;
    let path = format!("/api/v1/patients/{p}/billing");
    let today = jiff::Zoned::now().date();
    let (yesterday, next_month) =
        (today.yesterday().expect("date"), today.checked_add(jiff::Span::new().days(30)).expect("date"));
    let item = |code: &str, q: i64, price: i64, tax: Option<&str>, due: jiff::civil::Date| {
        let mut b = json!({"service_code": code, "description": "Consultation", "quantity": q, "unit_price": price, "due_date": due.to_string()});
        if let Some(t) = tax {
            b["tax_rate"] = json!(t);
        }
        b
    };
    // Bad input changes nothing; only administrators bill.
    for bad in [
        json!({"service_code": "X", "description": "d", "quantity": 1, "unit_price": 1.5, "due_date": "2026-01-01"}),
        item("X", 0, 100, None, today),
        item("X", 1, -1, None, today),
        item("X", 1, 100, Some("12.345"), today),
        json!({"service_code": "X", "description": "d", "quantity": 1, "unit_price": 100, "due_date": "tomorrow"}),
        json!({"service_code": "X", "description": "d", "quantity": 1, "unit_price": 100, "due_date": "2026-01-01", "status": "paid"}),
    ] {
        let (s, v) = c.send("POST", &path, &c.admin, Some(bad.clone())).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    for who in [&c.doctor, &c.nurse] {
        let (s, _) = c.send("POST", &path, who, Some(item("X", 1, 100, None, today))).await;
        assert_eq!(s, 404, "clinicians have no part in billing");
    }
    let (s, _) = c.send("POST", &path, &c.patient, Some(item("X", 1, 100, None, today))).await;
    assert_eq!(s, 404);

    // 3 × 3.33 + 20 % = 9.99 + 2.00 (1.998, half up) = 11.99.
    let (s, a) = c.send("POST", &path, &c.admin, Some(item("CONS", 3, 333, Some("20"), next_month))).await;
    assert_eq!(
        (s, a["subtotal"].as_i64(), a["tax"].as_i64(), a["total"].as_i64()),
        (201, Some(999), Some(200), Some(1199)),
        "{a}"
    );
    assert_eq!(a["currency"].as_str(), Some("EUR"));
    let (_, b) = c.send("POST", &path, &c.admin, Some(item("LAB", 1, 4_550, None, yesterday))).await;
    let (_, d) = c.send("POST", &path, &c.admin, Some(json!({"service_code": "CT", "description": "CT chest", "quantity": 1, "unit_price": 25_000, "tax_rate": "5.5", "due_date": next_month.to_string(), "status": "pending"}))).await;
    assert_eq!(d["total"].as_i64(), Some(26_375));
    let (_, e) = c.send("POST", &path, &c.admin, Some(item("MISC", 2, 1_000, None, next_month))).await;
    assert_eq!(b["status"].as_str(), Some("overdue"), "unpaid past its due date");

    // Paying and cancelling are transitions, once.
    let pay = |v: &Value| format!("/api/v1/billing/{}/pay", v["id"].as_str().expect("id"));
    let cancel = |v: &Value| format!("/api/v1/billing/{}/cancel", v["id"].as_str().expect("id"));
    let (s, paid) = c.send("POST", &pay(&a), &c.admin, None).await;
    assert_eq!((s, paid["status"].as_str()), (200, Some("paid")), "{paid}");
    assert!(paid["paid_at"].is_string() && paid["paid_by"].is_string());
    let (s, v) = c.send("POST", &pay(&a), &c.admin, None).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("bill_closed")));
    let (s, v) = c.send("POST", &cancel(&e), &c.admin, None).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("cancelled")));
    let (s, v) = c.send("POST", &pay(&e), &c.admin, None).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("bill_closed")), "a cancelled item is not paid");
    let (s, _) = c.send("POST", &pay(&b), &c.patient, None).await;
    assert_eq!(s, 404, "a patient does not mark their own bill paid");

    // The patient reads their own account; another patient does not.
    let (s, acct) = c.send("GET", &path, &c.patient, None).await;
    assert_eq!(s, 200, "{acct}");
    assert_eq!(
        acct["totals"],
        json!({"unpaid": 0, "pending": 26_375, "paid": 1_199, "overdue": 4_550, "cancelled": 2_000})
    );
    assert_eq!(acct["items"].as_array().map(Vec::len), Some(4));
    let (s, _) = c.send("GET", &path, &c.other_patient, None).await;
    assert_eq!(s, 404);
    let (s, _) = c.send("GET", &path, &c.doctor, None).await;
    assert_eq!(s, 404);

    // The figures: this month's revenue is the paid item; outstanding and overdue as of now.
    let (s, stats) = c.send("GET", "/api/v1/admin/billing/stats", &c.admin, None).await;
    assert_eq!(s, 200, "{stats}");
    let months = stats["revenue_by_month"].as_array().expect("months");
    assert_eq!(months.len(), 12);
    let this = months.last().expect("this month");
    assert_eq!(
        (this["month"].as_str(), this["paid"].as_i64(), this["items"].as_i64()),
        (Some(format!("{:04}-{:02}", today.year(), today.month()).as_str()), Some(1_199), Some(1)),
        "{stats}"
    );
    assert_eq!((stats["outstanding"].as_i64(), stats["overdue"].as_i64()), (Some(26_375 + 4_550), Some(4_550)));
    let (s, v) = c.send("GET", "/api/v1/admin/billing/stats?from=2026-13-01", &c.admin, None).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_query")));
    let (s, _) = c.send("GET", "/api/v1/admin/billing/stats", &c.doctor, None).await;
    assert_eq!(s, 403);

    // The front desk's list across patients: by status as shown, newest first, paged.
    let listed = |v: &Value| -> Vec<String> {
        v["items"].as_array().expect("items").iter().map(|b| b["status"].as_str().expect("status").to_owned()).collect()
    };
    let (s, all) = c.send("GET", "/api/v1/admin/billing?limit=2", &c.admin, None).await;
    assert_eq!((s, listed(&all).len()), (200, 2), "{all}");
    let cursor = all["next_cursor"].as_str().expect("a second page");
    let (_, rest) = c.send("GET", &format!("/api/v1/admin/billing?limit=2&cursor={cursor}"), &c.admin, None).await;
    assert_eq!(listed(&rest).len(), 2, "{rest}");
    let (_, overdue) = c.send("GET", "/api/v1/admin/billing?status=overdue", &c.admin, None).await;
    assert_eq!(listed(&overdue), ["overdue"], "{overdue}");
    assert_eq!(overdue["items"][0]["total"], 4_550);
    let (_, pending) = c.send("GET", "/api/v1/admin/billing?status=pending", &c.admin, None).await;
    assert!(listed(&pending).iter().all(|s| s == "pending") && !listed(&pending).is_empty(), "{pending}");
    let (s, v) = c.send("GET", "/api/v1/admin/billing?status=late", &c.admin, None).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_query")));
    for who in [&c.doctor, &c.patient] {
        let (s, _) = c.send("GET", "/api/v1/admin/billing", who, None).await;
        assert_eq!(s, 403, "the clinic's bills are the office's");
    }
}
