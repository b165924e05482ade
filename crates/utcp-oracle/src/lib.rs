//! utcp-oracle
