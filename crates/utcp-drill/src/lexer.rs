//! Tokenizer for packetdrill scripts.
//!
//! Mirrors packetdrill's flex lexer (`lexer.l`): longest match wins, ties go
//! to the earlier rule (keywords, `...`, `--option`, float, integer, hex,
//! word, string, back-quoted, single character, ..., IPv4, IPv6). Comments are
//! `//` to end of line and `/* ... */`; `#` is *not* a comment (it is a
//! single-character token, which the grammar never accepts).
//!
//! Deliberate leniencies versus flex: a `//` comment may end at end of file
//! without a newline, and `\r` (and other ASCII whitespace) counts as
//! whitespace.
//!
//! User defines (`-D NAME=value`) are substituted for (non-keyword) words as
//! packetdrill does: `"x"` values become strings, `` `x` `` values become
//! back-quoted commands, values that `strtol(value, 0)` fully parses become
//! integers, anything else becomes a word.

use std::collections::HashMap;

use crate::parser::ParseError;

/// Reserved words of packetdrill's lexer. They are returned as
/// [`Tok::Keyword`] and are never subject to define substitution.
pub const KEYWORDS: &[&str] = &[
    "sa_family",
    "sin_port",
    "sin_addr",
    "msg_name",
    "msg_iov",
    "msg_flags",
    "msg_control",
    "cmsg_data",
    "cmsg_level",
    "cmsg_type",
    "ee_errno",
    "ee_origin",
    "ee_type",
    "ee_code",
    "ee_info",
    "ee_data",
    "scm_sec",
    "scm_nsec",
    "fd",
    "u32",
    "u64",
    "ptr",
    "events",
    "revents",
    "onoff",
    "linger",
    "htons",
    "ipv4",
    "ipv6",
    "icmp",
    "udp",
    "GREv0",
    "gre",
    "raw",
    "sum",
    "off",
    "key",
    "seq",
    "none",
    "checksum",
    "sequence#",
    "present",
    "encap",
    "psp",
    "spi",
    "mpls",
    "label",
    "tc",
    "ttl",
    "inet_addr",
    "inet6_addr",
    "ack",
    "eol",
    "ecr",
    "mss",
    "mtu",
    "nop",
    "sack",
    "sackOK",
    "md5",
    "TS",
    "FO",
    "FOEXP",
    "ECN",
    "e0b",
    "e1b",
    "ceb",
    "tos",
    "flowlabel",
    "flags",
    "Flags",
    "val",
    "win",
    "urg",
    "wscale",
    "ect01",
    "ect0",
    "ect1",
    "noecn",
    "ce",
    "id",
];

/// A token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// An identifier-like word that is not a keyword (after define
    /// substitution).
    Word(String),
    /// A reserved word (see [`KEYWORDS`]), as written.
    Keyword(String),
    /// A decimal integer (optionally negative), with its source text.
    Int {
        /// The value (saturated to the `i64` range like `atoll`).
        value: i64,
        /// The source text (for a substituted define, the define's name).
        text: String,
    },
    /// `0x...` hexadecimal integer.
    Hex(i64),
    /// A decimal number with a fractional part, source text (`0.1`, `.5`,
    /// `-1.0`).
    Float(String),
    /// `"..."`: contents without the quotes, escapes kept verbatim.
    Str(String),
    /// `` `...` ``: contents without the back quotes.
    BackQuoted(String),
    /// `%{ ... }%`: contents with surrounding spaces/tabs stripped.
    Code(String),
    /// `--name`: the name without the dashes.
    Opt(String),
    /// `...`
    Ellipsis,
    /// Dotted-quad IPv4 address.
    Ipv4(String),
    /// IPv6 address.
    Ipv6(String),
    /// Any other single character.
    Punct(char),
    /// End of input.
    Eof,
}

