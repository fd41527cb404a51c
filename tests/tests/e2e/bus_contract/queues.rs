//! The event queues from workers to the control plane: usage events and tool sightings,
//! each id once, kept until acknowledged.

use futures::StreamExt as _;
use std::sync::Arc;
use std::time::Duration;

contract!(
    usage_contract,
    switchyard_bus::MemoryUsage::default(),
    |client| switchyard_bus::NatsUsage::new(client);
    usage_events_arrive_in_order_once_per_id,
    a_consumer_started_again_gets_what_was_sent_meanwhile,
    a_batch_arrives_whole_once_per_id,
);

contract!(
    tools_contract,
    switchyard_bus::MemoryTools::default(),
    |client| switchyard_bus::NatsTools::new(client);
    tool_sightings_arrive_once_per_definition,
);

/// The next delivery, within 10 s.
async fn next<E>(
    deliveries: &mut futures::stream::BoxStream<
        'static,
        switchyard_bus::Result<switchyard_bus::Delivery<E>>,
    >,
) -> switchyard_bus::Delivery<E> {
    tokio::time::timeout(Duration::from_secs(10), deliveries.next())
        .await
        .expect("a delivery within 10 s")
        .expect("the stream goes on")
        .expect("a delivery")
}

fn usage_event(id: &str) -> switchyard_bus::UsageEvent {
    switchyard_tests::usage_event(id, "acme", 1_000)
}

async fn usage_events_arrive_in_order_once_per_id(usage: Arc<switchyard_bus::UsageBus>) {
    // Repeats come before the last event: delivered in order, a repeat would show before it.
    for id in ["e1", "e2", "e1", "e3", "e2", "e4"] {
        usage.publish(&usage_event(id)).await.unwrap();
    }
    let mut deliveries = usage.consume().await.unwrap();
    for want in ["e1", "e2", "e3", "e4"] {
        let got = next(&mut deliveries).await;
        assert_eq!(got.event, usage_event(want));
        got.ack().await.unwrap();
    }
}

/// Publishes `batch` as a worker's reporter does: again while the publish fails (the first
/// publish to NATS makes the stream, and fails).
async fn publish_batch(
    usage: &dyn switchyard_bus::Queue<switchyard_bus::UsageEvent>,
    batch: &[switchyard_bus::UsageEvent],
) {
    for _ in 0..2 {
        if usage.publish_batch(batch).await.is_ok() {
            return;
        }
    }
    usage.publish_batch(batch).await.unwrap();
}

/// A batch (with repeats of itself) is stored whole before its publish returns, each id
/// once, in order; published again (a publisher's retry), nothing more arrives.
async fn a_batch_arrives_whole_once_per_id(usage: Arc<switchyard_bus::UsageBus>) {
    let ids: Vec<String> = (0..300).map(|i| format!("b{}", i % 250)).collect();
    let batch: Vec<_> = ids.iter().map(|id| usage_event(id)).collect();
    publish_batch(&*usage, &batch).await;
    publish_batch(&*usage, &batch).await;
    let mut deliveries = usage.consume().await.unwrap();
    for i in 0..250 {
        let got = next(&mut deliveries).await;
        assert_eq!(got.event.id, format!("b{i}"));
        got.ack().await.unwrap();
    }
    let more = tokio::time::timeout(Duration::from_millis(500), deliveries.next()).await;
    assert!(more.is_err(), "a repeat was delivered: {more:?}");
}

