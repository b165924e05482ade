//! `utcp bench` arguments and their validation.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use crate::bench::{BenchConfig, Progress};
use crate::units::{check_probability, parse_duration, parse_probability, parse_rate, parse_size};

/// Default MTU of the utcp link.
pub const DEFAULT_MTU: u16 = 1500;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Bytes the bulk workload sends (e.g. 1G, 256M, 64K, or a byte count;
    /// K/M/G/T are powers of 1024) [default: 1G; on a link that loses packets
    /// (--loss or --corrupt): 64M below 5 %, 256K from 5 %]
    #[arg(long, value_name = "SIZE", value_parser = parse_size, allow_hyphen_values = true)]
    pub bytes: Option<u64>,

    /// Largest single write of the bulk sender
    #[arg(long, value_name = "SIZE", default_value = "256K", value_parser = parse_size, allow_hyphen_values = true)]
    pub chunk: u64,

    /// Request and response size of the request/response (rr) workload, in bytes
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=(64 << 20)), allow_hyphen_values = true)]
    pub rr_size: u32,

    /// Measured rr round trips [default: 20000; on a link that loses packets:
    /// 1000 below 5 %, 100 from 5 %]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), allow_hyphen_values = true)]
    pub round_trips: Option<u64>,

    /// Unmeasured rr round trips run first [default: 100; 10 on a link that
    /// loses 5 % or more]
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub warmup: Option<u64>,

    /// Spin on nonblocking reads/writes in the rr workload for up to USECS
    /// per wait before blocking (like SO_BUSY_POLL)
    #[arg(long, value_name = "USECS", value_parser = clap::value_parser!(u64).range(1..), allow_hyphen_values = true)]
    pub busy_poll: Option<u64>,

    /// Also run the workloads over kernel TCP on loopback and print ratios
    #[arg(long)]
    pub kernel: bool,

    /// Run the workloads over kernel TCP on loopback only (a baseline; no
    /// utcp run, so no link options apply)
    #[arg(long, conflicts_with = "kernel")]
    pub kernel_only: bool,

    /// Congestion control of the kernel baseline's sockets (TCP_CONGESTION on both ends), so
    /// that the kernel runs the algorithm utcp runs rather than the host's default
    #[arg(long, value_name = "NAME", default_value = "cubic")]
    pub kernel_congestion: String,

    /// Congestion control of utcp's sockets (`net.ipv4.tcp_congestion_control` on both
    /// stacks): cubic, reno or bbr
    #[arg(long, value_name = "NAME", default_value = "cubic")]
    pub congestion: String,

    /// Also run the workloads over smoltcp (two interfaces on an in-memory link in one thread,
    /// the same MTU, checksums on) and print utcp/smoltcp ratios
    #[arg(long)]
    pub peers: bool,

    /// Instead of the workloads: open N connections, move a byte each way on each, and report
    /// the memory per socket they hold (RSS growth / sockets) and the setup rate
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000), allow_hyphen_values = true)]
    pub idle: Option<u64>,

    /// Run the bulk workload as N concurrent streams sharing --bytes (bulk.gbytes_per_s is
    /// then the aggregate)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000), allow_hyphen_values = true)]
    pub streams: Option<u32>,

    /// Print one JSON object on stdout instead of a table
    #[arg(long)]
    pub json: bool,

    /// Show no progress on stderr: neither the bar (on a terminal) nor the lines printed
    /// every --progress-interval when stderr is not a terminal
    #[arg(long)]
    pub no_progress: bool,

    /// When stderr is not a terminal, print a progress line this often
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration,
          allow_hyphen_values = true)]
    pub progress_interval: Duration,

    /// utcp link: probability of dropping a packet (0.01 or 1%)
    #[arg(long, value_name = "P", value_parser = parse_probability, allow_hyphen_values = true)]
    pub loss: Option<f64>,

    /// utcp link: probability of reordering a packet
    #[arg(long, value_name = "P", value_parser = parse_probability, allow_hyphen_values = true)]
    pub reorder: Option<f64>,

    /// utcp link: probability of duplicating a packet
    #[arg(long, value_name = "P", value_parser = parse_probability, allow_hyphen_values = true)]
    pub dup: Option<f64>,

    /// utcp link: probability of corrupting a packet
    #[arg(long, value_name = "P", value_parser = parse_probability, allow_hyphen_values = true)]
    pub corrupt: Option<f64>,

    /// utcp link: one-way delay (e.g. 100us, 1ms)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true)]
    pub delay: Option<Duration>,

    /// utcp link: rate limit in bits per second (e.g. 10Gbit, 500Mbit, 1G)
    #[arg(long, value_name = "RATE", value_parser = parse_rate, allow_hyphen_values = true)]
    pub rate: Option<u64>,

    /// Seed of the impairment randomness and of the bulk data pattern
    #[arg(long, value_name = "N", default_value_t = 1, allow_hyphen_values = true)]
    pub seed: u64,

    /// utcp link MTU in bytes [default: 1500]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(68..), allow_hyphen_values = true)]
    pub mtu: Option<u16>,

    /// Give the utcp link TSO/GSO as Linux loopback has it: TCP builds super-segments of up
    /// to 64 KiB (gso_max_size) and the link carries them whole, with partial checksums
    #[arg(long)]
    pub gso: bool,

    /// Turn GRO off on the utcp link (`ethtool -K gro off`). By default the receiving port
    /// merges the consecutive segments of a flow that one poll takes, as a NIC driver's
    /// GRO does; the wire and a pcap capture still carry every segment
    #[arg(long)]
    pub no_gro: bool,

    /// Write the utcp link's packets to this pcap file
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,

    /// Give up (exit status 3) if the whole run takes longer than this
    /// (e.g. 60s), so a stalled transport cannot hang a script
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true)]
    pub timeout: Option<Duration>,
}