impl Tok {
    /// Human-readable description for error messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("'{w}'"),
            Tok::Keyword(w) => format!("keyword '{w}'"),
            Tok::Int { text, .. } => format!("integer '{text}'"),
            Tok::Hex(v) => format!("integer '{v:#x}'"),
            Tok::Float(t) => format!("number '{t}'"),
            Tok::Str(_) => "string".to_string(),
            Tok::BackQuoted(_) => "back-quoted command".to_string(),
            Tok::Code(_) => "code block".to_string(),
            Tok::Opt(o) => format!("option '--{o}'"),
            Tok::Ellipsis => "'...'".to_string(),
            Tok::Ipv4(a) | Tok::Ipv6(a) => format!("address '{a}'"),
            Tok::Punct(c) => format!("'{c}'"),
            Tok::Eof => "end of file".to_string(),
        }
    }
}

/// A token with its 1-based starting line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// 1-based line where the token starts.
    pub line: usize,
}

/// On-demand tokenizer. Defines may be added while lexing (in-script
/// `--define` options).
#[derive(Debug)]
pub struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    defines: HashMap<String, String>,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl<'a> Lexer<'a> {
    /// A lexer over `src` with the given `-D` defines.
    pub fn new(src: &'a str, defines: &HashMap<String, String>) -> Self {
        Lexer { src, pos: 0, line: 1, defines: defines.clone() }
    }

    /// Add (or replace) a define for the rest of the input.
    pub fn define(&mut self, name: &str, value: &str) {
        self.defines.insert(name.to_string(), value.to_string());
    }

    /// Tokenize everything (convenience for tests).
    pub fn tokenize(src: &str, defines: &HashMap<String, String>) -> Result<Vec<Token>, ParseError> {
        let mut lx = Lexer::new(src, defines);
        let mut out = Vec::new();
        loop {
            let t = lx.next_token()?;
            let eof = t.tok == Tok::Eof;
            out.push(t);
            if eof {
                return Ok(out);
            }
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.src.as_bytes()
    }

    fn at(&self, i: usize) -> Option<u8> {
        self.bytes().get(i).copied()
    }

    /// Advance to `end`, counting newlines.
    fn advance_to(&mut self, end: usize) {
        self.line += self.bytes()[self.pos..end].iter().filter(|&&b| b == b'\n').count();
        self.pos = end;
    }

    fn err(&self, line: usize, msg: impl Into<String>) -> ParseError {
        ParseError { line, message: msg.into() }
    }

    /// Skip whitespace and comments.
    fn skip_trivia(&mut self) -> Result<(), ParseError> {
        loop {
            match self.at(self.pos) {
                Some(b) if b.is_ascii_whitespace() => {
                    self.advance_to(self.pos + 1);
                }
                Some(b'/') if self.at(self.pos + 1) == Some(b'/') => {
                    let end = self.bytes()[self.pos..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(self.src.len(), |i| self.pos + i + 1);
                    self.advance_to(end);
                }
                Some(b'/') if self.at(self.pos + 1) == Some(b'*') => {
                    let start_line = self.line;
                    match self.src[self.pos + 2..].find("*/") {
                        Some(i) => self.advance_to(self.pos + 2 + i + 2),
                        None => return Err(self.err(start_line, "unterminated /* comment")),
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// Scan a quoted token starting at `self.pos` (the opening delimiter);
    /// returns the index just past the closing delimiter.
    fn scan_quoted(&self, delim: u8) -> Option<usize> {
        let b = self.bytes();
        let mut i = self.pos + 1;
        while i < b.len() {
            match b[i] {
                b'\\' if i + 1 < b.len() && b[i + 1] != b'\n' => i += 2,
                c if c == delim => return Some(i + 1),
                _ => i += 1,
            }
        }
        None
    }

    /// Produce the next token.
    pub fn next_token(&mut self) -> Result<Token, ParseError> {
        self.skip_trivia()?;
        let line = self.line;
        let start = self.pos;
        let Some(c) = self.at(start) else {
            return Ok(Token { tok: Tok::Eof, line });
        };
        let tok = match c {
            b'"' | b'`' => {
                let Some(end) = self.scan_quoted(c) else {
                    let what = if c == b'"' { "unterminated string" } else { "unterminated back-quoted command" };
                    return Err(self.err(line, what));
                };
                let inner = self.src[start + 1..end - 1].to_string();
                self.advance_to(end);
                if c == b'"' {
                    Tok::Str(inner)
                } else {
                    Tok::BackQuoted(inner)
                }
            }
            b'%' if self.at(start + 1) == Some(b'{') => {
                let Some(i) = self.src[start + 2..].find("}%") else {
                    return Err(self.err(line, "unterminated %{ code block"));
                };
                let end = start + 2 + i + 2;
                let inner = self.src[start + 2..start + 2 + i].trim_matches([' ', '\t']);
                let inner = inner.to_string();
                self.advance_to(end);
                Tok::Code(inner)
            }
            b'.' if self.src[start..].starts_with("...") => {
                self.advance_to(start + 3);
                Tok::Ellipsis
            }
            b'-' if self.at(start + 1) == Some(b'-') && self.at(start + 2).is_some_and(is_word_byte) => {
                let end = self.word_end(start + 2);
                let name = self.src[start + 2..end].to_string();
                self.advance_to(end);
                Tok::Opt(name)
            }
            _ if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.' => match self.lex_wordish(start) {
                Some((end, tok)) => {
                    self.advance_to(end);
                    tok
                }
                None => self.punct(start),
            },
            b':' if self.ipv6_len(start) > 0 => {
                let end = start + self.ipv6_len(start);
                let a = self.src[start..end].to_string();
                self.advance_to(end);
                Tok::Ipv6(a)
            }
            _ => self.punct(start),
        };
        Ok(Token { tok, line })
    }

    fn punct(&mut self, start: usize) -> Tok {
        let ch = self.src[start..].chars().next().unwrap_or('\0');
        self.advance_to(start + ch.len_utf8());
        Tok::Punct(ch)
    }

    fn word_end(&self, from: usize) -> usize {
        let b = self.bytes();
        let mut i = from;
        while i < b.len() && is_word_byte(b[i]) {
            i += 1;
        }
        i
    }

    fn digits_end(&self, from: usize) -> usize {
        let b = self.bytes();
        let mut i = from;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    }

    /// Longest-match among keyword / float / int / hex / word / IPv4 / IPv6.
    /// Returns `None` if nothing matches (a lone `-` or `.`).
    fn lex_wordish(&self, start: usize) -> Option<(usize, Tok)> {
        let b = self.bytes();
        // Candidate lengths, in flex rule order (earlier wins ties).
        let word_len = self.word_end(start) - start;
        let kw_len = {
            let w = &self.src[start..start + word_len];
            if word_len > 0 && KEYWORDS.contains(&w) {
                word_len
            } else if w == "sequence" && self.at(start + word_len) == Some(b'#') {
                word_len + 1
            } else {
                0
            }
        };
        let num_start = if b[start] == b'-' { start + 1 } else { start };
        let int_end = self.digits_end(num_start);
        let int_len = if int_end > num_start { int_end - start } else { 0 };
        let float_len = if self.at(int_end) == Some(b'.') {
            let fe = self.digits_end(int_end + 1);
            if fe > int_end + 1 {
                fe - start
            } else {
                0
            }
        } else {
            0
        };
        let hex_len = if self.src[start..].starts_with("0x") {
            let mut i = start + 2;
            while i < b.len() && b[i].is_ascii_hexdigit() {
                i += 1;
            }
            if i > start + 2 {
                i - start
            } else {
                0
            }
        } else {
            0
        };
        let ipv4_len = self.ipv4_len(start);
        let ipv6_len = self.ipv6_len(start);
        let cands = [kw_len, float_len, int_len, hex_len, word_len, ipv4_len, ipv6_len];
        let best = *cands.iter().max().unwrap_or(&0);
        if best == 0 {
            return None;
        }
        let which = cands.iter().position(|&l| l == best).unwrap_or(0);
        let text = &self.src[start..start + best];
        let tok = match which {
            0 => Tok::Keyword(text.to_string()),
            1 => Tok::Float(text.to_string()),
            2 => Tok::Int { value: parse_dec_saturating(text), text: text.to_string() },
            3 => Tok::Hex(parse_hex_saturating(&text[2..])),
            4 => self.substitute_word(text),
            5 => Tok::Ipv4(text.to_string()),
            _ => Tok::Ipv6(text.to_string()),
        };
        Some((start + best, tok))
    }

    fn ipv4_len(&self, start: usize) -> usize {
        let mut i = start;
        for part in 0..4 {
            if part > 0 {
                if self.at(i) != Some(b'.') {
                    return 0;
                }
                i += 1;
            }
            let e = self.digits_end(i);
            if e == i {
                return 0;
            }
            i = e;
        }
        i - start
    }

    fn ipv6_len(&self, start: usize) -> usize {
        let b = self.bytes();
        let mut end = start;
        while end < b.len() && end - start < 64 && (b[end].is_ascii_hexdigit() || b[end] == b':' || b[end] == b'.') {
            end += 1;
        }
        let run = &self.src[start..end];
        if !run.contains("::") && run.matches(':').count() < 7 {
            return 0;
        }
        // Longest prefix that is a valid IPv6 address.
        (2..=run.len())
            .rev()
            .find(|&l| {
                let p = &run[..l];
                p.contains(':') && p.parse::<std::net::Ipv6Addr>().is_ok()
            })
            .unwrap_or(0)
    }

    fn substitute_word(&self, word: &str) -> Tok {
        let Some(value) = self.defines.get(word) else {
            return Tok::Word(word.to_string());
        };
        // packetdrill's quoted(): drop the first and last character.
        let strip = |v: &str| {
            let mut c = v.chars();
            c.next();
            c.next_back();
            c.as_str().to_string()
        };
        if value.starts_with('"') {
            return Tok::Str(strip(value));
        }
        if value.starts_with('`') {
            return Tok::BackQuoted(strip(value));
        }
        match strtol0(value) {
            Some(v) => Tok::Int { value: v, text: word.to_string() },
            None => Tok::Word(value.clone()),
        }
    }
}

fn parse_dec_saturating(text: &str) -> i64 {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text),
    };
    let mut v: i64 = 0;
    for d in digits.bytes() {
        let d = i64::from(d - b'0');
        v = match v.checked_mul(10).and_then(|x| if neg { x.checked_sub(d) } else { x.checked_add(d) }) {
            Some(x) => x,
            None => return if neg { i64::MIN } else { i64::MAX },
        };
    }
    v
}

fn parse_hex_saturating(digits: &str) -> i64 {
    let mut v: i64 = 0;
    for d in digits.chars() {
        let d = i64::from(d.to_digit(16).unwrap_or(0));
        v = match v.checked_mul(16).and_then(|x| x.checked_add(d)) {
            Some(x) => x,
            None => return i64::MAX,
        };
    }
    v
}

/// `strtol(value, &end, 0)` accepted only if it consumes the whole string and
/// does not saturate (packetdrill's define rule).
fn strtol0(value: &str) -> Option<i64> {
    let s = value.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if s.is_empty() {
        // strtol parsed nothing: end == value; *end is '\0' only if the whole
        // value was empty.
        return if value.is_empty() { Some(0) } else { None };
    }
    let (radix, digits) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if h.is_empty() {
            // "0x" alone: strtol parses the "0" and stops at 'x'.
            return None;
        }
        (16, h)
    } else if s.len() > 1 && s.starts_with('0') {
        (8, &s[1..])
    } else {
        (10, s)
    };
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let mag = i128::from_str_radix(digits, radix).ok()?;
    let v = if neg { -mag } else { mag };
    if v <= i128::from(i64::MIN) || v >= i128::from(i64::MAX) {
        return None;
    }
    i64::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        Lexer::tokenize(s, &HashMap::new()).unwrap().into_iter().map(|t| t.tok).collect()
    }

    fn int(v: i64) -> Tok {
        Tok::Int { value: v, text: v.to_string() }
    }

    #[test]
    fn numbers_and_times() {
        assert_eq!(toks("+0...0.5"), vec![Tok::Punct('+'), int(0), Tok::Ellipsis, Tok::Float("0.5".into()), Tok::Eof]);
        assert_eq!(
            toks("+.1~+.2"),
            vec![
                Tok::Punct('+'),
                Tok::Float(".1".into()),
                Tok::Punct('~'),
                Tok::Punct('+'),
                Tok::Float(".2".into()),
                Tok::Eof
            ]
        );
        assert_eq!(toks("-1 0x2"), vec![int(-1), Tok::Hex(2), Tok::Eof]);
        assert_eq!(toks("1e5"), vec![Tok::Word("1e5".into()), Tok::Eof]);
        assert_eq!(
            toks("192.0.2.1 ::1 fd3d:fa7b:d17d::1"),
            vec![
                Tok::Ipv4("192.0.2.1".into()),
                Tok::Ipv6("::1".into()),
                Tok::Ipv6("fd3d:fa7b:d17d::1".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn tcp_line() {
        assert_eq!(
            toks("< S. 0:0(0) ack 1 <sack 1:2>"),
            vec![
                Tok::Punct('<'),
                Tok::Word("S".into()),
                Tok::Punct('.'),
                int(0),
                Tok::Punct(':'),
                int(0),
                Tok::Punct('('),
                int(0),
                Tok::Punct(')'),
                Tok::Keyword("ack".into()),
                int(1),
                Tok::Punct('<'),
                Tok::Keyword("sack".into()),
                int(1),
                Tok::Punct(':'),
                int(2),
                Tok::Punct('>'),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn comments_code_strings_and_lines() {
        let ts =
            Lexer::tokenize("// c\n/* a\n b */ x # \n%{ a\nb }% \"s\\\"t\" `c\nd` --tolerance_usecs", &HashMap::new())
                .unwrap();
        let v: Vec<(Tok, usize)> = ts.into_iter().map(|t| (t.tok, t.line)).collect();
        assert_eq!(
            v,
            vec![
                (Tok::Word("x".into()), 3),
                (Tok::Punct('#'), 3),
                (Tok::Code("a\nb".into()), 4),
                (Tok::Str("s\\\"t".into()), 5),
                (Tok::BackQuoted("c\nd".into()), 5),
                (Tok::Opt("tolerance_usecs".into()), 6),
                (Tok::Eof, 6),
            ]
        );
    }

    #[test]
    fn keywords_and_defines() {
        let mut d = HashMap::new();
        d.insert("A".to_string(), "0x10".to_string());
        d.insert("B".to_string(), "\"str\"".to_string());
        d.insert("C".to_string(), "SOL_IP".to_string());
        d.insert("ack".to_string(), "5".to_string());
        let v: Vec<Tok> = Lexer::tokenize("A B C ack acks sequence#", &d).unwrap().into_iter().map(|t| t.tok).collect();
        assert_eq!(
            v,
            vec![
                Tok::Int { value: 16, text: "A".into() },
                Tok::Str("str".into()),
                Tok::Word("SOL_IP".into()),
                Tok::Keyword("ack".into()),
                Tok::Word("acks".into()),
                Tok::Keyword("sequence#".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn strtol_rules() {
        assert_eq!(strtol0("10"), Some(10));
        assert_eq!(strtol0("010"), Some(8));
        assert_eq!(strtol0("-0x1f"), Some(-31));
        assert_eq!(strtol0(""), Some(0));
        assert_eq!(strtol0("1a"), None);
        assert_eq!(strtol0("99999999999999999999"), None);
    }

    #[test]
    fn errors() {
        assert!(Lexer::tokenize("\"abc", &HashMap::new()).is_err());
        assert!(Lexer::tokenize("/* abc", &HashMap::new()).is_err());
        assert!(Lexer::tokenize("%{ abc", &HashMap::new()).is_err());
        assert_eq!(
            toks("99999999999999999999999"),
            vec![Tok::Int { value: i64::MAX, text: "99999999999999999999999".into() }, Tok::Eof]
        );
    }
}
