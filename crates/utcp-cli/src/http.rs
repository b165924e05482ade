//! A small HTTP/1.1 server (GET, HEAD, Content-Length, keep-alive, 404) and client (GET with
//! Content-Length, chunked or read-to-close bodies), over any `Read + Write` stream.

use std::io::{self, Read, Write};
use std::path::Path;

/// Longest request or response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// A parsed request or response head.
#[derive(Debug, Default)]
pub struct Head {
    /// Request: method, target, version. Response: version, status, reason.
    pub start: [String; 3],
    /// Header fields, names lower-cased.
    pub fields: Vec<(String, String)>,
}

impl Head {
    /// The first value of field `name` (lower case).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.field(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }
}

/// Bytes read past a head, kept for the next read.
pub struct Conn<S> {
    /// The stream.
    pub s: S,
    buf: Vec<u8>,
    pos: usize,
}

impl<S: Read + Write> Conn<S> {
    /// Wraps `s`.
    pub fn new(s: S) -> Conn<S> {
        Conn { s, buf: Vec::new(), pos: 0 }
    }

    /// Reads one head; `Ok(None)` on a clean EOF before any byte of it.
    pub fn read_head(&mut self) -> io::Result<Option<Head>> {
        loop {
            if let Some(end) = find(&self.buf[self.pos..], b"\r\n\r\n") {
                let text = String::from_utf8_lossy(&self.buf[self.pos..self.pos + end]).into_owned();
                self.pos += end + 4;
                return parse_head(&text).map(Some).ok_or_else(|| bad("malformed head"));
            }
            if self.buf.len() - self.pos > MAX_HEAD {
                return Err(bad("head too long"));
            }
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.s.read(&mut chunk)?;
            if n == 0 {
                return if self.buf.is_empty() { Ok(None) } else { Err(bad("EOF inside a head")) };
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads up to `out.len()` body bytes (buffered ones first); 0 at EOF.
    pub fn read_some(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.buf.len() {
            let n = (self.buf.len() - self.pos).min(out.len());
            out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.s.read(out)
    }

    fn read_line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            if self.read_some(&mut b)? == 0 {
                return Err(bad("EOF in chunked body"));
            }
            line.push(b[0]);
            if line.len() > 4096 {
                return Err(bad("chunk line too long"));
            }
        }
        line.truncate(line.len() - 2);
        Ok(String::from_utf8_lossy(&line).into_owned())
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn bad(m: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m)
}

fn parse_head(text: &str) -> Option<Head> {
    let mut lines = text.split("\r\n");
    let mut start = lines.next()?.splitn(3, ' ');
    let mut h = Head::default();
    for s in h.start.iter_mut() {
        *s = start.next().unwrap_or("").to_string();
    }
    if h.start[1].is_empty() {
        return None;
    }
    for l in lines {
        let (n, v) = l.split_once(':')?;
        h.fields.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Some(h)
}

/// `%XX` decoding of one path segment; `None` for a bad escape or a `/` or NUL inside it.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    let s = String::from_utf8(out).ok()?;
    (!s.contains(['/', '\0']) && s != "..").then_some(s)
}

/// Serves requests on one connection until the client closes or asks to close.
pub fn serve_http<S: Read + Write>(s: S, dir: &Path, buf: &mut [u8]) -> io::Result<()> {
    let mut c = Conn::new(s);
    while let Some(req) = c.read_head()? {
        let [method, target, version] = &req.start;
        let http10 = version == "HTTP/1.0";
        let keep =
            if http10 { req.has_token("connection", "keep-alive") } else { !req.has_token("connection", "close") };
        // Request bodies (not used by GET/HEAD) are read and dropped.
        if let Some(n) = req.field("content-length").and_then(|v| v.parse::<u64>().ok()) {
            let mut left = n;
            while left > 0 {
                let want = left.min(buf.len() as u64) as usize;
                let k = c.read_some(&mut buf[..want])?;
                if k == 0 {
                    return Ok(());
                }
                left -= k as u64;
            }
        }
        let conn_hdr = match (keep, http10) {
            (false, _) => "Connection: close\r\n",
            (true, true) => "Connection: keep-alive\r\n",
            (true, false) => "",
        };
        let head_only = method == "HEAD";
        if method != "GET" && !head_only {
            let body = "method not allowed\n";
            write!(
                c.s,
                "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Type: text/plain\r\nContent-Length: \
                 {}\r\n{conn_hdr}\r\n{body}",
                body.len()
            )?;
        } else {
            let file = crate::serve::resolve(dir, target).and_then(|p| std::fs::File::open(&p).ok());
            let len = file.as_ref().and_then(|f| f.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len());
            match (file, len) {
                (Some(mut f), Some(len)) => {
                    write!(
                        c.s,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: \
                         {len}\r\n{conn_hdr}\r\n"
                    )?;
                    if !head_only {
                        let mut left = len;
                        while left > 0 {
                            let want = left.min(buf.len() as u64) as usize;
                            let n = f.read(&mut buf[..want])?;
                            if n == 0 {
                                return Err(bad("file shrank while being sent"));
                            }
                            c.s.write_all(&buf[..n])?;
                            left -= n as u64;
                        }
                    }
                }
                _ => {
                    let body = "not found\n";
                    write!(
                        c.s,
                        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{conn_hdr}\r\n",
                        body.len()
                    )?;
                    if !head_only {
                        c.s.write_all(body.as_bytes())?;
                    }
                }
            }
        }
        if !keep {
            return Ok(());
        }
    }
    Ok(())
}

/// A parsed `http://HOST:PORT/PATH` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Server address (`A.B.C.D` or `[IPV6]`).
    pub addr: std::net::SocketAddr,
    /// Host as written (for the Host field).
    pub host: String,
    /// Path and query.
    pub path: String,
}

/// Parses an `http://` URL whose host is an IPv4 address (utcp resolves no names).
pub fn parse_url(s: &str) -> Result<Url, String> {
    let rest = s.strip_prefix("http://").ok_or_else(|| format!("{s:?}: only http:// URLs are supported"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    // An IPv6 host is bracketed (RFC 3986): [fd77::1]:8000.
    let (host, port) = match hostport.strip_prefix('[') {
        Some(r) => {
            let (h, after) = r.split_once(']').ok_or_else(|| format!("{hostport:?}: no closing ]"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse::<u16>().map_err(|e| format!("port {p:?}: {e}"))?,
                None if after.is_empty() => 80,
                None => return Err(format!("{hostport:?}: bad host")),
            };
            (h, port)
        }
        None => match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|e| format!("port {p:?}: {e}"))?),
            None => (hostport, 80),
        },
    };
    let bracketed = hostport.starts_with('[');
    let ip: std::net::IpAddr = match host.parse() {
        Ok(std::net::IpAddr::V6(a)) if bracketed => a.into(),
        Ok(std::net::IpAddr::V4(a)) if !bracketed => a.into(),
        _ => return Err(format!("{host:?}: the host must be an IPv4 address or a bracketed IPv6 one")),
    };
    Ok(Url { addr: std::net::SocketAddr::new(ip, port), host: hostport.to_string(), path: path.to_string() })
}

/// Sends `GET url` and copies the body into `out`, calling `progress(done, total)` as it goes.
/// Returns the status code and the body length.
pub fn get<S: Read + Write>(
    s: S,
    url: &Url,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> io::Result<(u16, u64)> {
    let mut c = Conn::new(s);
    write!(c.s, "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: utcp\r\nConnection: close\r\n\r\n", url.path, url.host)?;
    let head = c.read_head()?.ok_or_else(|| bad("connection closed before a response"))?;
    let status: u16 = head.start[1].parse().map_err(|_| bad("bad status line"))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut done = 0u64;
    if head.has_token("transfer-encoding", "chunked") {
        loop {
            let line = c.read_line()?;
            let size = u64::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                break;
            }
            let mut left = size;
            while left > 0 {
                let want = left.min(buf.len() as u64) as usize;
                let n = c.read_some(&mut buf[..want])?;
                if n == 0 {
                    return Err(bad("EOF inside a chunk"));
                }
                out.write_all(&buf[..n])?;
                left -= n as u64;
                done += n as u64;
                progress(done, None);
            }
            c.read_line()?;
        }
        return Ok((status, done));
    }
    let total = head.field("content-length").map(|v| v.parse::<u64>().map_err(|_| bad("bad Content-Length")));
    let total = total.transpose()?;
    loop {
        let want = match total {
            Some(t) if done >= t => break,
            Some(t) => (t - done).min(buf.len() as u64) as usize,
            None => buf.len(),
        };
        let n = c.read_some(&mut buf[..want])?;
        if n == 0 {
            if total.is_some() {
                return Err(bad("connection closed before the whole body arrived"));
            }
            break;
        }
        out.write_all(&buf[..n])?;
        done += n as u64;
        progress(done, total);
    }
    Ok((status, done))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn url_and_paths() {
        let u = parse_url("http://10.77.0.1:8000/a/b?x=1").unwrap();
        assert_eq!(u.addr, "10.77.0.1:8000".parse().unwrap());
        assert_eq!(u.path, "/a/b?x=1");
        assert_eq!(parse_url("http://10.0.0.1").unwrap().path, "/");
        assert!(parse_url("https://10.0.0.1/").is_err());
        assert!(parse_url("http://example.com/").is_err());
        let u = parse_url("http://[fd77::1]:8000/big").unwrap();
        assert_eq!(
            (u.addr, u.host.as_str(), u.path.as_str()),
            ("[fd77::1]:8000".parse().unwrap(), "[fd77::1]:8000", "/big")
        );
        assert_eq!(parse_url("http://[fd77::1]/").unwrap().addr.port(), 80);
        assert!(parse_url("http://fd77::1/").is_err());
        assert!(parse_url("http://[10.0.0.1]/").is_err());
        let d = Path::new("/srv");
        assert_eq!(crate::serve::resolve(d, "/a%20b?q").unwrap(), Path::new("/srv/a b"));
        assert!(crate::serve::resolve(d, "/../etc/passwd").is_none());
        assert!(crate::serve::resolve(d, "/%2e%2e/x").is_none());
        assert!(crate::serve::resolve(d, "/a%2fb").is_none());
    }

    #[test]
    fn server_and_client_over_a_socketpair() {
        let dir = std::env::temp_dir().join(format!("utcp-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
        std::fs::write(dir.join("f"), &data).unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        let d2 = dir.clone();
        let srv = std::thread::spawn(move || serve_http(b, &d2, &mut vec![0u8; 4096]));
        let mut c = Conn::new(a);
        // Keep-alive: three requests on one connection, then close.
        write!(c.s, "HEAD /f HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let h = c.read_head().unwrap().unwrap();
        assert_eq!((h.start[1].as_str(), h.field("content-length")), ("200", Some("300000")));
        let h = c.read_head().unwrap().unwrap();
        assert_eq!(h.start[1], "404");
        let mut body = [0u8; 10];
        assert_eq!(c.read_some(&mut body).unwrap(), 10);
        assert_eq!(&body, b"not found\n");
        let url = parse_url("http://1.2.3.4/f").unwrap();
        let mut out = Vec::new();
        let (st, n) = get(&mut c.s, &url, &mut out, &mut |_, _| {}).unwrap();
        assert_eq!((st, n), (200, 300_000));
        assert!(out == data);
        srv.join().unwrap().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