/// Link impairments for the utcp transport (the kernel baseline always runs
/// on plain loopback). Probabilities are per packet, in [0, 1].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Impairments {
    pub loss: f64,
    pub reorder: f64,
    pub dup: f64,
    pub corrupt: f64,
    #[serde(rename = "delay_us", serialize_with = "ser_micros")]
    pub delay: Duration,
    /// Bits per second; `None` is unlimited.
    #[serde(rename = "rate_bits_per_s")]
    pub rate: Option<u64>,
    pub seed: u64,
}

fn ser_micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e6)
}

impl Impairments {
    /// Checks every probability lies in [0, 1] and the rate is nonzero.
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [("loss", self.loss), ("reorder", self.reorder), ("dup", self.dup), ("corrupt", self.corrupt)]
        {
            check_probability(p).map_err(|e| format!("--{name}: probability {e}"))?;
        }
        if self.rate == Some(0) {
            return Err("--rate: must be above 0 bit/s".into());
        }
        Ok(())
    }

    /// True when the link is a perfect one (the seed aside).
    pub fn is_none(&self) -> bool {
        Impairments { seed: self.seed, ..Impairments::default() } == *self
    }

    /// The probability that the link loses a given packet: dropped, or corrupted (the
    /// receiver's checksum drops it).
    pub fn packet_loss(&self) -> f64 {
        1.0 - (1.0 - self.loss) * (1.0 - self.corrupt)
    }

    /// The workloads' sizes when the command line gives none. On a link that loses packets
    /// TCP spends its time in timeouts no clean link has: a lost 1-byte request waits for the
    /// loss probe (2·srtt + `tcp_rto_min`, 200 ms, with one packet out: Linux's
    /// `tcp_schedule_loss_probe`), a lost retransmission for an RTO that doubles each time,
    /// so on the brutal wire of issue 11 (20 % loss, 1 % corruption) both stacks move a few
    /// KB/s and about 5 round trips a second. The clean-link sizes (1 GiB, 20,000 round
    /// trips) would take days there; these take tens of seconds at 20 %, seconds at 1 %.
    pub fn default_sizes(&self) -> DefaultSizes {
        let p = self.packet_loss();
        if p <= 0.0 {
            DefaultSizes { bytes: 1 << 30, round_trips: 20_000, warmup: 100 }
        } else if p < 0.05 {
            DefaultSizes { bytes: 64 << 20, round_trips: 1_000, warmup: 100 }
        } else {
            DefaultSizes { bytes: 256 << 10, round_trips: 100, warmup: 10 }
        }
    }
}

