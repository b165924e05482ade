//! A C program built with `-O2 -D_FORTIFY_SOURCE=2` (tests/c/hooks.c) under the library:
//! recvmmsg, sendmmsg, splice (socket ↔ pipe, and every refusal), pselect, epoll_pwait2 (each
//! also asleep until another thread's write wakes it, and interrupted by a signal with and
//! without SA_RESTART) and
//! the fortify variants (`__read_chk`, `__recv_chk`, `__recvfrom_chk`, `__poll_chk`,
//! `__ppoll_chk`), line for line as on the kernel in the same run; and every libc function the
//! program imports (`nm -D`) is either hooked by the library or one that touches no socket.
//! Skipped, with a message, where cc or nm is missing.

mod common;

use common::{have, shared_object, stat_dir, stats};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Imports of hooks.c that touch no socket, each with the reason.
const NOT_SOCKET_CALLS: &[(&str, &str)] = &[
    ("_ITM_deregisterTMCloneTable", "toolchain (weak)"),
    ("_ITM_registerTMCloneTable", "toolchain (weak)"),
    ("__gmon_start__", "toolchain (weak)"),
    ("__cxa_finalize", "process exit"),
    ("__libc_start_main", "process start"),
    ("exit", "process exit"),
    ("__errno_location", "errno"),
    ("__printf_chk", "stdio"),
    ("__fprintf_chk", "stdio"),
    ("printf", "stdio"),
    ("fprintf", "stdio"),
    ("puts", "stdio"),
    ("perror", "stdio"),
    ("setvbuf", "stdio"),
    ("memcmp", "memory"),
    ("strcmp", "strings"),
    ("strncmp", "strings"),
    ("memset", "memory"),
    ("__memset_chk", "memory"),
    ("__stack_chk_fail", "stack protector"),
    ("sigemptyset", "a local sigset"),
    ("pthread_create", "threads"),
    ("pthread_join", "threads"),
    ("nanosleep", "a pause"),
    ("strlen", "strings"),
    ("snprintf", "strings"),
    ("__snprintf_chk", "strings"),
    ("pthread_self", "threads"),
    ("pthread_kill", "signals a thread"),
    ("open", "opens a file"),
    ("open64", "opens a file"),
    ("__open_2", "opens a file"),
    ("pipe", "makes a kernel pipe"),
    ("epoll_create1", "makes a kernel epoll fd; its utcp half is made when a utcp socket joins"),
    ("__fdelt_chk", "FD_SET's bounds check: arithmetic on the fd number, no call on the fd"),
];

