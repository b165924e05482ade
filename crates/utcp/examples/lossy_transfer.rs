//! A transfer over a memlink that drops 2% of the frames in each direction and delays every
//! frame by 2 ms, in real time; prints the counters that changed (nstat names, as
//! `nstat` would show them on Linux) and what the link did.
//!
//! ```text
//! cargo run -p utcp --example lossy_transfer
//! ```

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddrV4};
use utcp::api::{memlink_pair, Host, TcpListener, TcpStream, ADDR_B};
use utcp::netdev::memlink::LinkConfig;
use utcp::time::Duration;

const BYTES: usize = 2 << 20;

fn byte(i: usize) -> u8 {
    (i ^ (i >> 8) ^ (i >> 16).wrapping_mul(7)) as u8
}

/// The counters of `h` that differ from `before`.
fn changed(h: &Host, before: &HashMap<&'static str, u64>) -> Vec<(&'static str, u64)> {
    let now = h.stack.mib().snapshot();
    now.into_iter()
        .filter(|(n, v)| before.get(n) != Some(v))
        .map(|(n, v)| (n, v - before.get(n).unwrap_or(&0)))
        .collect()
}

fn run() {
    let cfg = LinkConfig { loss: 0.02, delay: Duration::from_millis(2), seed: 42, ..LinkConfig::default() };
    let (a, b) = memlink_pair(cfg);
    let before_a: HashMap<_, _> = a.stack.mib().snapshot().into_iter().collect();
    let before_b: HashMap<_, _> = b.stack.mib().snapshot().into_iter().collect();

    let addr = SocketAddrV4::new(ADDR_B, 5001);
    let listener = TcpListener::bind(&b.stack, addr, 4).expect("bind");
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut got = Vec::with_capacity(BYTES);
        s.read_to_end(&mut got).expect("read");
        got
    });
    let mut c = TcpStream::connect(&a.stack, addr).expect("connect");
    let data: Vec<u8> = (0..BYTES).map(byte).collect();
    c.write_all(&data).expect("write");
    c.shutdown(Shutdown::Write).expect("shutdown");
    let got = reader.join().expect("reader");
    assert!(got == data, "the stream arrived damaged");
    println!("{BYTES} bytes arrived intact over a link losing 2% of its frames");

    for (name, h, before) in [("sender (A)", &a, &before_a), ("receiver (B)", &b, &before_b)] {
        println!("\n{name}: counters that changed");
        for (n, v) in changed(h, before) {
            println!("  {n:<28}{v}");
        }
        let st = h.port.as_ref().expect("memlink port").stats();
        println!("  link: {} frames sent, {} lost, {} delivered", st.sent, st.lost, st.delivered);
    }
    let retrans = a.stack.mib().tcp_get(utcp::mib::TcpMib::RetransSegs);
    assert!(retrans > 0 || a.port.as_ref().unwrap().stats().lost == 0, "frames were lost but none resent");
}

fn main() {
    run();
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs_to_completion() {
        super::run();
    }
}
