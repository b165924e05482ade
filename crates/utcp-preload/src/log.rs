//! `UTCP_LOG=FILTER`: the stack's tracing events (and the library's own, target
//! `utcp_preload`) through tracing-subscriber's `fmt` layer, filtered with its `EnvFilter`
//! syntax (`UTCP_LOG=inet_sock_set_state=trace,utcp_preload=debug`, `UTCP_LOG=trace`, …), to
//! stderr or, with `UTCP_LOG_FILE=PATH` (`%p` becomes the pid), appended to that file.
//! Installed when the stack is created (the first TCP `socket()`); without `UTCP_LOG` there is
//! no subscriber and an event costs a disabled callsite's check. A filter that does not parse,
//! or a file that cannot be opened, is said once on stderr and the program runs without tracing.
// DEVIATION(linux): the log file takes an fd number (close-on-exec) in the traced process.

use std::sync::Mutex;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::EnvFilter;

/// Where the events go.
#[derive(Debug, PartialEq, Eq)]
pub enum Sink {
    /// Standard error.
    Stderr,
    /// This file (appended to).
    File(String),
}

/// The filter and sink the environment's values ask for; `Ok(None)` without `UTCP_LOG` (or
/// with it empty).
pub fn parse(log: Option<&str>, file: Option<&str>, pid: u32) -> Result<Option<(EnvFilter, Sink)>, String> {
    let Some(spec) = log.filter(|s| !s.trim().is_empty()) else { return Ok(None) };
    let filter = EnvFilter::builder().parse(spec).map_err(|e| format!("UTCP_LOG={spec:?}: {e}"))?;
    let sink = match file {
        Some(f) if !f.is_empty() => Sink::File(crate::state::stat_path(f, pid)),
        _ => Sink::Stderr,
    };
    Ok(Some((filter, sink)))
}

/// Installs the subscriber `UTCP_LOG`/`UTCP_LOG_FILE` ask for (once; later calls, or a
/// program that installed its own global subscriber, change nothing).
pub fn init_from_env() {
    let env = |k: &str| std::env::var(k).ok();
    let (filter, sink) = match parse(env("UTCP_LOG").as_deref(), env("UTCP_LOG_FILE").as_deref(), std::process::id()) {
        Ok(Some(x)) => x,
        Ok(None) => return,
        Err(e) => {
            eprintln!("utcp-preload: {e}; no tracing");
            return;
        }
    };
    let writer = match &sink {
        Sink::Stderr => BoxMakeWriter::new(std::io::stderr),
        Sink::File(p) => match std::fs::OpenOptions::new().create(true).append(true).open(p) {
            Ok(f) => BoxMakeWriter::new(Mutex::new(f)),
            Err(e) => {
                eprintln!("utcp-preload: UTCP_LOG_FILE={p:?}: {e}; no tracing");
                return;
            }
        },
    };
    let sub = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .with_thread_ids(true)
        .finish();
    let _ = tracing::subscriber::set_global_default(sub);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_and_sink_from_env_values() {
        assert!(parse(None, Some("/tmp/x"), 1).unwrap().is_none());
        assert!(parse(Some(" "), None, 1).unwrap().is_none());
        let (f, s) = parse(Some("inet_sock_set_state=trace,utcp_preload=debug"), None, 1).unwrap().unwrap();
        assert_eq!(s, Sink::Stderr);
        assert!(f.to_string().contains("inet_sock_set_state=trace"), "{f}");
        let (_, s) = parse(Some("debug"), Some("/tmp/utcp.%p.log"), 42).unwrap().unwrap();
        assert_eq!(s, Sink::File("/tmp/utcp.42.log".into()));
        assert!(parse(Some("tcp=notalevel"), None, 1).is_err());
    }
}
