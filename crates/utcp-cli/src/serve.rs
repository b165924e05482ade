//! `utcp serve`: echo, discard, or an HTTP/1.1 file server on a TUN device.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use parking_lot::Mutex;
use utcp::api::{TcpListener, TcpStream};
use utcp::socket::sock::Cancel;
use utcp::Stack;

use crate::tun_host::{run_until_signal, TunArgs, TunHost};

/// `utcp serve` flags.
#[derive(clap::Args, Debug)]
#[command(after_long_help = "Runs until SIGINT or SIGTERM, then closes its connections, completes the pcap, prints \
                             the counters (nstat format) and exits 0.")]
pub struct ServeArgs {
    #[command(flatten)]
    pub tun: TunArgs,
    /// TCP port to listen on
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// listen() backlog
    #[arg(long, default_value_t = 128)]
    pub backlog: i32,
    #[command(subcommand)]
    pub service: Service,
}

/// What to serve.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Service {
    /// Send back every byte received
    Echo,
    /// Read and drop every byte received
    Discard,
    /// HTTP/1.1 file server for DIR (GET and HEAD, keep-alive, 404)
    Http {
        /// Directory to serve
        dir: PathBuf,
    },
}

/// Open connections, so that a signal can shut them all down.
#[derive(Default)]
struct Conns {
    fds: Mutex<HashMap<i32, ()>>,
}

pub fn cmd_serve(a: &ServeArgs) -> Result<ExitCode, String> {
    utcp_tun::sys::catch_sigint_sigterm().map_err(|e| format!("sigaction: {e}"))?;
    let host = TunHost::start(&a.tun)?;
    let stack = host.stack.clone();
    // With an IPv6 address, one dual-stack listener on [::] takes both families (IPv4
    // clients as ::ffff:a.b.c.d), as a kernel server bound to [::] does.
    let any: std::net::SocketAddr = if stack.core.net.local_addr6().is_some() {
        std::net::SocketAddrV6::new(std::net::Ipv6Addr::UNSPECIFIED, a.port, 0, 0).into()
    } else {
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, a.port).into()
    };
    let listener = TcpListener::bind(&stack, any, a.backlog).map_err(|e| format!("listen on port {}: {e}", a.port))?;
    eprintln!("{}, serving {:?} on port {}", host.describe(), a.service, a.port);
    let conns = Arc::new(Conns::default());
    let cancel = Cancel::new();
    let service = a.service.clone();
    let (c2, k2, s2) = (conns.clone(), cancel.clone(), stack.clone());
    let r = run_until_signal(move || accept_loop(&s2, listener, &service, &c2, &k2), || cancel.cancel());
    // Close every connection as process exit would (FIN, or RST with unread data).
    for fd in conns.fds.lock().keys() {
        let _ = stack.shutdown(*fd, utcp::syscall::SHUT_RDWR);
    }
    host.finish()?;
    match r {
        Ok(Err(e)) => Err(e),
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn accept_loop(
    stack: &Arc<Stack>,
    listener: TcpListener,
    service: &Service,
    conns: &Arc<Conns>,
    cancel: &Cancel,
) -> Result<(), String> {
    loop {
        let (fd, _peer) = match stack.accept4_cancellable(listener.fd(), 0, Some(cancel)) {
            Ok(x) => x,
            Err(utcp::Errno::EINTR) => return Ok(()),
            Err(utcp::Errno::ECONNABORTED) => continue,
            Err(e) => return Err(format!("accept: {e:?}")),
        };
        let s = TcpStream::from_fd(stack, fd);
        conns.fds.lock().insert(fd, ());
        let (service, conns) = (service.clone(), conns.clone());
        std::thread::Builder::new()
            .name(format!("conn-{fd}"))
            .spawn(move || {
                let _ = serve_conn(s, &service);
                conns.fds.lock().remove(&fd);
            })
            .map_err(|e| format!("spawn: {e}"))?;
    }
}

fn serve_conn(mut s: TcpStream, service: &Service) -> std::io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    match service {
        Service::Echo => loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            s.write_all(&buf[..n])?;
        },
        Service::Discard => loop {
            if s.read(&mut buf)? == 0 {
                return Ok(());
            }
        },
        Service::Http { dir } => crate::http::serve_http(&mut s, dir, &mut buf),
    }
}

/// The file under `dir` that URL path `path` names, refusing anything that leaves `dir`.
pub fn resolve(dir: &Path, path: &str) -> Option<PathBuf> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut out = dir.to_path_buf();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => out.push(crate::http::percent_decode(p)?),
        }
    }
    if out.is_dir() {
        out.push("index.html");
    }
    Some(out)
}
