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

/// Records checked at a time: an export of any length is checked in this much memory.
const PAGE: usize = 5000;

/// Checks an export's lines as they are read, a page of records at a time, each page with
/// the previous page's last record before it.
struct Verifier<'k> {
    keys: &'k [VerifyingKey],
    page_size: usize,
    checked: Checked,
    page: Vec<Record>,
    /// Whether the page's first record is the previous page's last (checked already).
    carried: bool,
    checkpoints: Vec<Checkpoint>,
}

impl Verifier<'_> {
    fn chain(&mut self, chain: &str, seq: i64) -> Result<(), audit::ChainBreak> {
        if self.checked.tenant.is_empty() && self.checked.records == 0 {
            chain.clone_into(&mut self.checked.tenant);
        }
        if chain != self.checked.tenant {
            return Err(audit::ChainBreak {
                seq,
                reason: format!(
                    "belongs to the chain {chain:?}, not {:?}",
                    self.checked.tenant
                ),
            });
        }
        Ok(())
    }

    fn event(&mut self, record: Record) -> Result<(), audit::ChainBreak> {
        self.chain(&record.chain, record.seq)?;
        if self.page.len() >= self.page_size + usize::from(self.carried) {
            self.flush()?;
        }
        if self.checked.records == 0 {
            self.checked.first_seq = record.seq;
        }
        self.checked.records += 1;
        self.checked.last_seq = record.seq;
        self.page.push(record);
        Ok(())
    }

    fn checkpoint(&mut self, cp: Checkpoint) -> Result<(), audit::ChainBreak> {
        self.chain(&cp.chain, cp.seq)?;
        self.checkpoints.push(cp);
        Ok(())
    }

    /// Checks the page read so far, and keeps its last record for the next.
    fn flush(&mut self) -> Result<(), audit::ChainBreak> {
        let (Some(first), Some(last)) = (self.page.first(), self.page.last()) else {
            return Ok(());
        };
        let (first, last) = (first.seq, last.seq);
        audit::verify(&self.page, first, None)?;
        let own = usize::from(self.carried);
        let matched = checkpoint::check(&self.page[own..], &self.checkpoints, self.keys)?;
        self.checked.checkpoints += matched as u64;
        let newest = self
            .checkpoints
            .iter()
            .filter(|c| (first..=last).contains(&c.seq))
            .map(|c| c.seq)
            .max();
        self.checked.signed_through = self.checked.signed_through.max(newest.unwrap_or(0));
        self.checkpoints.clear();
        let kept = self.page.pop();
        self.page.clear();
        self.page.extend(kept);
        self.carried = true;
        Ok(())
    }
}

/// Checks an exported file against `keys` without the service: the chain recomputes, every
/// checkpoint is signed by one of the keys and matches its record, and at least one
/// checkpoint signs a record of the file (else nothing ties the file to the signer).
pub fn verify(file: impl BufRead, keys: &[VerifyingKey]) -> anyhow::Result<Checked> {
    verify_in_pages(file, keys, PAGE)
}

fn verify_in_pages(
    file: impl BufRead,
    keys: &[VerifyingKey],
    page_size: usize,
) -> anyhow::Result<Checked> {
    if keys.is_empty() {
        bail!(
            "--public-key: give the audit signing key's public key (`switchyard audit signing-key`)"
        );
    }
    let mut v = Verifier {
        keys,
        page_size: page_size.max(1),
        checked: Checked {
            intact: false,
            tenant: String::new(),
            records: 0,
            first_seq: 0,
            last_seq: 0,
            checkpoints: 0,
            signed_through: 0,
            first_bad_seq: None,
            reason: String::new(),
        },
        page: Vec::new(),
        carried: false,
        checkpoints: Vec::new(),
    };
    let mut outcome = Ok(());
    for (n, line) in file.lines().enumerate() {
        let line = line.context("reading the export")?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(&line)
            .map_err(|e| anyhow!("line {}: not a line of a JSON audit export: {e}", n + 1))?;
        outcome = match parsed {
            Line::Event(e) => v.event(e.record()),
            Line::Checkpoint(c) => v.checkpoint(Checkpoint {
                chain: c.tenant,
                seq: c.seq,
                hash: c.hash,
                at: c.at,
                key_id: c.key_id,
                signature: c.signature,
            }),
        };
        if outcome.is_err() {
            break;
        }
    }
    if v.checked.records == 0 {
        bail!("the file holds no audit records");
    }
    let outcome = outcome.and_then(|()| v.flush());
    let mut checked = v.checked;
    match outcome {
        Ok(()) if checked.checkpoints == 0 => {
            checked.reason = "no signed checkpoint covers these records: nothing ties them to \
                              the audit key"
                .into();
        }
        Ok(()) => checked.intact = true,
        Err(broken) => {
            checked.first_bad_seq = Some(broken.seq);
            checked.reason = broken.reason;
        }
    }
    Ok(checked)
}

#[cfg(test)]
#[path = "audit_file_tests.rs"]
mod tests;
