//! A client that goes away mid-request, as one that crashed or lost its network would: its
//! request on a TCP connection of its own, closed while the request is still being served.

use std::time::Duration;

/// Sends a POST of `body` to `endpoint` with `key` and the extra headers `headers` on a
/// connection of its own; once `reached` holds (the request got where the test wants it),
/// closes the connection and waits until the worker has logged that the client went.
pub async fn post_and_hang_up(
    endpoint: &str,
    key: &str,
    headers: &[(&str, &str)],
    body: &str,
    reached: impl Fn() -> bool,
) {
    let deadline = Duration::from_secs(30);
    let url = reqwest::Url::parse(endpoint).unwrap();
    let authority = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut tcp = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let peer = tcp.local_addr().unwrap();
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request = format!(
        "POST {} HTTP/1.1\r\nhost: {authority}\r\nauthorization: Bearer {key}\r\n\
         accept: application/json, text/event-stream\r\ncontent-type: application/json\r\n\
         {extra}content-length: {}\r\n\r\n{body}",
        url.path(),
        body.len()
    );
    tokio::io::AsyncWriteExt::write_all(&mut tcp, request.as_bytes())
        .await
        .unwrap();
    crate::assert_eventually!(reached(), deadline, "the request got where it was going");
    drop(tcp);
    crate::assert_eventually!(
        crate::logs().contains(&format!("connection closed early peer={peer}")),
        deadline,
        "the worker saw the client go"
    );
}
