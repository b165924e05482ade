//! utcp: a userspace TCP/IP stack whose sockets behave like Linux's.
#![forbid(unsafe_code)]

pub mod seq;
pub mod time;
pub mod wire;
