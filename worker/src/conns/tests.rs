use super::*;
use futures::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

fn loopback() -> UpstreamGuard {
    UpstreamGuard::new(vec!["127.0.0.0/8".parse().unwrap()])
}

fn conns(addr: std::net::SocketAddr, guard: UpstreamGuard) -> Conns {
    let origin = Origin::parse(&format!("http://{addr}/mcp?x=1")).unwrap();
    Conns::new(origin, guard, tls_config().unwrap())
}

fn post(conns: &Conns, body: &'static str) -> http::Request<Body> {
    let mut request = http::Request::builder()
        .method(http::Method::POST)
        .uri(conns.origin().target.clone())
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    request
        .headers_mut()
        .insert(http::header::HOST, conns.origin().host_header().clone());
    request
}

/// A server answering each request with `answer(request)`, `request` its text, that
/// reports each connection's peer port and each
/// request's head. A connection is closed after `per_connection` requests, and that
/// reported as a head of "closed".
async fn server(
    answer: fn(&str) -> String,
    per_connection: usize,
) -> (std::net::SocketAddr, mpsc::UnboundedReceiver<(u16, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen, heads) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, peer)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                for _ in 0..per_connection {
                    let mut buf = vec![0; 4096];
                    let mut read = 0;
                    // The head, then the body its Content-Length names.
                    let head = loop {
                        let Ok(got) = socket.read(&mut buf[read..]).await else {
                            return;
                        };
                        if got == 0 {
                            return;
                        }
                        read += got;
                        let text = String::from_utf8_lossy(&buf[..read]).into_owned();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length = text
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length: "))
                                .and_then(|l| l.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if read >= end + 4 + length {
                                break text;
                            }
                        }
                    };
                    let answer = answer(&head);
                    let _ = seen.send((peer.port(), head));
                    if socket.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
                drop(socket);
                let _ = seen.send((peer.port(), "closed".into()));
            });
        }
    });
    (addr, heads)
}

fn ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

async fn text(response: http::Response<Driven>) -> String {
    let body = response
        .into_body()
        .collect(1 << 20)
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(body).unwrap()
}

#[tokio::test]
async fn one_connection_carries_request_after_request() {
    let (addr, mut heads) = server(|r| ok(r.rsplit("\r\n").next().unwrap()), 10).await;
    let conns = conns(addr, loopback());
    for body in ["{\"n\":1}", "{\"n\":2}", "{\"n\":3}"] {
        let response = conns.send(post(&conns, body)).await.unwrap();
        assert_eq!(text(response).await, body);
    }
    let mut ports = Vec::new();
    for _ in 0..3 {
        let (port, head) = heads.recv().await.unwrap();
        assert!(head.starts_with("POST /mcp?x=1 HTTP/1.1\r\n"), "{head}");
        assert!(head.contains(&format!("host: {addr}\r\n")), "{head}");
        ports.push(port);
    }
    assert!(ports.iter().all(|p| *p == ports[0]), "{ports:?}");
}

#[tokio::test]
async fn a_body_left_unread_closes_its_connection_and_the_next_answer_is_its_own() {
    fn answer(request: &str) -> String {
        if request.ends_with("big") {
            ok(&"x".repeat(64 * 1024))
        } else {
            ok("small")
        }
    }
    let (addr, mut heads) = server(answer, 10).await;
    let conns = conns(addr, loopback());
    let mut first = conns.send(post(&conns, "big")).await.unwrap().into_body();
    first.next().await.unwrap().unwrap();
    drop(first);
    let second = conns.send(post(&conns, "small")).await.unwrap();
    let second = text(second).await;
    assert!(
        second == "small",
        "{} bytes of another answer",
        second.len()
    );
    let (a, _) = heads.recv().await.unwrap();
    let (b, _) = heads.recv().await.unwrap();
    assert_ne!(a, b, "the second request went on a new connection");
}

