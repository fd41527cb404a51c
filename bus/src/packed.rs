//! Events of a queue that packs (`Event::PACKED`) travel on NATS several to a message: a
//! publisher's batch, split by tenant, as one JSON array per message. JetStream's work is
//! per message (storing it, acknowledging the publish, delivering it, taking the consumer's
//! acknowledgement), so a busy worker's usage costs it and NATS a fraction of a message per
//! call rather than one each.
//!
//! A message carrying several events is named for its first and last event's ids and their
//! count, so a batch published again (a publisher's retry sends the same batch) is dropped
//! by the duplicate window as a single event is. A repeat across messages can get through:
//! a queue packs only events whose consumer drops repeats by id itself. A message holding
//! one event is that event alone, as a queue that does not pack sends it.

use crate::queue::Event;
use crate::{BusError, Result};
use async_nats::jetstream;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Most bytes of events in one message: well under NATS's default `max_payload` (1 MiB).
/// An event larger than this travels alone.
pub(crate) const MAX_PACK_BYTES: usize = 256 * 1024;

/// One message to publish.
#[derive(Debug)]
pub(crate) struct Pack {
    pub subject: String,
    /// Its `Nats-Msg-Id`.
    pub id: String,
    pub payload: bytes::Bytes,
}

/// `events` as messages: per tenant (in the order tenants first appear), each id once, in
/// the order given, at most `MAX_PACK_BYTES` of events to a message.
pub(crate) fn pack<E: Event>(events: &[E]) -> Result<Vec<Pack>> {
    let mut seen = HashSet::new();
    let mut tenants: Vec<(&str, Vec<&E>)> = Vec::new();
    for event in events.iter().filter(|e| seen.insert(e.id())) {
        match tenants.iter_mut().find(|(t, _)| *t == event.tenant()) {
            Some((_, of_tenant)) => of_tenant.push(event),
            None => tenants.push((event.tenant(), vec![event])),
        }
    }
    let mut packs = Vec::new();
    for (tenant, of_tenant) in tenants {
        let subject = format!("{}.{}", E::SPEC.subject_prefix, tenant);
        let mut open: Vec<(&E, Vec<u8>)> = Vec::new();
        let mut bytes = 0;
        for event in of_tenant {
            let json =
                serde_json::to_vec(event).map_err(|e| BusError::Unavailable(e.to_string()))?;
            if !open.is_empty() && bytes + json.len() > MAX_PACK_BYTES {
                packs.push(seal(&subject, std::mem::take(&mut open)));
                bytes = 0;
            }
            bytes += json.len() + 1;
            open.push((event, json));
        }
        if !open.is_empty() {
            packs.push(seal(&subject, open));
        }
    }
    Ok(packs)
}

/// One message of `events` (at least one), each with its JSON.
fn seal<E: Event>(subject: &str, mut events: Vec<(&E, Vec<u8>)>) -> Pack {
    if events.len() == 1 {
        let (event, json) = events.remove(0);
        return Pack {
            subject: subject.to_owned(),
            id: event.id().to_owned(),
            payload: json.into(),
        };
    }
    let (first, last) = (events[0].0.id(), events[events.len() - 1].0.id());
    let id = format!("{first}..{last}+{}", events.len());
    let mut payload =
        Vec::with_capacity(events.iter().map(|(_, j)| j.len() + 1).sum::<usize>() + 1);
    payload.push(b'[');
    for (i, (_, json)) in events.iter().enumerate() {
        if i > 0 {
            payload.push(b',');
        }
        payload.extend_from_slice(json);
    }
    payload.push(b']');
    Pack {
        subject: subject.to_owned(),
        id,
        payload: payload.into(),
    }
}

/// The events of a message's `payload`: an array of them, or one.
pub(crate) fn unpack<E: Event>(payload: &[u8]) -> serde_json::Result<Vec<E>> {
    if payload.trim_ascii_start().first() == Some(&b'[') {
        serde_json::from_slice(payload)
    } else {
        serde_json::from_slice(payload).map(|event| vec![event])
    }
}

