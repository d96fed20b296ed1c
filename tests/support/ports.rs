//! Ports: forward ports (10001–11000, the range `book` hands out) and local ports for the
//! servers a test starts.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// The forward ports `book` accepts.
pub const FORWARD_PORTS: std::ops::RangeInclusive<u16> = 10001..=11000;

/// A forward port that nothing on this host listens on, different for each call in this
/// process: the containers of every test share the host's ports.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id().wrapping_mul(7919);
    for _ in 0..1000 {
        let port = 10001 + (offset.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % 1000) as u16;
        if TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port from 10001 to 11000 on this host");
}

/// The lowest forward port that none of `taken` is (a root's ports need not be free on the
/// host when no container runs).
pub fn port_other_than(taken: &[u16]) -> u16 {
    FORWARD_PORTS.into_iter().find(|port| !taken.contains(port)).expect("a free port")
}

/// A port on 127.0.0.1 that nothing listens on now.
pub fn unused_local_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind a port").local_addr().expect("its address").port()
}

/// A port on `address` that nothing listens on now, from `first` to `first + count - 1`
/// (each process starts at its own place in the range, so tests that run at once seldom
/// meet).
pub fn free_port_in(first: u16, count: u16, address: &str) -> u16 {
    let offset = (std::process::id() % u32::from(count)) as u16;
    (0..count)
        .map(|step| first + (offset + step) % count)
        .find(|port| TcpListener::bind((address, *port)).is_ok())
        .unwrap_or_else(|| panic!("no free port from {first} to {}", first + count - 1))
}
