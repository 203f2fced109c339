//! Loading policy files: order, syntax errors naming file and line, the limits' config form.

mod common;

use std::time::Duration;

use careport_policy::{Policies, PolicyError, PolicyLimits};

#[test]
fn the_shipped_policy_files_load_in_file_name_order() {
    let p = common::policies();
    let mut sorted = p.files().to_vec();
    sorted.sort();
    assert_eq!(p.files(), sorted.as_slice());
    assert!(p.files().iter().any(|f| f == "patients.datalog"));
}

#[test]
fn a_syntax_error_on_line_3_names_the_file_and_line_3() {
    let source = "// a comment\nallow if role(\"admin\");\nallow if role(\"clinician\" resource($k, $i);\n";
    let err = Policies::from_sources(vec![("broken.datalog".into(), source.into())]).expect_err("must fail");
    let PolicyError::Syntax { ref file, line, .. } = err else { panic!("expected a syntax error, got {err:?}") };
    assert_eq!(file, "broken.datalog");
    assert_eq!(line, 3);
    let msg = err.to_string();
    assert!(msg.contains("broken.datalog") && msg.contains("line 3"), "{msg}");
}

#[test]
fn load_dir_reports_a_broken_file_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a.datalog"), "allow if role(\"admin\");\n").expect("write");
    std::fs::write(dir.path().join("b.datalog"), "\n\nallow if ;\n").expect("write");
    std::fs::write(dir.path().join("notes.txt"), "not datalog").expect("write");
    let msg = Policies::load_dir(dir.path()).expect_err("must fail").to_string();
    assert!(msg.contains("b.datalog") && msg.contains("line 3"), "{msg}");
}

#[test]
fn an_empty_policy_directory_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(Policies::load_dir(dir.path()).is_err());
}

#[test]
fn limits_deserialize_from_config_and_refuse_unknown_keys() {
    let l: PolicyLimits = toml::from_str("max_facts = 20000\nmax_time_ms = 10").expect("parse");
    assert_eq!(l, PolicyLimits { max_facts: 20_000, max_iterations: 100, max_time: Duration::from_millis(10) });
    assert!(toml::from_str::<PolicyLimits>("max_fact = 1").is_err());
    assert_eq!(common::policies().with_limits(l).limits(), l);
}

#[test]
fn a_run_limit_is_an_error_not_a_decision() {
    // Limits apply when rules derive facts: this rule derives one more than the limit allows.
    let rule = "seen($k, $i) <- resource($k, $i);\nallow if role(\"admin\");\n";
    let p = Policies::from_sources(vec![("a.datalog".into(), rule.into())]).expect("load").with_limits(PolicyLimits {
        max_facts: 2,
        max_iterations: 100,
        max_time: Duration::from_millis(5),
    });
    let r = common::ring();
    let t = common::token(&r, &common::admin());
    let req = careport_policy::Request {
        operation: "read",
        resource: careport_policy::Resource { kind: "patient", id: "x" },
        now: std::time::SystemTime::now(),
        facts: &[],
    };
    assert!(matches!(p.authorize(&t, &req), Err(PolicyError::RunLimit(_))));
}
