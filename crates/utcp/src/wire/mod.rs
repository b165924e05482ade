//! Wire formats: zero-copy views and parsed representations of IPv4, IPv6 and TCP headers.
//!
//! Corresponds to the header layouts of `include/uapi/linux/ip.h` (RFC 791),
//! `include/uapi/linux/ipv6.h` with its extension headers (RFC 8200),
//! `include/uapi/linux/tcp.h` (RFC 9293) and the Internet checksum of
//! `include/net/checksum.h` / `lib/checksum.c` (RFC 1071).
//!
//! Every view type (`Ipv4Packet`, `TcpPacket`) wraps a buffer without copying it.
//! `new_unchecked` performs no validation (accessors may then panic on short buffers);
//! `new_checked` validates the lengths so that afterwards no accessor can panic.
//! The `*Repr` types are the parsed, owned (or borrowed-payload) form, with
//! `parse`/`emit` such that parse → emit → parse is the identity.

use core::fmt;

pub mod checksum;
pub mod icmpv6;
pub(crate) mod ipv4;
pub mod ipv6;
pub(crate) mod tcp;

#[cfg(test)]
mod tests;

pub use checksum::{checksum, combine, fold, pseudo_header_checksum};
pub use icmpv6::{Icmpv6Packet, Icmpv6Repr};
pub use ipv4::{Ipv4Packet, Ipv4Repr, IPPROTO_TCP};
pub use ipv6::{pseudo_header_checksum_v6, Ipv6Packet, Ipv6Repr, IPV6_HEADER_LEN};
pub use tcp::{SackBlocks, TcpFlags, TcpOption, TcpOptionIter, TcpPacket, TcpRepr, TCP_HEADER_LEN};

/// The error returned for any malformed packet: too short, bad version, inconsistent
/// lengths, bad checksum, unsupported fragment, or a malformed option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Error;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed packet")
    }
}

impl std::error::Error for Error {}

/// Result type of the wire module.
pub(crate) type Result<T> = core::result::Result<T, Error>;