/// What `--bytes`, `--round-trips` and `--warmup` default to ([`Impairments::default_sizes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultSizes {
    pub bytes: u64,
    pub round_trips: u64,
    pub warmup: u64,
}

/// Everything a bench run needs, validated.
#[derive(Debug, Clone)]
pub struct BenchSettings {
    pub cfg: BenchConfig,
    pub impairments: Impairments,
    pub mtu: u16,
    /// `gso_max_size` of the utcp link (0: no TSO/GSO; `--gso`: 65536).
    pub gso_max_size: u32,
    /// GRO on the utcp link's receive (on unless `--no-gro`).
    pub gro: bool,
    pub pcap: Option<PathBuf>,
    /// Run the kernel baseline as well as utcp.
    pub with_kernel: bool,
    /// Run the kernel baseline alone.
    pub kernel_only: bool,
    /// `--kernel-congestion`: the kernel sockets' congestion control.
    pub kernel_congestion: String,
    /// `--congestion`: utcp's congestion control.
    pub congestion: String,
    pub json: bool,
    pub timeout: Option<Duration>,
    /// Run the smoltcp peer as well.
    pub peers: bool,
    /// `--idle N`: the idle-connection measurement instead of the workloads.
    pub idle: Option<u64>,
    /// Concurrent bulk streams (1 = the plain bulk workload).
    pub streams: u32,
}