#[tokio::test]
async fn a_kept_connection_the_upstream_closed_is_not_used_again() {
    // One request per connection: the server closes each after its answer.
    let (addr, mut heads) = server(|_| ok("fine"), 1).await;
    let conns = conns(addr, loopback());
    let first = conns.send(post(&conns, "{}")).await.unwrap();
    assert_eq!(text(first).await, "fine");
    let (a, _) = heads.recv().await.unwrap();
    assert_eq!(heads.recv().await.unwrap(), (a, "closed".to_owned()));
    let second = conns.send(post(&conns, "{}")).await.unwrap();
    assert_eq!(text(second).await, "fine");
    let (b, _) = heads.recv().await.unwrap();
    assert_ne!(a, b);
}

#[tokio::test]
async fn an_address_the_guard_refuses_is_never_connected_to() {
    let (addr, mut heads) = server(|_| ok("reached"), 1).await;
    let conns = conns(addr, UpstreamGuard::default());
    let refused = conns.send(post(&conns, "{}")).await.unwrap_err();
    assert!(matches!(refused, ConnsError::Connect(..)), "{refused}");
    assert!(refused.to_string().contains("may not reach"), "{refused}");
    assert!(heads.try_recv().is_err(), "the server saw a request");
}

#[tokio::test]
async fn a_body_over_its_bound_is_refused_not_read_whole() {
    let (addr, _heads) = server(|_| ok(&"y".repeat(10_000)), 10).await;
    let conns = conns(addr, loopback());
    let response = conns.send(post(&conns, "{}")).await.unwrap();
    assert!(response.into_body().collect(1000).await.unwrap().is_none());
    let response = conns.send(post(&conns, "{}")).await.unwrap();
    let (start, whole) = response.into_body().first(1000).await.unwrap();
    assert_eq!((start.len(), whole), (1000, false));
}

#[test]
fn origins_name_their_host_port_and_target() {
    let o = Origin::parse("https://api.example.com/v1/mcp?k=v").unwrap();
    assert!(o.https);
    assert_eq!((o.host(), o.port), ("api.example.com", 443));
    assert_eq!(o.authority(), "api.example.com");
    assert_eq!(o.target.as_str(), "/v1/mcp?k=v");
    let v6 = Origin::parse("http://[::1]:8080/mcp").unwrap();
    assert_eq!(
        (v6.host(), v6.port, v6.authority()),
        ("::1", 8080, "[::1]:8080")
    );
    for bad in [
        "ftp://example.com/",
        "not a url",
        "unix:/run/mcp.sock",
        "https://user:secret@example.com/mcp",
    ] {
        assert!(Origin::parse(bad).is_err(), "{bad}");
    }
}

mod tls {
    use super::*;
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    const CERT: &[u8] = include_bytes!("testdata/localhost.crt");
    const KEY: &[u8] = include_bytes!("testdata/localhost.key");

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// A TLS server for `localhost` answering each connection's one request.
    async fn server() -> std::net::SocketAddr {
        let cert = CertificateDer::from_pem_slice(CERT).unwrap();
        let key = PrivateKeyDer::from_pem_slice(KEY).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0; 1024];
                    while !request.ends_with(b"\r\n\r\n{}") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = tls.write_all(ok("over TLS").as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        addr
    }

    fn trusting(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    fn https(addr: std::net::SocketAddr, tls: Arc<rustls::ClientConfig>) -> Conns {
        let origin = Origin::parse(&format!("https://localhost:{}/mcp", addr.port())).unwrap();
        Conns::new(origin, loopback(), tls)
    }

    #[tokio::test]
    async fn an_https_upstream_is_spoken_to_over_tls() {
        let addr = server().await;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(CERT).unwrap())
            .unwrap();
        let conns = https(addr, trusting(roots));
        let response = conns.send(post(&conns, "{}")).await.unwrap();
        assert_eq!(text(response).await, "over TLS");
    }

    #[tokio::test]
    async fn a_certificate_no_root_vouches_for_is_refused() {
        let addr = server().await;
        let conns = https(addr, trusting(rustls::RootCertStore::empty()));
        let refused = conns.send(post(&conns, "{}")).await.unwrap_err();
        assert!(matches!(refused, ConnsError::Tls(..)), "{refused}");
    }
}