fn build(dir: &Path) -> Option<PathBuf> {
    if !have("cc", "") {
        return None;
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/hooks.c");
    let exe = dir.join("hooks");
    let o = Command::new("cc")
        .args(["-O2", "-D_FORTIFY_SOURCE=2", "-Wall", "-pthread", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("cc");
    assert!(o.status.success(), "cc hooks.c: {}", String::from_utf8_lossy(&o.stderr));
    Some(exe)
}

fn command(exe: &Path, preload: Option<&Path>) -> Command {
    let mut c = Command::new(exe);
    c.env_remove("LD_PRELOAD").env_remove("UTCP_STAT_FILE");
    if let Some(d) = preload {
        c.env("LD_PRELOAD", shared_object()).env("UTCP_STAT_FILE", d.join("stat.%p"));
    }
    c
}

fn run(exe: &Path, preload: Option<&Path>) -> String {
    let o = command(exe, preload).output().expect("run hooks");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "hooks ({}): {:?}\n{out}\n{}",
        if preload.is_some() { "utcp" } else { "kernel" },
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

#[test]
fn fortified_c_program_answers_as_on_the_kernel() {
    let dir = stat_dir("c-hooks");
    let Some(exe) = build(&dir) else { return };
    let kernel = run(&exe, None);
    assert!(kernel.ends_with("done\n"), "{kernel}");
    let utcp = run(&exe, Some(&dir));
    for (k, u) in kernel.lines().zip(utcp.lines()) {
        assert_eq!(k, u, "kernel vs utcp\n--- kernel\n{kernel}\n--- utcp\n{utcp}");
    }
    assert_eq!(kernel, utcp);
    let (files, m) = stats(&dir);
    assert_eq!(files, 1, "one stack");
    // Both connections (the main pair and the one that tests end of stream) were utcp's.
    assert_eq!(m.get("TcpActiveOpens").copied(), Some(2), "{m:?}");
    assert_eq!(m.get("TcpPassiveOpens").copied(), Some(2), "{m:?}");
    // Again with every trace event on: the library's own writes (to stderr, from inside the
    // hooks and the stack) pass through its write hook without recursing or deadlocking.
    let o = command(&exe, Some(&dir)).env("UTCP_LOG", "trace").output().expect("run hooks");
    assert!(o.status.success(), "hooks with UTCP_LOG=trace: {o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), kernel);
    assert!(String::from_utf8_lossy(&o.stderr).contains("tcp_transmit_skb"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The dynamic symbols `nm -D` lists: undefined ones (`undefined`) or defined ones.
fn dynsyms(file: &Path, undefined: bool) -> BTreeSet<String> {
    let flag = if undefined { "--undefined-only" } else { "--defined-only" };
    let o = Command::new("nm").args(["-D", flag]).arg(file).output().expect("nm");
    assert!(o.status.success(), "nm {}", file.display());
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(|s| s.split('@').next().unwrap_or(s).to_string())
        .collect()
}

#[test]
fn every_socket_call_a_fortified_build_imports_is_hooked() {
    let dir = stat_dir("c-nm");
    let Some(exe) = build(&dir) else { return };
    if !have("nm", "") {
        return;
    }
    let imports = dynsyms(&exe, true);
    let hooked = dynsyms(&shared_object(), false);
    let other: BTreeSet<&str> = NOT_SOCKET_CALLS.iter().map(|(n, _)| *n).collect();
    let missing: Vec<&String> =
        imports.iter().filter(|s| !hooked.contains(*s) && !other.contains(s.as_str())).collect();
    assert!(missing.is_empty(), "imported, not hooked and not known to be socket-free: {missing:?}");
    // The fortify variants the program was built to call are among its imports (else the build
    // did not fortify and the check above proves less).
    for f in ["__read_chk", "__recv_chk", "__recvfrom_chk", "__poll_chk", "__ppoll_chk", "__fdelt_chk"] {
        assert!(imports.contains(f), "{f} not imported: {imports:?}");
    }
    for f in ["recvmmsg", "sendmmsg", "splice", "pselect", "epoll_pwait2"] {
        assert!(hooked.contains(f), "{f} not hooked");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The hooked `__read_chk` & co check their bound before anything else: a length past the
/// buffer aborts with glibc's report on a utcp socket as on a kernel one (without the check
/// the call would return and the program say "not caught").
#[test]
fn fortify_overflow_on_a_utcp_socket_aborts_with_glibcs_report() {
    use std::os::unix::process::ExitStatusExt;
    let dir = stat_dir("c-overflow");
    let Some(exe) = build(&dir) else { return };
    for call in ["read", "recv", "recvfrom", "poll", "ppoll"] {
        let arg = format!("overflow-{call}");
        let k = command(&exe, None).arg(&arg).output().expect("run");
        let u = command(&exe, Some(&dir)).arg(&arg).output().expect("run");
        let kerr = String::from_utf8_lossy(&k.stderr).into_owned();
        let uerr = String::from_utf8_lossy(&u.stderr).into_owned();
        assert_eq!(k.status.signal(), Some(libc::SIGABRT), "{call} on the kernel: {k:?}");
        assert_eq!(u.status.signal(), Some(libc::SIGABRT), "{call} on utcp: {u:?}");
        assert!(kerr.contains("buffer overflow detected"), "{call}: {kerr}");
        assert_eq!(kerr, uerr, "{call}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
