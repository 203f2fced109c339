//! The upload path's multipart parser under generated input: a valid body cut short, with bytes
//! flipped or inserted, with a wrong boundary, or nothing but random bytes. Every answer is a
//! record (201) or a clear 4xx with a code — never a 5xx — and a refused upload leaves nothing
//! behind: the chart lists exactly the accepted ones and the storage holds exactly their objects.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use super::chart;

/// A well-formed upload: the fields, then the file (unique content per case: duplicates within
/// a chart are refused on their own terms).
fn valid_body(case: usize) -> Vec<u8> {
    format!(
        "--B\r\nContent-Disposition: form-data; name=\"record_type\"\r\n\r\nlaboratory-results\r\n\
         --B\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nGenerated {case}\r\n\
         --B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"case-{case}.txt\"\r\n\
         Content-Type: text/plain\r\n\r\nHaemoglobin 13.{case} g/dL, case {case}\r\n--B--\r\n"
    )
    .into_bytes()
}

/// How a generated body is made from the valid one.
#[derive(Debug, Clone)]
enum Mutation {
    Keep,
    Truncate(usize),
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Random(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = (Mutation, bool)> {
    let m = prop_oneof![
        Just(Mutation::Keep),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..64)).prop_map(|(i, v)| Mutation::Insert(i, v)),
        proptest::collection::vec(any::<u8>(), 0..512).prop_map(Mutation::Random),
    ];
    // And whether the content type names the right boundary.
    (m, proptest::bool::weighted(0.85))
}

fn apply(m: &Mutation, mut body: Vec<u8>) -> Vec<u8> {
    match m {
        Mutation::Keep => body,
        Mutation::Truncate(i) => {
            body.truncate(i % (body.len() + 1));
            body
        }
        Mutation::Flip(i, b) => {
            let i = i % body.len();
            body[i] ^= b | 1;
            body
        }
        Mutation::Insert(i, v) => {
            let i = i % (body.len() + 1);
            body.splice(i..i, v.iter().copied());
            body
        }
        Mutation::Random(v) => v.clone(),
    }
}

#[actix_web::test]
async fn generated_multipart_bodies_are_a_record_or_a_clear_4xx_and_refusals_leave_nothing() {
    let c = chart().await;
    let url = c.app.url(&format!("/api/v1/patients/{}/records", c.patient_id));
    let mut runner = TestRunner::deterministic();
    let strategy = mutation();
    let before = c.storage().await.list().await.expect("objects").len();
    let mut accepted = 0usize;
    let mut refused = std::collections::BTreeMap::<String, usize>::new();
    for case in 0..150 {
        let (m, right_boundary) = strategy.new_tree(&mut runner).expect("case").current();
        let body = apply(&m, valid_body(case));
        let content_type =
            if right_boundary { "multipart/form-data; boundary=B" } else { "multipart/form-data; boundary=X" };
        let res = c
            .app
            .client
            .post(&url)
            .bearer_auth(&c.doctor)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        let answer: serde_json::Value = res.json().await.unwrap_or(serde_json::Value::Null);
        assert!(status < 500, "case {case} ({m:?}): {status} {answer}");
        if status == 201 {
            accepted += 1;
        } else {
            let code =
                answer["code"].as_str().unwrap_or_else(|| panic!("case {case} ({m:?}): {status} without a code"));
            assert!((400..500).contains(&status), "case {case}: {status} {answer}");
            *refused.entry(code.to_owned()).or_default() += 1;
        }
    }
    // The unmutated cases at least were accepted, and most mutations refused.
    assert!(accepted > 0 && !refused.is_empty(), "accepted {accepted}, refused {refused:?}");
    let (s, list) =
        c.send("GET", &format!("/api/v1/patients/{}/records?limit=200", c.patient_id), &c.doctor, None).await;
    assert_eq!(s, 200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(accepted), "refused: {refused:?}");
    let objects = c.storage().await.list().await.expect("objects").len();
    assert_eq!(objects - before, accepted, "one object per accepted upload, none for a refused one");
}
