//! utcp-drill
