//! The import direction of the crate's layers (syscall → stack → socket → tcp → ip → netdev →
//! wire): `socket/` and `tcp/` reach their stack only through `socket::sock_host::SockHost`,
//! never `crate::stack`, and no layer names a module above it. Checked on the source text,
//! comments and string literals removed.

use std::path::{Path, PathBuf};

/// The source files under `src/<dir>`, recursively.
fn rust_files(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let mut out = Vec::new();
    let mut todo = vec![root.clone()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    assert!(!out.is_empty(), "no source files under {}", root.display());
    out
}

/// `src` without comments (line, block, doc) and the contents of string and char literals.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') && b.get(i + 1) != Some(&b'\\') => {
                i += 3;
                out.push_str("' '");
            }
            b'\'' if b.get(i + 1) == Some(&b'\\') => {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            c => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    out
}

/// How `code` names module `module` of the crate: a `crate::module` path, a
/// `crate::{.., module, ..}` group, or one of `names` (types it defines).
fn hits_in(code: &str, module: &str, names: &[&str]) -> Vec<String> {
    let flat: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
    let squeezed: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let mut hits = Vec::new();
    if squeezed.contains(&format!("crate::{module}::")) || squeezed.contains(&format!("crate::{module};")) {
        hits.push(format!("crate::{module}"));
    }
    // `use crate::{a, module, b}` and `use crate::{module::X}`.
    let mut rest = squeezed.as_str();
    while let Some(at) = rest.find("crate::{") {
        let group = &rest[at + 8..];
        let end = group.find('}').unwrap_or(group.len());
        if group[..end].split([',', ':', '{']).any(|p| p == module) {
            hits.push(format!("crate::{{{module}}}"));
        }
        rest = &group[end..];
    }
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    for n in names {
        if flat
            .match_indices(n)
            .any(|(i, _)| !flat[..i].ends_with(is_ident) && !flat[i + n.len()..].starts_with(is_ident))
        {
            hits.push(n.to_string());
        }
    }
    hits
}

/// The files under `src/<dir>` that name `module` (see [`hits_in`]), with what they name.
fn offenders(dir: &str, module: &str, names: &[&str]) -> Vec<String> {
    let mut bad = Vec::new();
    for f in rust_files(dir) {
        let src = std::fs::read_to_string(&f).expect("read");
        let hits = hits_in(&code_only(&src), module, names);
        if !hits.is_empty() {
            bad.push(format!("{}: {}", f.display(), hits.join(", ")));
        }
    }
    bad
}

/// The layers below the stack, each with the modules above it that it must not name.
/// `tcp/` still takes the socket lock and segment types from `socket/` (see
/// docs/ARCHITECTURE.md), so `socket` is not listed for it.
const BELOW: &[(&str, &[&str])] = &[
    ("socket", &["syscall", "stack", "host", "api", "sim"]),
    ("tcp", &["syscall", "stack", "host", "api", "sim"]),
    ("ip", &["syscall", "stack", "socket", "tcp", "host", "api", "sim"]),
    ("netdev", &["syscall", "stack", "socket", "tcp", "ip", "host", "api", "sim"]),
    ("wire", &["syscall", "stack", "socket", "tcp", "ip", "netdev", "host", "api", "sim"]),
];

#[test]
fn socket_and_tcp_do_not_import_the_stack() {
    for dir in ["socket", "tcp"] {
        let bad = offenders(dir, "stack", &["StackCore"]);
        assert!(bad.is_empty(), "{dir}/ reaches the stack other than through SockHost:\n{}", bad.join("\n"));
    }
}

#[test]
fn no_layer_imports_one_above_it() {
    let mut bad = Vec::new();
    for (dir, above) in BELOW {
        for m in *above {
            bad.extend(offenders(dir, m, &[]).into_iter().map(|b| format!("{dir}/ names {m}: {b}")));
        }
    }
    assert!(bad.is_empty(), "imports against the layer order:\n{}", bad.join("\n"));
}

#[test]
fn the_checker_sees_each_spelling_of_an_import_and_skips_comments_and_strings() {
    let hits = |src: &str| hits_in(&code_only(src), "stack", &["StackCore"]);
    assert!(hits("use crate::stack::StackCore;").contains(&"crate::stack".to_string()));
    assert!(hits("use crate::stack;").contains(&"crate::stack".to_string()));
    assert!(hits("use crate::{ip, stack};").contains(&"crate::{stack}".to_string()));
    assert!(hits("use crate::{ip::X, stack::Y};").contains(&"crate::{stack}".to_string()));
    assert!(hits("fn f(c: &StackCore) {}").contains(&"StackCore".to_string()));
    assert!(hits("// crate::stack::StackCore\n/* crate::stack */ let s = \"crate::stack\";").is_empty());
    assert!(hits("let q = '\"'; let x = MyStackCore; let y = host_stack::f();").is_empty());
    assert!(hits("let q = '\"'; use crate::stack::X;").contains(&"crate::stack".to_string()));
}

/// The modules of the documented API (issue 14); every other `pub mod` of the crate root is
/// `#[doc(hidden)]` internals, reachable by utcp's own crates and tests only.
const STABLE_MODULES: &[&str] = &["api", "errno", "mib", "netdev", "sim", "syscall", "sysctl", "time", "tokio", "uapi"];

#[test]
fn the_crate_root_documents_only_the_stable_modules_and_denies_leaks() {
    let src = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).expect("lib.rs");
    assert!(
        src.contains("#![warn(missing_docs, unreachable_pub)]"),
        "lib.rs must keep #![warn(missing_docs, unreachable_pub)]: a pub item must be reachable and documented"
    );
    let lines: Vec<&str> = src.lines().map(str::trim).collect();
    let mut seen = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(name) = l.strip_prefix("pub mod ").and_then(|r| r.strip_suffix(';')) else { continue };
        // The attributes right above the declaration (`#[cfg(...)]`, `#[doc(hidden)]`).
        let attrs: Vec<&str> = lines[..i].iter().rev().take_while(|a| a.starts_with("#[")).copied().collect();
        let hidden = attrs.contains(&"#[doc(hidden)]");
        let stable = STABLE_MODULES.contains(&name);
        assert!(
            stable != hidden,
            "module `{name}`: stable modules are documented, every other pub module is #[doc(hidden)]"
        );
        seen.push(name);
    }
    for m in STABLE_MODULES {
        assert!(seen.contains(m), "stable module `{m}` is not a pub module of lib.rs");
    }
    assert!(seen.len() > STABLE_MODULES.len(), "the internals are no longer declared in lib.rs?");
}
