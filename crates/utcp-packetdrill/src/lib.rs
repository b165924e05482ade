//! utcp as a packetdrill shared object: `packetdrill --so_filename=libutcp_packetdrill.so`
//! runs a script against a utcp stack instead of the kernel.
//!
//! packetdrill loads the library, calls `packetdrill_interface_init` and from then on makes
//! every socket call, injects and sniffs every packet, and reads and moves the clock through
//! the callbacks (`packetdrill.h`). One [`Instance`] — a utcp stack on a virtual clock — serves
//! one script. See [`instance`] for the time model and the handling of blocking calls, and
//! [`sysctl`] for how `sysctl -q ...` lines in a script reach the stack.
//!
//! `unsafe` is confined to [`ffi`] (the C ABI); the rest of the crate forbids it.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod code;
#[allow(unsafe_code)]
pub mod ffi;
pub mod instance;
pub mod sysctl;

pub use instance::{Config, Instance};
