//! `switchyard audit export` and `audit verify --file` as an auditor runs them: the JSON
//! export checks offline against the published key, and each way of tampering with the file
//! (an edited record, a removed one, a forged checkpoint, the wrong key) is named; the CSV
//! export has a row per record; the export is itself on the audit trail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{cli, json};
use std::process::Output;
use switchyard_tests::admin::{Quotas, UpdateTenantRequest};
use switchyard_tests::{Stack, assert_eventually};

async fn update(stack: &Stack, burst: u32) {
    stack
        .cp
        .tenants()
        .update_tenant(UpdateTenantRequest {
            slug: "acme".into(),
            quotas: Some(Quotas {
                burst: Some(burst),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// `audit verify --file FILE --public-key KEY...`.
fn verify_file(stack: &Stack, file: &std::path::Path, keys: &[&str]) -> Output {
    let mut args = vec!["audit", "verify", "-o", "json", "--file"];
    args.push(file.to_str().unwrap());
    for key in keys {
        args.extend(["--public-key", key]);
    }
    cli(stack, &args)
}

fn failure(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A tenant with a few changes, at least one of them under a signed checkpoint.
async fn signed_chain() -> Stack {
    let stack = Stack::builder().without_nats().start().await;
    stack.cp.create_tenant("acme").await;
    for burst in [11, 12, 13] {
        update(&stack, burst).await;
    }
    assert_eventually!(
        !stack
            .cp
            .store
            .audit_checkpoints("acme", 1, i64::MAX)
            .await
            .unwrap()
            .is_empty(),
        std::time::Duration::from_secs(20),
        "a checkpoint of acme's chain"
    );
    update(&stack, 14).await;
    stack
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_export_verifies_offline_and_each_tampering_is_named() {
    let stack = signed_chain().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acme.jsonl");
    let exported = cli(
        &stack,
        &["audit", "export", "--tenant", "acme", "-o", "json", "--out"]
            .into_iter()
            .chain([file.to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    assert!(exported.status.success(), "{exported:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<&serde_json::Value> = lines.iter().filter_map(|l| l.get("event")).collect();
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "oldest first"
    );
    for (i, line) in lines.iter().enumerate() {
        if let Some(cp) = line.get("checkpoint") {
            assert_eq!(
                lines[i - 1]["event"]["seq"],
                cp["seq"],
                "a checkpoint follows the record it signs"
            );
        }
    }

    let key = json(&cli(&stack, &["audit", "signing-key", "-o", "json"]));
    let key = key["public_key"].as_str().unwrap().to_owned();
    let checked = json(&verify_file(&stack, &file, &[&key]));
    assert_eq!(checked["intact"], true, "{checked}");
    assert_eq!(checked["records"], events.len());
    assert!(checked["checkpoints"].as_u64().unwrap() >= 1, "{checked}");

    // A record edited in the file.
    let edited = dir.path().join("edited.jsonl");
    std::fs::write(&edited, text.replacen("quotas.burst", "quotas.bust", 1)).unwrap();
    let stderr = failure(&verify_file(&stack, &edited, &[&key]));
    assert!(stderr.contains("(edited)"), "{stderr}");

    // A record removed from the file.
    let mut kept: Vec<&str> = text.lines().collect();
    let second = kept.iter().position(|l| l.contains("\"seq\":2,")).unwrap();
    kept.remove(second);
    let removed = dir.path().join("removed.jsonl");
    std::fs::write(&removed, kept.join("\n")).unwrap();
    let stderr = failure(&verify_file(&stack, &removed, &[&key]));
    assert!(stderr.contains("record 2: missing"), "{stderr}");

    // A checkpoint whose signature is another's.
    let forged = dir.path().join("forged.jsonl");
    let forged_text: String = text
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            if let Some(cp) = v.get_mut("checkpoint") {
                cp["signature"] = format!("{}==", "A".repeat(86)).into();
            }
            format!("{v}\n")
        })
        .collect();
    std::fs::write(&forged, forged_text).unwrap();
    let stderr = failure(&verify_file(&stack, &forged, &[&key]));
    assert!(
        stderr.contains("is not signed by the audit key"),
        "{stderr}"
    );

    // Another key, alone and beside the right one (as after a rotation).
    let other = base64_key([5u8; 32]);
    let stderr = failure(&verify_file(&stack, &file, &[&other]));
    assert!(stderr.contains("not one of the audit keys"), "{stderr}");
    let rotated = json(&verify_file(&stack, &file, &[&other, &key]));
    assert_eq!(rotated["intact"], true, "{rotated}");

    // Not an export at all; no key.
    let junk = dir.path().join("junk.jsonl");
    std::fs::write(&junk, "{\"tenant\": \"acme\"}\n").unwrap();
    let stderr = failure(&verify_file(&stack, &junk, &[&key]));
    assert!(stderr.contains("line 1"), "{stderr}");
    let no_key = cli(
        &stack,
        &["audit", "verify", "--file", file.to_str().unwrap()],
    );
    assert!(!no_key.status.success());
}

/// The public key of the Ed25519 seed `seed`, in base64.
fn base64_key(seed: [u8; 32]) -> String {
    use base64::Engine as _;
    use switchyard_control_plane::audit::checkpoint::Signer;
    let b64 = base64::engine::general_purpose::STANDARD;
    let signer = Signer::from_base64(&b64.encode(seed)).unwrap();
    b64.encode(signer.public().as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_export_has_a_row_per_record_and_the_export_is_audited() {
    let stack = signed_chain().await;
    let out = cli(
        &stack,
        &["audit", "export", "--tenant", "acme", "-o", "csv"],
    );
    assert!(out.status.success(), "{out:?}");
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let header = reader.headers().unwrap().clone();
    assert_eq!(&header[1], "seq");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let detail = header.iter().position(|h| h == "detail").unwrap();
    assert!(
        rows.iter().any(|r| r[detail].contains("quotas.burst")),
        "the diff is in the detail column"
    );
    let seqs: Vec<String> = rows.iter().map(|r| r[1].to_owned()).collect();
    assert_eq!(seqs[0], "1");

    let listed = json(&cli(
        &stack,
        &["audit", "list", "--tenant", "acme", "-o", "json"],
    ));
    let read = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "audit_read" && e["detail"]["export"] == true)
        .expect("the export is on the audit trail");
    assert_eq!(read["detail"]["last_seq"].as_u64(), Some(rows.len() as u64));

    // A range that holds nothing, and one that is not a time.
    let empty = cli(
        &stack,
        &[
            "audit",
            "export",
            "--tenant",
            "acme",
            "-o",
            "json",
            "--from",
            "2999-01-01",
        ],
    );
    assert!(empty.status.success(), "{empty:?}");
    assert!(empty.stdout.is_empty());
    let bad = cli(
        &stack,
        &["audit", "export", "--tenant", "acme", "--from", "yesterday"],
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--from"));
    let backwards = cli(
        &stack,
        &[
            "audit",
            "export",
            "--tenant",
            "acme",
            "--from",
            "2026-02-01",
            "--to",
            "2026-01-01",
        ],
    );
    assert!(String::from_utf8_lossy(&backwards.stderr).contains("end_time"));
}
