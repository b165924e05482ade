//! utcp-drill: a packetdrill script interpreter for utcp.
//!
//! This crate currently provides the script front end: [`lexer`] (tokens),
//! [`parser`] ([`parse_script`]) and [`ast`] (the syntax tree handed to the
//! executor).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ast;
pub mod lexer;
pub mod parser;

pub use parser::{parse_script, ParseError};
