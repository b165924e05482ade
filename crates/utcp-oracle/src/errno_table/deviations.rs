//! The documented deviations: options utcp cannot offer, answered as Linux answers when the
//! feature is compiled out, unavailable or refers to something absent. Each entry names the
//! option, the answer utcp gives and why; a difference is excused only when utcp's first call
//! of the case that differs returns exactly that answer (the kernel's answer and the read-back
//! that follows then differ too). Every entry carries a `DEVIATION(linux)` comment in the stack and a line
//! in docs/ARCHITECTURE.md. Keep this list short.

use super::{Call, Diff};

/// Which calls of the option an entry covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Calls {
    /// `setsockopt()` only.
    Set,
    /// `setsockopt()` and `getsockopt()`.
    Both,
}

/// One documented deviation.
#[derive(Clone, Copy, Debug)]
pub struct Deviation {
    /// Option level.
    pub level: i32,
    /// Option name.
    pub name: i32,
    /// The option's name in Linux's headers.
    pub label: &'static str,
    /// Which calls.
    pub calls: Calls,
    /// The errno utcp answers.
    pub errno: i32,
    /// Why.
    pub reason: &'static str,
}

const EPERM: i32 = 1;
const ENOPROTOOPT: i32 = 92;
const EOPNOTSUPP: i32 = 95;

/// The list.
pub const DEVIATIONS: &[Deviation] = &[
    Deviation {
        level: 6,
        name: 19,
        label: "TCP_REPAIR",
        calls: Calls::Set,
        errno: EPERM,
        reason: "no repair mode (checkpoint/restore): answered as Linux answers a process without CAP_NET_ADMIN",
    },
    Deviation {
        level: 6,
        name: 14,
        label: "TCP_MD5SIG",
        calls: Calls::Set,
        errno: ENOPROTOOPT,
        reason: "no TCP MD5 signatures: a kernel without CONFIG_TCP_MD5SIG",
    },
    Deviation {
        level: 6,
        name: 32,
        label: "TCP_MD5SIG_EXT",
        calls: Calls::Set,
        errno: ENOPROTOOPT,
        reason: "no TCP MD5 signatures: a kernel without CONFIG_TCP_MD5SIG",
    },
    Deviation {
        level: 6,
        name: 42,
        label: "TCP_AO_REPAIR",
        calls: Calls::Both,
        errno: ENOPROTOOPT,
        reason: "no TCP-AO: a kernel without CONFIG_TCP_AO",
    },
    Deviation {
        level: 6,
        name: 30,
        label: "TCP_FASTOPEN_CONNECT",
        calls: Calls::Set,
        errno: EOPNOTSUPP,
        reason: "no TFO client (no data on SYN): as net.ipv4.tcp_fastopen without TFO_CLIENT_ENABLE",
    },
    Deviation {
        level: 6,
        name: 37,
        label: "TCP_TX_DELAY",
        calls: Calls::Both,
        errno: ENOPROTOOPT,
        reason: "no EDT qdisc to delay departures (FIFO devices): a kernel before 5.4",
    },
    Deviation {
        level: 0,
        name: 16,
        label: "IP_IPSEC_POLICY",
        calls: Calls::Set,
        errno: ENOPROTOOPT,
        reason: "no IPsec: a kernel without CONFIG_XFRM",
    },
    Deviation {
        level: 0,
        name: 17,
        label: "IP_XFRM_POLICY",
        calls: Calls::Set,
        errno: ENOPROTOOPT,
        reason: "no IPsec: a kernel without CONFIG_XFRM",
    },
];

/// Why `d` is a documented deviation, if it is one: the first call whose results differ is
/// a call of a listed option (a `setsockopt()`, or also a `getsockopt()` for `Calls::Both`)
/// and utcp answered it with exactly the listed errno. Calls before it agree (e.g. a
/// `setsockopt()` both refuse for its length); calls after it may differ as a consequence
/// (the kernel's read-back of a value utcp refused to store).
pub fn documented(d: &Diff) -> Option<&'static str> {
    let (a, b) = (d.a.as_ref().ok()?, d.b.as_ref().ok()?);
    let i = (0..d.case.calls.len()).find(|&i| a.get(i) != b.get(i))?;
    let (level, name, set) = match d.case.calls.get(i)? {
        Call::SetOpt(l, n, _) => (*l, *n, true),
        Call::GetOpt(l, n, _) => (*l, *n, false),
        _ => return None,
    };
    let dev = DEVIATIONS.iter().find(|e| e.level == level && e.name == name)?;
    if !set && dev.calls == Calls::Set {
        return None;
    }
    (b.get(i)?.ret == Err(dev.errno)).then_some(dev.reason)
}
