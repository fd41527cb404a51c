//! The audit export: a run of one chain's records, oldest first, each signed checkpoint
//! right after the record it signs, streamed a page at a time so an export of any length
//! holds one page in memory. The export is recorded in the chain before it starts.

use super::audit::{chain_of, event_of, time_range};
use super::*;
use crate::audit::checkpoint::Checkpoint;
use crate::compile::timestamp;
use std::pin::Pin;
use tokio_stream::Stream;

/// Records read from the store at a time.
const PAGE: u32 = 1000;

pub type ExportStream = Pin<Box<dyn Stream<Item = Result<pb::AuditExportItem, Status>> + Send>>;

fn checkpoint_of(cp: Checkpoint) -> pb::AuditExportItem {
    pb::AuditExportItem {
        item: Some(pb::audit_export_item::Item::Checkpoint(
            pb::AuditCheckpoint {
                tenant: cp.chain,
                seq: cp.seq,
                hash: cp.hash,
                time: Some(timestamp(cp.at)),
                key_id: cp.key_id,
                signature: cp.signature,
            },
        )),
    }
}

/// Sends the records `first` to `last` of `chain` and their checkpoints to `tx`, until
/// done, the store fails (the client gets the error), or the client goes away.
async fn send(
    store: Store,
    chain: String,
    (first, last): (i64, i64),
    tx: tokio::sync::mpsc::Sender<Result<pb::AuditExportItem, Status>>,
) {
    let mut next = first;
    while next <= last {
        let page = async {
            let (records, _) = store.audit_chain(&chain, next, PAGE).await?;
            let end = records.last().map_or(last, |r| r.seq.min(last));
            let checkpoints = store.audit_checkpoints(&chain, next, end).await?;
            Ok::<_, Error>((records, checkpoints))
        };
        let (records, checkpoints) = match page.await {
            Ok(page) => page,
            Err(e) => {
                let _ = tx.send(Err(Status::from(e))).await;
                return;
            }
        };
        // None left in the run (records removed from the database end it early).
        if records.first().is_none_or(|r| r.seq > last) {
            return;
        }
        let mut checkpoints = checkpoints.into_iter().peekable();
        for record in records.into_iter().take_while(|r| r.seq <= last) {
            let seq = record.seq;
            next = seq + 1;
            let event = pb::AuditExportItem {
                item: Some(pb::audit_export_item::Item::Event(event_of(record))),
            };
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
            while let Some(cp) = checkpoints.next_if(|cp| cp.seq <= seq) {
                if tx.send(Ok(checkpoint_of(cp))).await.is_err() {
                    return;
                }
            }
        }
    }
}

impl Admin {
    pub(super) async fn export(&self, r: pb::ExportAuditEventsRequest) -> Result<ExportStream> {
        let chain = chain_of(&r.tenant)?;
        let (from, to) = time_range(r.start_time.as_ref(), r.end_time.as_ref())?;
        let range = self.store.audit_seq_range(&chain, from, to).await?;
        let detail = serde_json::json!({
            "export": true, "from": from, "to": to,
            "first_seq": range.map(|r| r.0), "last_seq": range.map(|r| r.1),
        });
        self.record_read(&chain, detail).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        if let Some(range) = range {
            tokio::spawn(send(self.store.clone(), chain, range, tx));
        }
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }
}
