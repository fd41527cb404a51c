//! Connections that hold a worker's resources without sending requests are closed.

use std::time::Duration;
use switchyard_tests::{Stack, assert_eventually, within};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const DEADLINE: Duration = Duration::from_secs(20);

/// Reads until the server closes the connection (EOF or reset).
async fn closed_by_server(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[tokio::test]
async fn a_client_trickling_header_lines_is_disconnected() {
    let stack = Stack::builder()
        .worker_config(|c| c.bounds.header_read_timeout = Duration::from_secs(1))
        .start()
        .await;
    let worker = stack.worker();
    let mut stream = TcpStream::connect(worker.mcp).await.unwrap();
    stream
        .write_all(b"POST /t/acme/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let (mut read, mut write) = stream.into_split();
    // One more header line every 200 ms, for as long as the server listens.
    let trickle = tokio::spawn(async move {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if write
                .write_all(format!("x-slow-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                return i;
            }
        }
        unreachable!()
    });
    within(DEADLINE, "the server closes the connection", async {
        let mut buf = [0u8; 1024];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => assert!(
                    !String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 2"),
                    "answered a request that never ended its headers"
                ),
            }
        }
    })
    .await;
    trickle.abort();
    assert_eventually!(
        worker
            .metric("switchyard_worker_connections_closed_total{reason=\"header_timeout\"}")
            .await
            .unwrap_or(0.0)
            >= 1.0,
        DEADLINE,
        "the disconnection is counted"
    );
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once() {
    let stack = Stack::builder()
        .worker_config(|c| c.bounds.max_connections = 2)
        .start()
        .await;
    let worker = stack.worker();
    let _held: Vec<TcpStream> =
        futures::future::join_all((0..2).map(|_| TcpStream::connect(worker.mcp)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    // The two are accepted (their slots are taken) before the third arrives.
    assert_eventually!(
        {
            let mut third = TcpStream::connect(worker.mcp).await.unwrap();
            within(
                DEADLINE,
                "the third connection is closed",
                closed_by_server(&mut third),
            )
            .await;
            worker
                .metric("switchyard_worker_connections_closed_total{reason=\"connection_limit\"}")
                .await
                .unwrap_or(0.0)
                >= 1.0
        },
        DEADLINE,
        "a connection over the cap is refused and counted"
    );
}
