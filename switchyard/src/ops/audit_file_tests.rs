//! Checking an export offline across pages: a checkpoint on a page's last record still
//! counts, and an edit in a later page is named.

use super::*;
use base64::Engine as _;
use switchyard_control_plane::audit::checkpoint::Signer;

fn signer() -> Signer {
    Signer::from_base64(&base64::engine::general_purpose::STANDARD.encode([4u8; 32])).unwrap()
}

/// An export of a chain of `n` records, checkpoints after the records in `signed`.
fn export(n: i64, signed: &[i64]) -> Vec<Line> {
    let signer = signer();
    let mut lines = Vec::new();
    let mut prev = String::new();
    for seq in 1..=n {
        let mut r = Record {
            chain: "acme".into(),
            seq,
            id: format!("r{seq}"),
            at: 1_000 + seq,
            kind: "call".into(),
            actor: "key:k".into(),
            action: "tools/call".into(),
            object: "connector/acme/up".into(),
            outcome: "ok".into(),
            detail: format!("{{\"n\":{seq}}}"),
            trace_id: String::new(),
            prev_hash: prev.clone(),
            hash: String::new(),
        };
        r.hash = r.compute_hash();
        prev.clone_from(&r.hash);
        let cp = signed
            .contains(&seq)
            .then(|| signer.sign("acme", seq, &r.hash, 2_000 + seq));
        lines.push(Line::Event(EventLine {
            tenant: r.chain,
            seq,
            id: r.id,
            at: r.at,
            time: serde_json::Value::Null,
            kind: r.kind,
            actor: r.actor,
            action: r.action,
            object: r.object,
            outcome: r.outcome,
            detail: r.detail,
            trace_id: r.trace_id,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }));
        if let Some(cp) = cp {
            lines.push(Line::Checkpoint(CheckpointLine {
                tenant: cp.chain,
                seq: cp.seq,
                hash: cp.hash,
                at: cp.at,
                time: serde_json::Value::Null,
                key_id: cp.key_id,
                signature: cp.signature,
            }));
        }
    }
    lines
}

fn text(lines: &[Line]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        write_json(&mut out, line).unwrap();
    }
    out
}

#[test]
fn an_export_checks_across_pages() {
    let lines = export(12, &[4, 9]);
    let checked = verify_in_pages(text(&lines).as_slice(), &[signer().public()], 4).unwrap();
    assert!(checked.intact, "{checked:?}");
    assert_eq!((checked.records, checked.checkpoints), (12, 2));
    assert_eq!(
        (checked.first_seq, checked.last_seq, checked.signed_through),
        (1, 12, 9)
    );
}

#[test]
fn an_edit_in_a_later_page_is_named() {
    let mut lines = export(12, &[4, 12]);
    for line in &mut lines {
        if let Line::Event(e) = line
            && e.seq == 7
        {
            e.detail = "{\"n\":70}".into();
        }
    }
    let checked = verify_in_pages(text(&lines).as_slice(), &[signer().public()], 4).unwrap();
    assert!(!checked.intact);
    assert_eq!(checked.first_bad_seq, Some(7), "{checked:?}");
}

#[test]
fn a_record_of_another_chain_is_named() {
    let mut lines = export(3, &[3]);
    if let Line::Event(e) = &mut lines[1] {
        e.tenant = "globex".into();
    }
    let checked = verify_in_pages(text(&lines).as_slice(), &[signer().public()], 2).unwrap();
    assert_eq!(checked.first_bad_seq, Some(2));
    assert!(checked.reason.contains("globex"), "{checked:?}");
}
