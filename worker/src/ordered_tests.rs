use super::*;
use futures::FutureExt as _;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;

fn sessions() -> OrderedSessions<LocalSessionManager> {
    OrderedSessions::new(
        Arc::new(LocalSessionManager::default()),
        Diverted::default(),
    )
}

#[tokio::test]
async fn a_session_is_answered_once_no_request_of_it_waits() {
    let sessions = sessions();
    let (id, _transport) = sessions.create_session().await.unwrap();
    // Nothing open: at once.
    assert!(sessions.answered(&id).now_or_never().is_some());

    let first = sessions.inline(&id, &RequestId::Number(1)).unwrap();
    let second = sessions.inline(&id, &RequestId::Number(2)).unwrap();
    let answered = sessions.answered(&id);
    tokio::pin!(answered);
    assert!(answered.as_mut().now_or_never().is_none());
    drop(first);
    assert!(
        answered.as_mut().now_or_never().is_none(),
        "one request still waits"
    );
    drop(second);
    assert!(answered.now_or_never().is_some());
}

#[tokio::test]
async fn a_session_not_here_is_answered_at_once() {
    let sessions = sessions();
    let unknown = SessionId::from("nowhere".to_owned());
    assert!(sessions.answered(&unknown).now_or_never().is_some());
}