impl BenchArgs {
    pub fn settings(&self) -> Result<BenchSettings, String> {
        let impairments = Impairments {
            loss: self.loss.unwrap_or(0.0),
            reorder: self.reorder.unwrap_or(0.0),
            dup: self.dup.unwrap_or(0.0),
            corrupt: self.corrupt.unwrap_or(0.0),
            delay: self.delay.unwrap_or(Duration::ZERO),
            rate: self.rate,
            seed: self.seed,
        };
        impairments.validate()?;
        if self.kernel_only {
            let utcp_only = [
                ("--loss", self.loss.is_some()),
                ("--reorder", self.reorder.is_some()),
                ("--dup", self.dup.is_some()),
                ("--corrupt", self.corrupt.is_some()),
                ("--delay", self.delay.is_some()),
                ("--rate", self.rate.is_some()),
                ("--mtu", self.mtu.is_some()),
                ("--gso", self.gso),
                ("--no-gro", self.no_gro),
                ("--pcap", self.pcap.is_some()),
            ];
            if let Some((flag, _)) = utcp_only.iter().find(|(_, set)| *set) {
                return Err(format!("{flag} configures the utcp link and cannot be used with --kernel-only"));
            }
        }
        if self.progress_interval.is_zero() {
            return Err("--progress-interval: must be above 0".into());
        }
        if self.kernel_only && self.peers {
            return Err("--peers compares utcp with smoltcp and cannot be used with --kernel-only".into());
        }
        if self.idle.is_some() && (self.peers || self.streams.is_some()) {
            return Err("--idle measures idle connections only: no --peers or --streams".into());
        }
        let sizes = impairments.default_sizes();
        let chunk_size = usize::try_from(self.chunk).ok().filter(|&c| c <= 64 << 20).ok_or("--chunk: at most 64M")?;
        Ok(BenchSettings {
            cfg: BenchConfig {
                bytes: self.bytes.unwrap_or(sizes.bytes),
                chunk_size,
                rr_size: self.rr_size as usize,
                rr_round_trips: self.round_trips.unwrap_or(sizes.round_trips),
                rr_warmup: self.warmup.unwrap_or(sizes.warmup),
                busy_poll_us: self.busy_poll,
                seed: self.seed,
                progress: if self.no_progress {
                    Progress::Off
                } else {
                    Progress::Auto { interval: self.progress_interval }
                },
            },
            impairments,
            mtu: self.mtu.unwrap_or(DEFAULT_MTU),
            gso_max_size: if self.gso { 65_536 } else { 0 },
            gro: !self.no_gro,
            pcap: self.pcap.clone(),
            with_kernel: self.kernel,
            kernel_only: self.kernel_only,
            kernel_congestion: self.kernel_congestion.clone(),
            congestion: self.congestion.clone(),
            json: self.json,
            timeout: self.timeout.filter(|t| !t.is_zero()),
            peers: self.peers,
            idle: self.idle,
            streams: self.streams.unwrap_or(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<BenchArgs, String> {
        T::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map(|t| t.a).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let s = parse(&[]).unwrap().settings().unwrap();
        assert_eq!(s.cfg.bytes, 1 << 30);
        assert_eq!(s.cfg.rr_size, 1);
        assert_eq!(s.cfg.rr_round_trips, 20_000);
        assert_eq!(s.cfg.busy_poll_us, None);
        assert_eq!(s.cfg.chunk_size, 256 << 10);
        assert_eq!(s.mtu, 1500);
        assert!(s.impairments.is_none());
        assert!(!s.with_kernel && !s.kernel_only && !s.json);
        assert!(!s.peers && s.idle.is_none() && s.streams == 1);
    }

    #[test]
    fn a_link_that_loses_packets_gets_sizes_that_finish() {
        // The brutal wire of issue 11: 256 KiB and 100 round trips, not 1 GiB and 20,000.
        let s = parse(&["--loss", "0.2", "--reorder", "0.2", "--dup", "0.05", "--corrupt", "0.01"])
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!((s.cfg.bytes, s.cfg.rr_round_trips, s.cfg.rr_warmup), (256 << 10, 100, 10));
        // 1 % loss: 64 MiB and 1,000; corruption counts as loss; 5 % is the brutal tier.
        let s = parse(&["--loss", "1%"]).unwrap().settings().unwrap();
        assert_eq!((s.cfg.bytes, s.cfg.rr_round_trips, s.cfg.rr_warmup), (64 << 20, 1_000, 100));
        let s = parse(&["--corrupt", "0.01"]).unwrap().settings().unwrap();
        assert_eq!(s.cfg.bytes, 64 << 20);
        let s = parse(&["--loss", "0.05"]).unwrap().settings().unwrap();
        assert_eq!(s.cfg.bytes, 256 << 10);
        // Reordering, duplication, delay and a rate limit lose nothing: the clean sizes.
        let s = parse(&["--reorder", "0.2", "--dup", "0.05", "--delay", "1ms"]).unwrap().settings().unwrap();
        assert_eq!((s.cfg.bytes, s.cfg.rr_round_trips, s.cfg.rr_warmup), (1 << 30, 20_000, 100));
        // What the command line says wins.
        let s = parse(&["--loss", "0.2", "--bytes", "1M", "--round-trips", "7", "--warmup", "0"])
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!((s.cfg.bytes, s.cfg.rr_round_trips, s.cfg.rr_warmup), (1 << 20, 7, 0));
    }

    #[test]
    fn multi_connection_modes() {
        let s = parse(&["--peers", "--streams", "100"]).unwrap().settings().unwrap();
        assert!(s.peers && s.streams == 100);
        let s = parse(&["--idle", "100000", "--kernel"]).unwrap().settings().unwrap();
        assert_eq!(s.idle, Some(100_000));
        assert!(parse(&["--idle", "0"]).is_err());
        assert!(parse(&["--streams", "0"]).is_err());
        assert!(parse(&["--idle", "5", "--peers"]).unwrap().settings().is_err());
        assert!(parse(&["--kernel-only", "--peers"]).unwrap().settings().is_err());
    }

    #[test]
    fn full_flags() {
        let a = parse(&[
            "--bytes",
            "256M",
            "--rr-size",
            "64",
            "--round-trips",
            "500",
            "--busy-poll",
            "50",
            "--kernel",
            "--json",
            "--loss",
            "0.01",
            "--reorder",
            "2%",
            "--dup",
            "0",
            "--corrupt",
            "1",
            "--delay",
            "100us",
            "--rate",
            "10Gbit",
            "--seed",
            "7",
            "--mtu",
            "9000",
            "--pcap",
            "/tmp/x.pcap",
            "--timeout",
            "90s",
        ])
        .unwrap();
        let s = a.settings().unwrap();
        assert_eq!(s.cfg.bytes, 256 << 20);
        assert_eq!(s.cfg.rr_size, 64);
        assert_eq!(s.cfg.rr_round_trips, 500);
        assert_eq!(s.cfg.busy_poll_us, Some(50));
        assert_eq!(s.cfg.seed, 7);
        assert!(s.with_kernel && s.json);
        let i = &s.impairments;
        assert_eq!((i.loss, i.reorder, i.dup, i.corrupt), (0.01, 0.02, 0.0, 1.0));
        assert_eq!(i.delay, Duration::from_micros(100));
        assert_eq!(i.rate, Some(10_000_000_000));
        assert_eq!(i.seed, 7);
        assert!(!i.is_none());
        assert_eq!(s.mtu, 9000);
        assert_eq!(s.pcap.as_deref(), Some(std::path::Path::new("/tmp/x.pcap")));
        assert_eq!(s.timeout, Some(Duration::from_secs(90)));
        let v = serde_json::to_value(i).unwrap();
        assert_eq!(v["delay_us"], 100.0);
        assert_eq!(v["rate_bits_per_s"], 10_000_000_000u64);
    }

    #[test]
    fn rejects_bad_values() {
        let e = parse(&["--loss", "1.5"]).unwrap_err();
        assert!(e.contains("between 0 and 1") && e.contains("--loss"), "{e}");
        // Negative values reach the value parsers (not mistaken for flags).
        let e = parse(&["--loss", "-0.1"]).unwrap_err();
        assert!(e.contains("--loss") && e.contains("between 0 and 1"), "{e}");
        let e = parse(&["--bytes", "-5"]).unwrap_err();
        assert!(e.contains("--bytes") && e.contains("cannot be negative"), "{e}");
        assert!(parse(&["--corrupt", "-0.1"]).is_err());
        assert!(parse(&["--rr-size", "0"]).is_err());
        assert!(parse(&["--round-trips", "0"]).is_err());
        assert!(parse(&["--busy-poll", "0"]).is_err());
        assert!(parse(&["--mtu", "20"]).is_err());
        assert!(parse(&["--bytes", "0"]).is_err());
        assert!(parse(&["--delay", "5"]).unwrap_err().contains("missing unit"));
        assert!(parse(&["--rate", "1Gbps"]).is_err());
        assert!(parse(&["--kernel", "--kernel-only"]).is_err());
        let e = parse(&["--kernel-only", "--loss", "0.1"]).unwrap().settings().unwrap_err();
        assert!(e.contains("--loss"), "{e}");
        assert!(parse(&["--kernel-only", "--mtu", "1500"]).unwrap().settings().is_err());
        assert!(parse(&["--kernel-only", "--busy-poll", "5"]).unwrap().settings().is_ok());
    }

    #[test]
    fn impairments_validate() {
        let ok = Impairments { loss: 0.5, ..Default::default() };
        assert!(ok.validate().is_ok());
        let bad = Impairments { dup: 1.01, ..Default::default() };
        assert!(bad.validate().unwrap_err().contains("--dup"));
        let bad = Impairments { reorder: f64::NAN, ..Default::default() };
        assert!(bad.validate().is_err());
        let bad = Impairments { rate: Some(0), ..Default::default() };
        assert!(bad.validate().is_err());
    }
}
