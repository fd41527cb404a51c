//! Redaction against what a careless client sends in arguments.

use super::*;
use serde_json::json;

fn redacted(args: Value, keys: &[&str]) -> Value {
    let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    let mode = Arguments::from_policy(switchyard_proto::policy::v1::ArgumentAudit::Redacted, &keys);
    let text = mode
        .record(Some(&args))
        .redacted
        .expect("redacted arguments");
    serde_json::from_str(&text).expect("JSON")
}

#[test]
fn sensitive_keys_are_masked_wherever_they_are_nested() {
    let out = redacted(
        json!({
            "query": "select 1",
            "config": [{"DB-Password": "hunter2", "host": "db"}],
            "headers": {"Authorization": "anything", "X_Api_Key": "k"},
            "customerRef": "C-1",
            "session_id": "s",
        }),
        &["customer_ref"],
    );
    assert_eq!(out["query"], "select 1");
    assert_eq!(out["config"][0]["DB-Password"], MASK);
    assert_eq!(out["config"][0]["host"], "db");
    assert_eq!(out["headers"]["Authorization"], MASK);
    assert_eq!(out["headers"]["X_Api_Key"], MASK);
    assert_eq!(
        out["customerRef"], MASK,
        "the tenant's own key, in another spelling"
    );
    assert_eq!(out["session_id"], MASK);
}

#[test]
fn secrets_and_personal_data_in_free_text_are_masked() {
    let out = redacted(
        json!({
            "note": "mail jane.doe@example.co.uk, card 4111 1111 1111 1111",
            "curl": "curl -H 'Authorization: Bearer abc.def-123' https://x",
            "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
            "keys": ["ghp_abcdefghijklmnopqrstuvwxyz0123", "AKIAABCDEFGHIJKLMNOP", "sy_abcdefghijkl_0123456789abcdef", "sk-proj-abcdefghijklmnop1234"],
            "count": 4_111_111_111_111_111u64,
        }),
        &[],
    );
    let note = out["note"].as_str().unwrap();
    assert!(!note.contains("jane.doe"), "{note}");
    assert!(
        note.contains("[email]") && note.contains("[card]"),
        "{note}"
    );
    assert!(
        !out["curl"].as_str().unwrap().contains("abc.def-123"),
        "{out}"
    );
    assert_eq!(out["jwt"], "[token]");
    for key in out["keys"].as_array().unwrap() {
        assert_eq!(key, "[api key]", "{out}");
    }
    assert_eq!(
        out["count"], 4_111_111_111_111_111u64,
        "numbers are not text"
    );
}

#[test]
fn a_number_that_fails_the_card_check_is_kept() {
    let out = redacted(json!({"order": "order 4111 1111 1111 1112 shipped"}), &[]);
    assert_eq!(out["order"], "order 4111 1111 1111 1112 shipped");
}

#[test]
fn digests_ignore_key_order_and_tell_values_apart() {
    let a = digest(&json!({"a": 1, "b": [true, "x"]}));
    let b = digest(&json!({"b": [true, "x"], "a": 1}));
    let c = digest(&json!({"a": 2, "b": [true, "x"]}));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.starts_with("sha256:") && a.len() == 7 + 64, "{a}");
    let recorded = Arguments::Digest.record(None);
    assert_eq!(recorded.digest, Some(digest(&json!({}))));
    assert_eq!(
        Arguments::None.record(Some(&json!({"a": 1}))),
        Recorded::default()
    );
}

#[test]
fn large_arguments_are_cut_and_huge_ones_only_digested() {
    let mode = Arguments::Redacted(Vec::new());
    let large = json!({"text": "x".repeat(10_000)});
    let text = mode.record(Some(&large)).redacted.unwrap();
    assert!(
        text.len() <= MAX_RECORDED + "…[cut]".len(),
        "{}",
        text.len()
    );
    assert!(text.ends_with("…[cut]"));
    let huge = json!({"text": "é".repeat(40_000)});
    let recorded = mode.record(Some(&huge));
    assert_eq!(recorded.redacted, None);
    assert_eq!(recorded.digest, Some(digest(&huge)));
}