/// On NATS a batch of usage events travels as one message per tenant, which is
/// acknowledged only once every event it carried has been: one left unacknowledged keeps
/// the message pending, to come again.
#[tokio::test]
async fn a_packed_batch_is_one_message_acknowledged_with_its_last_event() {
    use switchyard_bus::Queue as _;
    let nats = switchyard_tests::Stack::nats_server().await;
    let usage = switchyard_bus::NatsUsage::new(nats.client().await);
    let mut batch: Vec<_> = (0..5).map(|i| usage_event(&format!("a{i}"))).collect();
    batch.insert(2, switchyard_tests::usage_event("g0", "globex", 1_000));
    publish_batch(&usage, &batch).await;
    let js = async_nats::jetstream::new(nats.client().await);
    let mut stream = js.get_stream(switchyard_bus::USAGE_STREAM).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
    let mut deliveries = usage.consume().await.unwrap();
    let mut got = Vec::new();
    for _ in 0..6 {
        let d = next(&mut deliveries).await;
        got.push(d);
    }
    let ids: Vec<&str> = got.iter().map(|d| d.event.id.as_str()).collect();
    assert_eq!(ids, ["a0", "a1", "a2", "a3", "a4", "g0"]);
    let last = got.remove(4);
    for d in got {
        d.ack().await.unwrap();
    }
    let pending = |want: usize| {
        let stream = stream.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let info = stream.consumer_info("control-plane").await.unwrap();
                if info.num_ack_pending == want || tokio::time::Instant::now() > deadline {
                    return info.num_ack_pending;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // globex's message is done; acme's waits for a4.
    assert_eq!(pending(1).await, 1);
    last.ack().await.unwrap();
    assert_eq!(pending(0).await, 0);
}

async fn a_consumer_started_again_gets_what_was_sent_meanwhile(
    usage: Arc<switchyard_bus::UsageBus>,
) {
    usage.publish(&usage_event("before")).await.unwrap();
    let mut deliveries = usage.consume().await.unwrap();
    let first = next(&mut deliveries).await;
    assert_eq!(first.event.id, "before");
    first.ack().await.unwrap();
    // The consumer stops (its stream failed, say) and starts again.
    drop(deliveries);
    usage.publish(&usage_event("meanwhile")).await.unwrap();
    let mut deliveries = usage.consume().await.unwrap();
    let next = next(&mut deliveries).await;
    assert_eq!(next.event.id, "meanwhile");
}

fn sighting(tenant: &str, tool: &str, digest: &str) -> switchyard_bus::ToolSighting {
    switchyard_bus::ToolSighting {
        id: format!("{tenant}/{tool}/{digest}"),
        tenant: tenant.into(),
        connector: "gh".into(),
        tool: tool.into(),
        digest: digest.into(),
        definition: Some(format!(r#"{{"name":"{tool}"}}"#)),
        worker: "w1".into(),
        at_ms: 5,
    }
}

/// Two workers that see the same definition report it once; each tenant's and each
/// definition's sighting arrives, in order.
async fn tool_sightings_arrive_once_per_definition(tools: Arc<switchyard_bus::ToolBus>) {
    let sent = [
        sighting("acme", "search", "d1"),
        sighting("acme", "search", "d1"),
        sighting("globex", "search", "d1"),
        sighting("acme", "search", "d2"),
        sighting("acme", "search", "d1"),
    ];
    for s in &sent {
        tools.publish(s).await.unwrap();
    }
    let mut deliveries = tools.consume().await.unwrap();
    for want in [&sent[0], &sent[2], &sent[3]] {
        let got = next(&mut deliveries).await;
        assert_eq!(&got.event, want);
        got.ack().await.unwrap();
    }
    let more = tokio::time::timeout(Duration::from_millis(500), deliveries.next()).await;
    assert!(more.is_err(), "repeats were delivered: {more:?}");
}

/// NATS keeps usage events until the control plane acknowledges them, across restarts.
#[tokio::test]
async fn unacknowledged_usage_events_are_delivered_again() {
    use switchyard_bus::Queue as _;
    let nats = switchyard_tests::Stack::nats_server().await;
    let usage = switchyard_bus::NatsUsage::new(nats.client().await);
    for id in ["e1", "e1", "e2"] {
        usage.publish(&usage_event(id)).await.unwrap();
    }
    let mut deliveries = usage.consume().await.unwrap();
    let first = next(&mut deliveries).await;
    assert_eq!(first.event.id, "e1");
    first.ack().await.unwrap();
    let second = next(&mut deliveries).await;
    assert_eq!(second.event.id, "e2", "the repeated e1 was dropped");
    // Not acknowledged: a new consumer (the control plane restarted) gets it again.
    drop(second);
    drop(deliveries);
    let again = switchyard_bus::NatsUsage::new(nats.client().await);
    let mut deliveries = again.consume().await.unwrap();
    let redelivered = tokio::time::timeout(Duration::from_secs(60), deliveries.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(redelivered.event, usage_event("e2"));
}

/// A publisher allowed only its own tenant's subject cannot make an event count for another
/// tenant by naming it in the body, nor hold the queue up with bytes that are no event:
/// such events are dropped, counted by why, and the queue goes on.
#[tokio::test]
async fn forged_and_unreadable_events_are_dropped() {
    use switchyard_bus::Queue as _;
    let nats = switchyard_tests::Stack::nats_server().await;
    let usage = switchyard_bus::NatsUsage::new(nats.client().await);
    usage.publish(&usage_event("first")).await.unwrap();
    let forged = serde_json::to_vec(&usage_event("forged")).unwrap();
    // A packed message's events are judged one by one.
    let packed = serde_json::to_vec(&[
        usage_event("packed"),
        switchyard_tests::usage_event("packed-forged", "globex", 1_000),
    ])
    .unwrap();
    nats.publish_raw(vec![
        ("switchyard.usage.globex", forged),
        ("switchyard.usage.acme", b"not an event".to_vec()),
        ("switchyard.usage.acme", packed),
    ])
    .await;
    usage.publish(&usage_event("last")).await.unwrap();
    let mut deliveries = usage.consume().await.unwrap();
    for want in ["first", "packed", "last"] {
        let got = next(&mut deliveries).await;
        assert_eq!(got.event.id, want);
        got.ack().await.unwrap();
    }
    let dropped = switchyard_bus::Rejected {
        forged: 2,
        unreadable: 1,
    };
    assert_eq!(usage.rejected(), dropped);
    // Clones share the tally, as the control plane's metrics and its consumer do.
    assert_eq!(usage.clone().rejected(), dropped);
}
