//! The echo server and client of `echo.rs` on a multi-threaded tokio runtime, with
//! `utcp::tokio` sockets (the `tokio` feature).
//!
//! ```text
//! cargo run -p utcp --features tokio --example echo_tokio
//! ```
//!
//! The runtime is built with neither an I/O driver nor a timer: a task waiting on a utcp
//! socket is woken by the socket itself (its wait queue, as epoll is), and the stacks' own
//! threads run the timers.

use std::net::SocketAddrV4;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use utcp::api::{memlink_pair, ADDR_B};
use utcp::netdev::memlink::LinkConfig;
use utcp::tokio::{TcpListener, TcpStream};

const CLIENTS: usize = 8;

async fn serve(listener: TcpListener) {
    let mut echoers = Vec::new();
    for _ in 0..CLIENTS {
        let (mut s, peer) = listener.accept().await.expect("accept");
        echoers.push(tokio::spawn(async move {
            let (mut r, mut w) = s.split();
            let n = tokio::io::copy(&mut r, &mut w).await.expect("echo");
            println!("server: {peer} sent EOF after {n} bytes");
        }));
    }
    for e in echoers {
        e.await.expect("echo task");
    }
}

async fn client(i: usize, stack: std::sync::Arc<utcp::Stack>, addr: SocketAddrV4) {
    let c = TcpStream::connect(&stack, addr).await.expect("connect");
    // Owned halves: one task writes while this one reads the echo line by line.
    let (r, mut w) = c.into_split();
    let writer = tokio::spawn(async move {
        for line in 0..3 {
            w.write_all(format!("client {i}, line {line}\n").as_bytes()).await.expect("write");
        }
        w.shutdown().await.expect("shutdown"); // shutdown(SHUT_WR): the server reads EOF
    });
    let mut lines = BufReader::new(r).lines();
    let mut n = 0;
    while let Some(line) = lines.next_line().await.expect("read") {
        assert_eq!(line, format!("client {i}, line {n}"));
        println!("client {i} got back: {line}");
        n += 1;
    }
    assert_eq!(n, 3);
    writer.await.expect("writer task");
    let mut rest = Vec::new();
    lines.into_inner().read_to_end(&mut rest).await.expect("EOF");
}

fn run() {
    let (a, b) = memlink_pair(LinkConfig::default());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("runtime");
    rt.block_on(async {
        let addr = SocketAddrV4::new(ADDR_B, 7);
        let listener = TcpListener::bind(&b.stack, addr).await.expect("bind");
        println!("server listening on {}", listener.local_addr().expect("getsockname"));
        let server = tokio::spawn(serve(listener));
        let clients: Vec<_> = (0..CLIENTS).map(|i| tokio::spawn(client(i, a.stack.clone(), addr))).collect();
        for c in clients {
            c.await.expect("client task");
        }
        server.await.expect("server task");
    });
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
