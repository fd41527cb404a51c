//! A port for a process that binds it itself, later. A port taken with `bind(":0")` and let
//! go is one of the kernel's ephemeral ports, which any outgoing connection of a test
//! running beside may take as its own before the process binds it; a port below that range
//! is never handed out so.

use std::net::TcpListener;

/// The kernel's range of ephemeral ports, as Linux states it.
pub(crate) fn ephemeral_floor() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A loopback port that is free now and below the ephemeral range (any free one when that
/// range starts too low to leave room).
pub fn unused_port() -> u16 {
    let floor = ephemeral_floor();
    if floor > 11_000 {
        for _ in 0..200 {
            let port = rand::random_range(10_000..floor);
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_is_free_and_outside_the_ephemeral_range() {
        let floor = ephemeral_floor();
        let port = unused_port();
        if floor > 11_000 {
            assert!(port < floor, "{port} is an ephemeral port (from {floor})");
        }
        TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
    }
}
