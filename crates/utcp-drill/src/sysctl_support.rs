//! Which sysctls a script may set when it runs against utcp: the stack's own table
//! ([`utcp::sysctl::SYSCTLS`]; `Sysctls::set_by_name` itself refuses a value it would not
//! honour), re-exported with the reason a script fails with ([`check_write`]).
//!
//! The tests at the bottom pin the table to the stack's sources: every [`Support::Read`] knob
//! exists and is read in the file named, no other knob is read anywhere, and no knob is missing.

#[cfg(test)]
use utcp::sysctl::Sysctls;
pub use utcp::sysctl::{check_write, honoured, support, Support, SYSCTLS};
#[cfg(test)]
use Support::*;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    const UTCP_SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../utcp/src");

    /// The knob's field in `Sysctls` (the last component of its name).
    fn field(name: &str) -> &str {
        name.rsplit('.').next().unwrap_or(name)
    }

    /// `text` reads the knob: `NAME.get()` or `NAME.idx(` with `NAME` a whole word.
    fn reads(text: &str, name: &str) -> bool {
        let f = field(name);
        [".get()", ".idx("].iter().any(|m| {
            let pat = format!("{f}{m}");
            text.match_indices(&pat)
                .any(|(i, _)| !text[..i].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_'))
        })
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("crates/utcp/src") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("sysctl.rs") {
                out.push(p);
            }
        }
    }

    /// Every knob of the stack's table, by name.
    fn stack_knobs() -> Vec<String> {
        Sysctls::default().dump().lines().filter_map(|l| l.split(" = ").next()).map(str::to_string).collect()
    }

    #[test]
    fn honoured_sysctls_are_in_the_stacks_table_and_read_where_named() {
        let s = Sysctls::default();
        for (name, sup) in SYSCTLS {
            let Read(file) = sup else { continue };
            assert!(s.knob(name).is_some(), "{name} is listed as honoured but is not in utcp's sysctl table");
            let text = std::fs::read_to_string(Path::new(UTCP_SRC).join(file)).expect(file);
            assert!(reads(&text, name), "{name} is listed as read in {file}, which does not read it");
        }
        assert!(honoured().count() >= 30);
    }

    #[test]
    fn every_stack_knob_is_classified_and_only_read_ones_are_read() {
        let mut files = Vec::new();
        rust_files(Path::new(UTCP_SRC), &mut files);
        let texts: Vec<(PathBuf, String)> =
            files.into_iter().map(|p| (p.clone(), std::fs::read_to_string(&p).expect("source"))).collect();
        for name in stack_knobs() {
            let sup = support(&name).unwrap_or_else(|| panic!("{name}: add it to SYSCTLS"));
            if matches!(sup, Read(_)) {
                continue;
            }
            if let Some((p, _)) = texts.iter().find(|(_, t)| reads(t, &name)) {
                panic!("{name} is now read in {}: list it as Read", p.display());
            }
        }
        // A name without a knob has no default to keep: it is either inert or fixed.
        for (name, sup) in SYSCTLS {
            if Sysctls::default().knob(name).is_none() {
                assert!(matches!(sup, BehavesAs(..) | Inert(_)), "{name}: no knob, so no default to keep");
            }
        }
    }

    #[test]
    fn writes_are_checked() {
        assert!(check_write("net.ipv4.tcp_rmem", "4096 540000 15728640").is_ok());
        let e = check_write("net.ipv4.tcp_ecn", "1").unwrap_err();
        assert!(e.starts_with("sysctl net.ipv4.tcp_ecn=1 is not supported by utcp"), "{e}");
        assert!(check_write("net.ipv4.tcp_ecn", "0").is_ok(), "ECN off is what utcp does");
        assert!(check_write("net.ipv4.tcp_ecn", "2").is_ok(), "the default");
        assert!(check_write("net.ipv4.tcp_shrink_window", "1").is_ok(), "honoured");
        assert!(check_write("net.ipv4.tcp_challenge_ack_limit", "5").is_ok(), "honoured");
        assert!(check_write("net.ipv4.tcp_notsent_lowat", "4294967295").is_ok());
        assert!(check_write("net.ipv4.tcp_notsent_lowat", "16384").is_ok(), "honoured");
        assert!(check_write("net.ipv4.tcp_fastopen", "0x70403").is_ok());
        assert!(check_write("net.ipv4.tcp_syncookies", "0x1").is_ok());
        assert!(check_write("net.ipv4.tcp_syncookies", "2").is_ok(), "honoured");
        assert!(check_write("net.ipv4.tcp_congestion_control", "cubic").is_ok());
        assert!(check_write("net.ipv4.tcp_congestion_control", "reno").is_ok());
        assert!(check_write("net.ipv4.tcp_congestion_control", "bbr").is_ok());
        // Modules utcp lacks: the stack itself refuses them.
        assert!(Sysctls::default().set_by_name("net.ipv4.tcp_congestion_control", "vegas").is_err());
        assert!(check_write("net.ipv4.no_such_knob", "1").is_ok(), "left to the stack");
    }
}
