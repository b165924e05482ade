//! MIB counters with nstat names (include/uapi/linux/snmp.h, net/ipv4/proc.c), and drop reasons
//! (include/net/dropreason-core.h).
//!
//! Every counter is a relaxed atomic: bumped from any context without a lock, like the kernel's
//! per-cpu SNMP counters.

use core::sync::atomic::{AtomicU64, Ordering};

macro_rules! mib_table {
    ($(#[$m:meta])* $ty:ident, $prefix:literal, { $($name:ident),* $(,)? }) => {
        $(#[$m])*
        #[allow(non_camel_case_types, missing_docs)]
        #[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
        #[repr(usize)]
        pub enum $ty { $($name),* }

        impl $ty {
            /// Every counter of this table, in nstat order.
            pub const ALL: &'static [$ty] = &[$($ty::$name),*];
            /// The counter's name as nstat prints it (with the table prefix).
            pub fn nstat_name(self) -> &'static str {
                match self { $($ty::$name => concat!($prefix, stringify!($name))),* }
            }
        }
    };
}

mib_table!(
    /// `Tcp*` counters (RFC 1213 TCP-MIB, `TCP_MIB_*`).
    TcpMib, "Tcp", {
    ActiveOpens, PassiveOpens, AttemptFails, EstabResets, CurrEstab, InSegs, OutSegs,
    RetransSegs, InErrs, OutRsts, InCsumErrors,
});

mib_table!(
    /// `Ip*` counters (`IPSTATS_MIB_*`).
    IpMib, "Ip", {
    InReceives, InHdrErrors, InAddrErrors, InUnknownProtos, InDiscards, InDelivers, OutRequests,
    ReasmFails, InCsumErrors, InTruncatedPkts,
});

mib_table!(
    /// `Icmp*` counters (`ICMP_MIB_*`; the per-type ones of `IcmpMsg` are folded in here).
    IcmpMib, "Icmp", {
    InMsgs, InErrors, InCsumErrors, InDestUnreachs, InTimeExcds, InParmProbs, InEchos, InEchoReps,
    OutMsgs, OutErrors, OutRateLimitGlobal, OutRateLimitHost, OutDestUnreachs, OutEchoReps,
});

mib_table!(
    /// `Ip6*` counters (`IPSTATS_MIB_*` of the IPv6 table, `/proc/net/snmp6`).
    Ipv6Mib, "Ip6", {
    InReceives, InHdrErrors, InNoRoutes, InAddrErrors, InUnknownProtos, InTruncatedPkts, InDiscards,
    InDelivers, OutRequests, ReasmReqds, ReasmFails, InOctets, OutOctets, InNoECTPkts, InECT1Pkts,
    InECT0Pkts, InCEPkts, OutTransmits,
});

mib_table!(
    /// `Icmp6*` counters (`ICMP6_MIB_*`, and the per-type `Icmp6MsgIn`/`Out` ones under the
    /// names `/proc/net/snmp6` gives them).
    Icmp6Mib, "Icmp6", {
    InMsgs, InErrors, OutMsgs, OutErrors, InCsumErrors, OutRateLimitHost, InDestUnreachs,
    InPktTooBigs, InTimeExcds, InParmProblems, InEchos, InEchoReplies, OutDestUnreachs,
    OutParmProblems, OutEchos, OutEchoReplies,
});

mib_table!(
    /// `TcpExt*` counters (`LINUX_MIB_*`).
    LinuxMib, "TcpExt", {
    SyncookiesSent, SyncookiesRecv, SyncookiesFailed, EmbryonicRsts, PruneCalled, RcvPruned,
    OfoPruned, TW, TWRecycled, TWKilled, DelayedACKs, DelayedACKLocked, DelayedACKLost,
    ListenOverflows, ListenDrops, TCPHPHits, TCPPureAcks, TCPHPAcks, TCPRenoRecovery,
    TCPSackRecovery, TCPSACKReneging, TCPSACKReorder, TCPTSReorder, TCPFullUndo,
    TCPPartialUndo, TCPDSACKUndo, TCPLossUndo, TCPLostRetransmit, TCPLossFailures, TCPFastRetrans,
    TCPSlowStartRetrans, TCPTimeouts, TCPLossProbes, TCPLossProbeRecovery, TCPBacklogCoalesce,
    TCPBacklogDrop, TCPMinTTLDrop, TCPDirectCopyFromBacklog, TCPDirectCopyFromPrequeue,
    TCPPrequeued, TCPPrequeueDropped, TCPRcvCollapsed, TCPDSACKOldSent, TCPDSACKOfoSent,
    TCPDSACKRecv, TCPDSACKOfoRecv, TCPAbortOnData, TCPAbortOnClose, TCPAbortOnMemory,
    TCPAbortOnTimeout, TCPAbortOnLinger, TCPAbortFailed, TCPMemoryPressures, TCPMemoryPressuresChrono, TCPSACKDiscard,
    TCPDSACKIgnoredOld, TCPDSACKIgnoredNoUndo, TCPSpuriousRTOs, TCPSackShifted, TCPSackMerged,
    TCPSackShiftFallback, TCPRcvQDrop, TCPRcvCoalesce, TCPOFOQueue, TCPOFODrop, TCPOFOMerge,
    TCPChallengeACK, TCPSYNChallenge, TCPSpuriousRtxHostQueues, BusyPollRxPackets,
    TCPAutoCorking, TCPFromZeroWindowAdv, TCPToZeroWindowAdv, TCPWantZeroWindowAdv,
    TCPSynRetrans, TCPOrigDataSent, TCPACKSkippedSynRecv, TCPACKSkippedPAWS,
    TCPACKSkippedSeq, TCPACKSkippedFinWait2, TCPACKSkippedTimeWait, TCPACKSkippedChallenge,
    TCPWinProbe, TCPKeepAlive, TCPDelivered, TCPAckCompressed, TCPZeroWindowDrop,
    TCPRcvQDropOverflow, BeyondWindow, TCPRcvQOverflow, PAWSActive, PAWSEstab, PAWSOldAck,
    TCPAbortOnSyn, TCPWqueueTooBig, TCPMigrateReqSuccess, TCPDeferAcceptDrop, TCPTimeWaitOverflow, OutOfWindowIcmps,
    LockDroppedIcmps, TCPReqQFullDoCookies, TCPReqQFullDrop, TcpTimeoutRehash, TcpDuplicateDataRehash,
    TCPDSACKRecvSegs, TCPDSACKIgnoredDubious,
});

/// Why a packet was dropped (mirrors `enum skb_drop_reason`). Every drop goes through
/// [`Mib::drop_reason`], which counts it and emits a `kfree_skb` trace event.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[allow(missing_docs, non_camel_case_types)]
pub enum DropReason {
    PKT_TOO_SMALL,
    IP_CSUM,
    IP_INHDR,
    IP_NOT_FOR_US,
    /// `PKT_TOO_SMALL` at the TCP layer (counted as TcpInErrs, not as an IP header error).
    TCP_HDR_TOO_SMALL,
    IP_FRAGMENT,
    IP_NOPROTO,
    TCP_CSUM,
    NO_SOCKET,
    SOCKET_BACKLOG,
    TCP_FLAGS,
    TCP_ZEROWINDOW,
    TCP_OLD_DATA,
    TCP_OVERWINDOW,
    TCP_OFOMERGE,
    TCP_RFC7323_PAWS,
    TCP_INVALID_SEQUENCE,
    TCP_INVALID_END_SEQUENCE,
    TCP_RESET,
    TCP_INVALID_SYN,
    TCP_CLOSE,
    TCP_FASTOPEN,
    TCP_OLD_ACK,
    TCP_TOO_OLD_ACK,
    TCP_ACK_UNSENT_DATA,
    TCP_OFO_QUEUE_PRUNE,
    TCP_OFO_DROP,
    PROTO_MEM,
    SOCKET_RCVBUFF,
    TCP_MINTTL,
    LISTEN_OVERFLOW,
    TCP_AOFAILURE,
    QUEUE_PURGE,
    NOT_SPECIFIED,
    DEV_RING_FULL,
}

/// One stack's counters (one network namespace's worth).
pub struct Mib {
    tcp: [AtomicU64; TcpMib::ALL.len()],
    ip: [AtomicU64; IpMib::ALL.len()],
    icmp: [AtomicU64; IcmpMib::ALL.len()],
    ip6: [AtomicU64; Ipv6Mib::ALL.len()],
    icmp6: [AtomicU64; Icmp6Mib::ALL.len()],
    ext: [AtomicU64; LinuxMib::ALL.len()],
}

impl Default for Mib {
    fn default() -> Self {
        Mib {
            tcp: core::array::from_fn(|_| AtomicU64::new(0)),
            ip: core::array::from_fn(|_| AtomicU64::new(0)),
            icmp: core::array::from_fn(|_| AtomicU64::new(0)),
            ip6: core::array::from_fn(|_| AtomicU64::new(0)),
            icmp6: core::array::from_fn(|_| AtomicU64::new(0)),
            ext: core::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Mib {
    /// `NET_INC_STATS(net, LINUX_MIB_x)`.
    #[inline]
    pub fn inc(&self, c: LinuxMib) {
        self.ext[c as usize].fetch_add(1, Ordering::Relaxed);
    }
    /// `NET_ADD_STATS(net, LINUX_MIB_x, n)`.
    #[inline]
    pub fn add(&self, c: LinuxMib, n: u64) {
        self.ext[c as usize].fetch_add(n, Ordering::Relaxed);
    }
    /// `TCP_INC_STATS(net, TCP_MIB_x)`.
    #[inline]
    pub fn tcp_inc(&self, c: TcpMib) {
        self.tcp[c as usize].fetch_add(1, Ordering::Relaxed);
    }
    /// `TCP_DEC_STATS` (only CurrEstab goes down).
    #[inline]
    pub fn tcp_dec(&self, c: TcpMib) {
        self.tcp[c as usize].fetch_sub(1, Ordering::Relaxed);
    }
    /// `TCP_ADD_STATS`.
    #[inline]
    pub fn tcp_add(&self, c: TcpMib, n: u64) {
        self.tcp[c as usize].fetch_add(n, Ordering::Relaxed);
    }
    /// `IP_INC_STATS`.
    #[inline]
    pub fn ip_inc(&self, c: IpMib) {
        self.ip[c as usize].fetch_add(1, Ordering::Relaxed);
    }
    /// `__ICMP_INC_STATS`.
    #[inline]
    pub fn icmp_inc(&self, c: IcmpMib) {
        self.icmp[c as usize].fetch_add(1, Ordering::Relaxed);
    }
    /// `IP6_INC_STATS`.
    #[inline]
    pub fn ip6_inc(&self, c: Ipv6Mib) {
        self.ip6[c as usize].fetch_add(1, Ordering::Relaxed);
    }
    /// `IP6_ADD_STATS` (the octet counters).
    #[inline]
    pub fn ip6_add(&self, c: Ipv6Mib, n: u64) {
        self.ip6[c as usize].fetch_add(n, Ordering::Relaxed);
    }
    /// Reads an Ip6 counter.
    pub fn ip6_get(&self, c: Ipv6Mib) -> u64 {
        self.ip6[c as usize].load(Ordering::Relaxed)
    }
    /// `__ICMP6_INC_STATS` (and `ICMP6MSGIN`/`OUT_INC_STATS` for the per-type counters).
    #[inline]
    pub fn icmp6_inc(&self, c: Icmp6Mib) {
        self.icmp6[c as usize].fetch_add(1, Ordering::Relaxed);
    }
    /// Reads an Icmp6 counter.
    pub fn icmp6_get(&self, c: Icmp6Mib) -> u64 {
        self.icmp6[c as usize].load(Ordering::Relaxed)
    }
    /// Reads an Icmp counter.
    pub fn icmp_get(&self, c: IcmpMib) -> u64 {
        self.icmp[c as usize].load(Ordering::Relaxed)
    }
    /// Reads a TcpExt counter.
    pub fn get(&self, c: LinuxMib) -> u64 {
        self.ext[c as usize].load(Ordering::Relaxed)
    }
    /// Reads a Tcp counter.
    pub fn tcp_get(&self, c: TcpMib) -> u64 {
        self.tcp[c as usize].load(Ordering::Relaxed)
    }
    /// Reads an Ip counter.
    pub fn ip_get(&self, c: IpMib) -> u64 {
        self.ip[c as usize].load(Ordering::Relaxed)
    }

    /// Counts a dropped packet under the counter Linux uses for `reason`, and traces it as the
    /// `skb:kfree_skb` tracepoint does.
    pub fn drop_reason(&self, reason: DropReason) {
        tracing::trace!(target: "kfree_skb", reason = ?reason, "kfree_skb");
        use DropReason::*;
        match reason {
            IP_CSUM => {
                self.ip_inc(IpMib::InCsumErrors);
                self.ip_inc(IpMib::InHdrErrors)
            }
            IP_INHDR | PKT_TOO_SMALL => self.ip_inc(IpMib::InHdrErrors),
            IP_NOT_FOR_US => self.ip_inc(IpMib::InAddrErrors),
            TCP_HDR_TOO_SMALL => self.tcp_inc(TcpMib::InErrs),
            IP_FRAGMENT => self.ip_inc(IpMib::ReasmFails),
            IP_NOPROTO => self.ip_inc(IpMib::InUnknownProtos),
            TCP_CSUM => {
                self.tcp_inc(TcpMib::InCsumErrors);
                self.tcp_inc(TcpMib::InErrs)
            }
            SOCKET_BACKLOG => self.inc(LinuxMib::TCPBacklogDrop),
            TCP_ZEROWINDOW => self.inc(LinuxMib::TCPZeroWindowDrop),
            TCP_OFOMERGE => self.inc(LinuxMib::TCPOFOMerge),
            TCP_RFC7323_PAWS => self.inc(LinuxMib::PAWSEstab),
            TCP_INVALID_SEQUENCE | TCP_INVALID_END_SEQUENCE => self.inc(LinuxMib::BeyondWindow),
            SOCKET_RCVBUFF => self.inc(LinuxMib::TCPRcvQDrop),
            LISTEN_OVERFLOW => self.inc(LinuxMib::ListenOverflows),
            DEV_RING_FULL => self.ip_inc(IpMib::InDiscards),
            // Linux's callers count these themselves (TCPRcvQDrop or TCPOFODrop for PROTO_MEM,
            // OfoPruned once per prune), or not at all (TCP_OFO_DROP).
            PROTO_MEM | TCP_OFO_QUEUE_PRUNE | TCP_OFO_DROP => {}
            NO_SOCKET | TCP_FLAGS | TCP_OLD_DATA | TCP_OVERWINDOW | TCP_RESET | TCP_INVALID_SYN | TCP_CLOSE
            | TCP_FASTOPEN | TCP_OLD_ACK | TCP_TOO_OLD_ACK | TCP_ACK_UNSENT_DATA | TCP_MINTTL | TCP_AOFAILURE
            | QUEUE_PURGE | NOT_SPECIFIED => {}
        }
    }

    /// Every counter as `(nstat name, value)`: Ip, Icmp, Tcp, TcpExt, then Ip6 and Icmp6.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let mut v = Vec::new();
        for &c in IpMib::ALL {
            v.push((c.nstat_name(), self.ip_get(c)));
        }
        for &c in IcmpMib::ALL {
            v.push((c.nstat_name(), self.icmp_get(c)));
        }
        for &c in TcpMib::ALL {
            v.push((c.nstat_name(), self.tcp_get(c)));
        }
        for &c in LinuxMib::ALL {
            v.push((c.nstat_name(), self.get(c)));
        }
        for &c in Ipv6Mib::ALL {
            v.push((c.nstat_name(), self.ip6_get(c)));
        }
        for &c in Icmp6Mib::ALL {
            v.push((c.nstat_name(), self.icmp6_get(c)));
        }
        v
    }

    /// Formats the counters as `nstat -a` does (`#kernel` header, name, value, rate column).
    /// With `all == false` zero counters are left out, as plain `nstat` does.
    pub fn nstat(&self, all: bool) -> String {
        let mut out = String::from("#kernel\n");
        for (name, value) in self.snapshot() {
            if value != 0 || all {
                out.push_str(&format!("{name:<32}{value:<19}0.0\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_counts() {
        let m = Mib::default();
        m.inc(LinuxMib::TCPBacklogCoalesce);
        m.add(LinuxMib::TCPDirectCopyFromBacklog, 10);
        m.drop_reason(DropReason::SOCKET_BACKLOG);
        assert_eq!(LinuxMib::TCPBacklogDrop.nstat_name(), "TcpExtTCPBacklogDrop");
        assert_eq!(m.get(LinuxMib::TCPBacklogDrop), 1);
        let s = m.nstat(false);
        assert!(s.starts_with("#kernel\n"));
        assert!(s.contains("TcpExtTCPDirectCopyFromBacklog  10"));
        assert!(!s.contains("TcpExtTCPOFOQueue"));
    }
}
