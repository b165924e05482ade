//! `utcp connect`: the clients of `utcp serve` (echo, discard, HTTP GET) on a TUN device.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use utcp::api::TcpStream;

use crate::tun_host::{run_until_signal, TunArgs, TunHost};

/// `utcp connect` flags.
#[derive(clap::Args, Debug)]
#[command(
    after_long_help = "Exit status: 0 when the transfer completed (echo: the bytes came back equal; http: a 2xx \
                             status); 1 otherwise; 128+N when interrupted by signal N (the pcap is complete)."
)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub tun: TunArgs,
    #[command(subcommand)]
    pub client: Client,
}

/// Which client.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Client {
    /// Send SIZE bytes to an echo server and check that they come back unchanged
    Echo {
        /// Server address, e.g. 10.77.0.1:7 or [fd77::1]:7
        to: SocketAddr,
        /// Bytes to send (e.g. 1M)
        #[arg(long, default_value = "64K", value_parser = crate::units::parse_size)]
        bytes: u64,
    },
    /// Send SIZE bytes to a discard (or any) server, then close
    Discard {
        /// Server address
        to: SocketAddr,
        /// Bytes to send (e.g. 1G)
        #[arg(long, default_value = "64M", value_parser = crate::units::parse_size)]
        bytes: u64,
    },
    /// HTTP/1.1 GET of URL (http://A.B.C.D:PORT/PATH or http://[IPV6]:PORT/PATH)
    Http {
        /// The URL
        url: String,
        /// File the body is written to
        #[arg(long, short = 'o', value_name = "FILE")]
        output: PathBuf,
    },
}

fn pattern(off: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let x = off + i as u64;
        *b = (x ^ (x >> 8) ^ (x >> 16)) as u8;
    }
}

struct Progress {
    on: bool,
    last: Instant,
    start: Instant,
}

impl Progress {
    fn new() -> Progress {
        let now = Instant::now();
        Progress { on: utcp_tun::sys::stderr_is_tty(), last: now, start: now }
    }
    fn show(&mut self, done: u64, total: Option<u64>) {
        if !self.on || self.last.elapsed() < Duration::from_millis(250) {
            return;
        }
        self.last = Instant::now();
        let rate = done as f64 / self.start.elapsed().as_secs_f64().max(1e-9) / 1e6;
        match total {
            Some(t) => {
                eprint!("\r{done} / {t} bytes ({:.0}%), {rate:.1} MB/s   ", done as f64 * 100.0 / t.max(1) as f64)
            }
            None => eprint!("\r{done} bytes, {rate:.1} MB/s   "),
        }
    }
    fn end(&self) {
        if self.on {
            eprintln!();
        }
    }
}

fn run_client(stack: &std::sync::Arc<utcp::Stack>, client: &Client) -> Result<(), String> {
    let connect = |to: SocketAddr| TcpStream::connect(stack, to).map_err(|e| format!("connect {to}: {e}"));
    let mut prog = Progress::new();
    let r = match client {
        Client::Echo { to, bytes } => {
            let s = connect(*to)?;
            let mut w = TcpStream::from_fd(stack, stack.dup(s.fd()).map_err(|e| format!("dup: {e:?}"))?);
            let total = *bytes;
            let writer = std::thread::spawn(move || -> std::io::Result<()> {
                let mut buf = vec![0u8; 64 * 1024];
                let mut off = 0;
                while off < total {
                    let n = (total - off).min(buf.len() as u64) as usize;
                    pattern(off, &mut buf[..n]);
                    w.write_all(&buf[..n])?;
                    off += n as u64;
                }
                w.shutdown(std::net::Shutdown::Write)
            });
            let mut r = s;
            let (mut got, mut buf, mut want) = (0u64, vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
            loop {
                let n = r.read(&mut buf).map_err(|e| format!("recv: {e}"))?;
                if n == 0 {
                    break;
                }
                pattern(got, &mut want[..n]);
                if buf[..n] != want[..n] {
                    return Err(format!("echo: bytes differ in {got}..{}", got + n as u64));
                }
                got += n as u64;
                prog.show(got, Some(total));
            }
            writer.join().map_err(|_| "writer panicked".to_string())?.map_err(|e| format!("send: {e}"))?;
            if got != total {
                return Err(format!("echo: {got} of {total} bytes came back"));
            }
            eprintln!("echo: {total} bytes sent and received intact");
            Ok(())
        }
        Client::Discard { to, bytes } => {
            let mut s = connect(*to)?;
            let mut buf = vec![0u8; 256 * 1024];
            let mut off = 0;
            while off < *bytes {
                let n = (*bytes - off).min(buf.len() as u64) as usize;
                pattern(off, &mut buf[..n]);
                s.write_all(&buf[..n]).map_err(|e| format!("send: {e}"))?;
                off += n as u64;
                prog.show(off, Some(*bytes));
            }
            s.shutdown(std::net::Shutdown::Write).map_err(|e| format!("shutdown: {e}"))?;
            // Wait for the server's FIN so every byte has been acknowledged.
            while s.read(&mut buf).map_err(|e| format!("recv: {e}"))? > 0 {}
            eprintln!("discard: {bytes} bytes sent");
            Ok(())
        }
        Client::Http { url, output } => {
            let u = crate::http::parse_url(url)?;
            let s = connect(u.addr)?;
            let mut out = std::io::BufWriter::with_capacity(
                1 << 20,
                std::fs::File::create(output).map_err(|e| format!("{}: {e}", output.display()))?,
            );
            let (status, n) = crate::http::get(s, &u, &mut out, &mut |d, t| prog.show(d, t))
                .map_err(|e| format!("GET {url}: {e}"))?;
            out.flush().map_err(|e| format!("{}: {e}", output.display()))?;
            eprintln!("http: {status}, {n} bytes");
            if (200..300).contains(&status) {
                Ok(())
            } else {
                Err(format!("GET {url}: status {status}"))
            }
        }
    };
    prog.end();
    r
}

pub fn cmd_connect(a: &ConnectArgs) -> Result<ExitCode, String> {
    utcp_tun::sys::catch_sigint_sigterm().map_err(|e| format!("sigaction: {e}"))?;
    let host = TunHost::start(&a.tun)?;
    let to = match &a.client {
        Client::Echo { to, .. } | Client::Discard { to, .. } => to.ip(),
        Client::Http { url, .. } => crate::http::parse_url(url)?.addr.ip(),
    };
    if !host.on_link(to) {
        let net = match (to, a.tun.addr6) {
            (std::net::IpAddr::V6(_), Some((a6, n))) => format!("{a6}/{n}"),
            (std::net::IpAddr::V6(_), None) => "any IPv6 subnet (no --addr6)".to_string(),
            _ => format!("{}/{}", a.tun.addr.0, a.tun.addr.1),
        };
        return Err(format!("{to}: not on {net} (utcp has no gateway)"));
    }
    eprintln!("{}", host.describe());
    let (stack, client) = (host.stack.clone(), a.client.clone());
    let r = run_until_signal(move || run_client(&stack, &client), || {});
    let fin = host.finish();
    match r {
        Ok(Ok(())) => fin.map(|_| ExitCode::SUCCESS),
        Ok(Err(e)) => Err(e),
        Err(sig) => {
            eprintln!("utcp: interrupted by signal {sig}");
            Ok(ExitCode::from(128 + sig as u8))
        }
    }
}
