//! The packetdrill script lexer and parser on arbitrary text: an error, never a panic.

use std::collections::HashMap;

/// Parses `data` (as UTF-8, lossily) as a packetdrill script, with and without a define.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = utcp_drill::lexer::Lexer::tokenize(&text, &HashMap::new());
    let _ = utcp_drill::parse_script(&text, &HashMap::new());
    let mut defines = HashMap::new();
    defines.insert("TFO".to_string(), "1".to_string());
    let _ = utcp_drill::parse_script(&text, &defines);
}
