//! The hash chain: each record's hash is the SHA-256 of its canonical JSON (RFC 8785), which
//! includes the previous record's hash, so editing, removing or reordering a record breaks
//! every link after it. [`verify`] recomputes a run of records and names the first that
//! does not match.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// One audit record as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// The tenant's slug, or `""` for the platform's own chain.
    pub chain: String,
    /// Position in the chain, from 1.
    pub seq: i64,
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub kind: String,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub outcome: String,
    /// JSON text.
    pub detail: String,
    pub trace_id: String,
    /// The previous record's hash; empty for the first record.
    pub prev_hash: String,
    #[serde(skip)]
    pub hash: String,
}

impl Record {
    /// The hash this record's content commits to (its `hash` field excluded).
    pub fn compute_hash(&self) -> String {
        let canonical = serde_jcs::to_vec(self).unwrap_or_default();
        Sha256::digest(&canonical)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Where a chain stops matching.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {seq}: {reason}")]
pub struct ChainBreak {
    /// The first record that does not match (for a missing tail: the first one missing).
    pub seq: i64,
    pub reason: String,
}

/// Checks `records` (one chain, in sequence order), which must start at sequence number
/// `first`: 1 for a whole chain, whose first record has no predecessor; later when older
/// records were removed by retention (their successor's `prev_hash` is then taken on
/// trust) or when only part of a chain is checked. `head` is the chain head row (last
/// sequence number and hash), which the records must reach when they run to the end of the
/// chain.
pub fn verify(records: &[Record], first: i64, head: Option<(i64, &str)>) -> Result<(), ChainBreak> {
    let mut previous: Option<&Record> = None;
    for r in records {
        let broken = |reason: String| ChainBreak { seq: r.seq, reason };
        let expected = previous.map_or(first, |p| p.seq + 1);
        if r.seq != expected {
            return Err(ChainBreak {
                seq: expected,
                reason: format!("missing (the next record found is {})", r.seq),
            });
        }
        match previous {
            Some(p) if r.prev_hash != p.hash => {
                return Err(broken(format!(
                    "links to {} but record {} hashes to {}",
                    short(&r.prev_hash),
                    p.seq,
                    short(&p.hash)
                )));
            }
            None if r.seq == 1 && !r.prev_hash.is_empty() => {
                return Err(broken("the first record links to a predecessor".into()));
            }
            _ => {}
        }
        let computed = r.compute_hash();
        if computed != r.hash {
            return Err(broken(format!(
                "its content hashes to {}, not the {} it records (edited)",
                short(&computed),
                short(&r.hash)
            )));
        }
        previous = Some(r);
    }
    let next = previous.map_or(first, |p| p.seq + 1);
    match head {
        Some((seq, hash))
            if seq >= next || previous.is_some_and(|p| p.seq == seq && p.hash != hash) =>
        {
            Err(ChainBreak {
                seq: next.min(seq),
                reason: format!(
                    "the chain head is record {seq} ({}), the last record found is {}",
                    short(hash),
                    next - 1
                ),
            })
        }
        _ => Ok(()),
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        for seq in 1..=n {
            let mut r = Record {
                chain: "acme".into(),
                seq,
                id: format!("id-{seq}"),
                at: 1000 + seq,
                kind: "admin".into(),
                actor: "operator:t1".into(),
                action: "UpdateTenant".into(),
                object: "tenant/acme".into(),
                outcome: "ok".into(),
                detail: "{}".into(),
                trace_id: String::new(),
                prev_hash: out.last().map(|p| p.hash.clone()).unwrap_or_default(),
                hash: String::new(),
            };
            r.hash = r.compute_hash();
            out.push(r);
        }
        out
    }

    fn head(c: &[Record]) -> Option<(i64, &str)> {
        c.last().map(|r| (r.seq, r.hash.as_str()))
    }

    #[test]
    fn an_intact_chain_verifies_whole_and_from_any_record() {
        let c = chain(5);
        assert_eq!(verify(&c, 1, head(&c)), Ok(()));
        assert_eq!(verify(&c[2..], 3, head(&c)), Ok(()));
    }

    #[test]
    fn an_edit_is_named_at_the_edited_record() {
        let mut c = chain(5);
        let h = c[4].hash.clone();
        c[2].outcome = "refused".into();
        assert_eq!(verify(&c, 1, Some((5, &h))).map_err(|e| e.seq), Err(3));
    }

    #[test]
    fn an_edit_with_its_hash_recomputed_breaks_the_next_link() {
        let mut c = chain(5);
        let h = c[4].hash.clone();
        c[2].actor = "operator:someone-else".into();
        c[2].hash = c[2].compute_hash();
        let err = verify(&c, 1, Some((5, &h))).unwrap_err();
        assert_eq!(err.seq, 4, "{err}");
    }

    #[test]
    fn a_removed_record_is_named_as_missing() {
        let mut c = chain(5);
        let h = c[4].hash.clone();
        c.remove(1);
        let err = verify(&c, 1, Some((5, &h))).unwrap_err();
        assert_eq!((err.seq, err.reason.starts_with("missing")), (2, true));
    }

    #[test]
    fn swapped_records_are_detected() {
        let mut c = chain(5);
        let h = c[4].hash.clone();
        let (a, b) = (c[1].seq, c[2].seq);
        c.swap(1, 2);
        c[1].seq = a;
        c[2].seq = b;
        assert_eq!(verify(&c, 1, Some((5, &h))).map_err(|e| e.seq), Err(2));
    }

    #[test]
    fn records_removed_from_the_start_are_missing_unless_retention_removed_them() {
        let c = chain(5);
        let h = c[4].hash.clone();
        assert_eq!(verify(&c[2..], 3, Some((5, &h))), Ok(()));
        let err = verify(&c[2..], 1, Some((5, &h))).unwrap_err();
        assert_eq!((err.seq, err.reason.starts_with("missing")), (1, true));
        let err = verify(&[], 1, Some((5, &h))).unwrap_err();
        assert_eq!(err.seq, 1, "{err}");
    }

    #[test]
    fn a_removed_tail_is_detected_against_the_head() {
        let c = chain(5);
        let h = c[4].hash.clone();
        let err = verify(&c[..3], 1, Some((5, &h))).unwrap_err();
        assert_eq!(err.seq, 4, "{err}");
    }
}