/// A message whose events are delivered one by one: acknowledged to NATS when the last of
/// them is. One never acknowledged leaves the whole message to come again after the
/// stream's acknowledgement wait, its other events with it (the consumer drops repeats).
#[derive(Debug)]
pub(crate) struct SharedAck {
    message: jetstream::Message,
    left: AtomicUsize,
}

impl SharedAck {
    /// The message, for `events` deliveries (at least one).
    pub fn new(message: jetstream::Message, events: usize) -> Self {
        Self {
            message,
            left: AtomicUsize::new(events.max(1)),
        }
    }

    /// One delivery's acknowledgement; the message's once every delivery has given its own.
    pub async fn ack(&self) -> Result<()> {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.message
                .ack()
                .await
                .map_err(|e| BusError::Unavailable(e.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UsageEvent;

    fn event(id: &str, tenant: &str, arguments: Option<String>) -> UsageEvent {
        UsageEvent {
            id: id.into(),
            tenant: tenant.into(),
            key_id: "k".into(),
            subject: None,
            method: crate::UsageMethod::ToolsCall,
            target: "t".into(),
            connector: "c".into(),
            ok: true,
            at_ms: 1,
            duration_ms: 1,
            error: None,
            session: None,
            worker: None,
            trace_id: None,
            arguments_digest: None,
            arguments,
        }
    }

    #[test]
    fn a_batch_packs_per_tenant_each_id_once_and_unpacks_whole() {
        let sent = [
            event("a1", "acme", None),
            event("g1", "globex", None),
            event("a2", "acme", None),
            event("a1", "acme", None),
        ];
        let packs = pack(&sent).unwrap();
        assert_eq!(packs.len(), 2);
        assert_eq!(packs[0].subject, "switchyard.usage.acme");
        assert_eq!(packs[0].id, "a1..a2+2");
        let acme: Vec<UsageEvent> = unpack(&packs[0].payload).unwrap();
        assert_eq!(acme, vec![sent[0].clone(), sent[2].clone()]);
        // A tenant's lone event is sent as a queue that does not pack sends it.
        assert_eq!(packs[1].id, "g1");
        assert_eq!(packs[1].payload, serde_json::to_vec(&sent[1]).unwrap());
        let globex: Vec<UsageEvent> = unpack(&packs[1].payload).unwrap();
        assert_eq!(globex, vec![sent[1].clone()]);
        // The same batch again is the same messages, which the duplicate window drops.
        let again = pack(&sent).unwrap();
        assert_eq!(
            again.iter().map(|p| &p.id).collect::<Vec<_>>(),
            packs.iter().map(|p| &p.id).collect::<Vec<_>>()
        );
    }

    #[test]
    fn no_message_outgrows_the_bound_and_a_large_event_travels_alone() {
        let big = || Some("x".repeat(MAX_PACK_BYTES / 3));
        let mut sent: Vec<UsageEvent> = (0..7)
            .map(|i| event(&format!("e{i}"), "acme", big()))
            .collect();
        sent.push(event("huge", "acme", Some("y".repeat(MAX_PACK_BYTES + 1))));
        sent.push(event("small", "acme", None));
        let packs = pack(&sent).unwrap();
        let mut got = Vec::new();
        for p in &packs {
            let events: Vec<UsageEvent> = unpack(&p.payload).unwrap();
            assert!(
                p.payload.len() <= MAX_PACK_BYTES || events.len() == 1,
                "a message of {} events has {} bytes",
                events.len(),
                p.payload.len()
            );
            got.extend(events);
        }
        assert_eq!(got, sent);
        assert!(packs.len() >= 4, "{} messages", packs.len());
    }

    #[test]
    fn a_payload_that_is_no_event_is_unreadable() {
        assert!(unpack::<UsageEvent>(b"[{\"id\":1}]").is_err());
        assert!(unpack::<UsageEvent>(b"not json").is_err());
        assert!(unpack::<UsageEvent>(b"[]").unwrap().is_empty());
    }
}
