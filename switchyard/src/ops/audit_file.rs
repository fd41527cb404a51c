//! The audit export's file formats, and checking an exported file offline.
//!
//! JSON export is one object per line: `{"event": {...}}` for a record, with every field
//! its hash covers (`at` in milliseconds, `detail` as the exact text hashed), and
//! `{"checkpoint": {...}}` right after the record a checkpoint signs. CSV export has one row
//! per record, the same fields, and no checkpoints: it is for reading, the JSON for checking.

use anyhow::{Context as _, anyhow, bail};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use switchyard_control_plane::audit::checkpoint::{self, Checkpoint, VerifyingKey};
use switchyard_control_plane::audit::{self, Record};
use switchyard_proto::admin::v1 as pb;

fn millis(ts: Option<&prost_types::Timestamp>) -> i64 {
    ts.map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// A record as exported.
#[derive(Debug, Serialize, Deserialize)]
pub struct EventLine {
    pub tenant: String,
    pub seq: i64,
    pub id: String,
    pub at: i64,
    #[serde(default)]
    pub time: serde_json::Value,
    pub kind: String,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub outcome: String,
    pub detail: String,
    pub trace_id: String,
    pub prev_hash: String,
    pub hash: String,
}

/// A checkpoint as exported.
#[derive(Debug, Serialize, Deserialize)]
pub struct CheckpointLine {
    pub tenant: String,
    pub seq: i64,
    pub hash: String,
    pub at: i64,
    #[serde(default)]
    pub time: serde_json::Value,
    pub key_id: String,
    pub signature: String,
}

/// One line of a JSON export.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Line {
    Event(EventLine),
    Checkpoint(CheckpointLine),
}

impl Line {
    pub fn of(item: pb::AuditExportItem) -> Option<Self> {
        Some(match item.item? {
            pb::audit_export_item::Item::Event(e) => Line::Event(EventLine {
                at: millis(e.time.as_ref()),
                time: crate::output::time(e.time.as_ref()),
                tenant: e.tenant,
                seq: e.seq,
                id: e.id,
                kind: e.kind,
                actor: e.actor,
                action: e.action,
                object: e.object,
                outcome: e.outcome,
                detail: e.detail,
                trace_id: e.trace_id,
                prev_hash: e.prev_hash,
                hash: e.hash,
            }),
            pb::audit_export_item::Item::Checkpoint(c) => Line::Checkpoint(CheckpointLine {
                at: millis(c.time.as_ref()),
                time: crate::output::time(c.time.as_ref()),
                tenant: c.tenant,
                seq: c.seq,
                hash: c.hash,
                key_id: c.key_id,
                signature: c.signature,
            }),
        })
    }
}

pub const CSV_HEADER: &[&str] = &[
    "tenant",
    "seq",
    "id",
    "at",
    "time",
    "kind",
    "actor",
    "action",
    "object",
    "outcome",
    "detail",
    "trace_id",
    "prev_hash",
    "hash",
];

impl EventLine {
    pub fn csv_row(&self) -> Vec<String> {
        vec![
            self.tenant.clone(),
            self.seq.to_string(),
            self.id.clone(),
            self.at.to_string(),
            self.time.as_str().unwrap_or_default().to_owned(),
            self.kind.clone(),
            self.actor.clone(),
            self.action.clone(),
            self.object.clone(),
            self.outcome.clone(),
            self.detail.clone(),
            self.trace_id.clone(),
            self.prev_hash.clone(),
            self.hash.clone(),
        ]
    }

    fn record(self) -> Record {
        Record {
            chain: self.tenant,
            seq: self.seq,
            id: self.id,
            at: self.at,
            kind: self.kind,
            actor: self.actor,
            action: self.action,
            object: self.object,
            outcome: self.outcome,
            detail: self.detail,
            trace_id: self.trace_id,
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

/// Writes a JSON export's line.
pub fn write_json(out: &mut impl Write, line: &Line) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// What checking an exported file found.
#[derive(Debug, Serialize)]
pub struct Checked {
    pub intact: bool,
    pub tenant: String,
    pub records: u64,
    pub first_seq: i64,
    pub last_seq: i64,
    pub checkpoints: u64,
    /// The last record a checkpoint signs: records after it could have been cut off or
    /// added unseen.
    pub signed_through: i64,
    pub first_bad_seq: Option<i64>,
    pub reason: String,
}

/// Reads a JSON export: its records and checkpoints, in file order.
fn read(file: impl BufRead) -> anyhow::Result<(Vec<Record>, Vec<Checkpoint>)> {
    let (mut records, mut checkpoints) = (Vec::new(), Vec::new());
    for (n, line) in file.lines().enumerate() {
        let line = line.context("reading the export")?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(&line)
            .map_err(|e| anyhow!("line {}: not a line of a JSON audit export: {e}", n + 1))?;
        match parsed {
            Line::Event(e) => records.push(e.record()),
            Line::Checkpoint(c) => checkpoints.push(Checkpoint {
                chain: c.tenant,
                seq: c.seq,
                hash: c.hash,
                at: c.at,
                key_id: c.key_id,
                signature: c.signature,
            }),
        }
    }
    Ok((records, checkpoints))
}

/// Checks an exported file against `keys` without the service: the chain recomputes, every
/// checkpoint is signed by one of the keys and matches its record, and at least one
/// checkpoint signs a record of the file (else nothing ties the file to the signer).
pub fn verify(file: impl BufRead, keys: &[VerifyingKey]) -> anyhow::Result<Checked> {
    if keys.is_empty() {
        bail!(
            "--public-key: give the audit signing key's public key (`switchyard audit signing-key`)"
        );
    }
    let (records, checkpoints) = read(file)?;
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        bail!("the file holds no audit records");
    };
    let tenant = first.chain.clone();
    let mut checked = Checked {
        intact: false,
        tenant: tenant.clone(),
        records: records.len() as u64,
        first_seq: first.seq,
        last_seq: last.seq,
        checkpoints: 0,
        signed_through: 0,
        first_bad_seq: None,
        reason: String::new(),
    };
    let stranger = records
        .iter()
        .map(|r| (r.seq, &r.chain))
        .chain(checkpoints.iter().map(|c| (c.seq, &c.chain)))
        .find(|(_, chain)| **chain != tenant);
    let outcome = match stranger {
        Some((seq, chain)) => Err(audit::ChainBreak {
            seq,
            reason: format!("belongs to the chain {chain:?}, not {tenant:?}"),
        }),
        None => audit::verify(&records, first.seq, None)
            .and_then(|()| checkpoint::check(&records, &checkpoints, keys)),
    };
    match outcome {
        Ok(0) => {
            checked.reason = "no signed checkpoint covers these records: nothing ties them to \
                              the audit key"
                .into();
        }
        Ok(n) => {
            checked.intact = true;
            checked.checkpoints = n as u64;
            checked.signed_through = checkpoints
                .iter()
                .filter(|c| c.seq <= last.seq)
                .map(|c| c.seq)
                .max()
                .unwrap_or(0);
        }
        Err(broken) => {
            checked.first_bad_seq = Some(broken.seq);
            checked.reason = broken.reason;
        }
    }
    Ok(checked)
}
