//! An echo server and its client on std threads, over two utcp stacks joined by an in-memory
//! wire (memlink), in real time.
//!
//! ```text
//! cargo run -p utcp --example echo
//! ```
//!
//! The server accepts `CLIENTS` connections, one thread each, and echoes what it reads until
//! EOF; each client sends a few lines, reads them back, shuts its write side down (the server
//! then reads EOF and closes) and reads EOF itself.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddrV4};
use utcp::api::{memlink_pair, TcpListener, TcpStream, ADDR_B};
use utcp::netdev::memlink::LinkConfig;

const CLIENTS: usize = 4;

fn run() {
    // Host A (192.0.2.1) and host B (192.0.2.2), each with its timer and NAPI threads.
    let (a, b) = memlink_pair(LinkConfig::default());
    let addr = SocketAddrV4::new(ADDR_B, 7);
    let listener = TcpListener::bind(&b.stack, addr, 16).expect("bind");
    println!("server listening on {}", listener.local_addr().expect("getsockname"));

    let server = std::thread::spawn(move || {
        let mut echoers = Vec::new();
        for _ in 0..CLIENTS {
            let (mut s, peer) = listener.accept().expect("accept");
            echoers.push(std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut echoed = 0;
                loop {
                    let n = s.read(&mut buf).expect("read");
                    if n == 0 {
                        break; // the client shut its write side down
                    }
                    s.write_all(&buf[..n]).expect("write");
                    echoed += n;
                }
                println!("server: {peer} sent EOF after {echoed} bytes");
            }));
        }
        for e in echoers {
            e.join().expect("echo thread");
        }
    });

    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let stack = a.stack.clone();
            std::thread::spawn(move || {
                let mut c = TcpStream::connect(&stack, addr).expect("connect");
                for line in 0..3 {
                    let msg = format!("client {i}, line {line}\n");
                    c.write_all(msg.as_bytes()).expect("write");
                    let mut back = vec![0u8; msg.len()];
                    c.read_exact(&mut back).expect("read");
                    assert_eq!(back, msg.as_bytes());
                    print!("client {i} got back: {msg}");
                }
                c.shutdown(Shutdown::Write).expect("shutdown");
                let mut rest = Vec::new();
                c.read_to_end(&mut rest).expect("read to EOF");
                assert!(rest.is_empty());
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client thread");
    }
    server.join().expect("server thread");
    println!("done: {CLIENTS} clients echoed");
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
