//! Fuzz harnesses for utcp, as library functions so that the same code runs under libFuzzer
//! (the cargo-fuzz project in `fuzz/`, one target per module) and in the stable-toolchain
//! tests of this crate (which replay the committed corpus `fuzz/corpus/<target>/` and run a
//! seeded random pass).
//!
//! Each harness takes arbitrary bytes and panics only when an invariant breaks:
//! - [`packet_input`]: segment sequences against a listening and an established socket on the
//!   virtual clock; after each input: memory within its limits, the bytes read are the
//!   stream's bytes, and at the end every byte the socket ACKed is readable.
//! - [`wire`]: the IPv4 and TCP parsers; whatever parses re-emits and re-parses to the same.
//! - [`calls`]: the whole fd-level call surface with arbitrary arguments on two stacks.
//! - [`drill_parser`]: the packetdrill script lexer and parser.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod calls;
pub mod drill_parser;
pub mod input;
pub mod packet_input;
pub mod wire;

/// A harness: panics when an invariant breaks on `data`.
pub type Harness = fn(&[u8]);

/// The targets, by the names of their cargo-fuzz binaries and corpus directories.
pub const TARGETS: [(&str, Harness); 4] = [
    ("packet_input", packet_input::run),
    ("wire", wire::run),
    ("calls", calls::run),
    ("drill_parser", drill_parser::run),
];
