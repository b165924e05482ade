//! Property tests: the parser never panics, whatever the input.

use std::collections::HashMap;

use proptest::prelude::*;
use utcp_drill::parse_script;

/// Fragments that look like packetdrill, so random concatenations reach deep
/// into the grammar.
const FRAGMENTS: &[&str] = &[
    "0",
    "+0",
    "+.1",
    "0.5",
    "*",
    "~",
    "...",
    "<",
    ">",
    "S",
    "S.",
    ".",
    "P.",
    "F.",
    "R",
    "-",
    "1:1(0)",
    "0:0(0)",
    "1:1001(1000)",
    "ack",
    "win",
    "urg",
    "1",
    "-1",
    "0x2",
    "65535",
    "4294967295",
    "<mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7>",
    "<...>",
    "sack",
    "1:2",
    "socket",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    "=",
    "|",
    "EPIPE",
    "(Broken pipe)",
    "msg_iov(1)=",
    "fd=",
    "events=",
    "\"str\"",
    "`cmd`",
    "%{ code }%",
    "// c\n",
    "/* c */",
    "\n",
    " ",
    "\t",
    "--opt=1\n",
    "[ect0]",
    "(ce)",
    "udp",
    "icmp",
    "ipv4",
    "1.2.3.4",
    "::1",
    "#",
    "%",
    "\"",
    "`",
    "%{",
    "/*",
    "é",
    "\u{0}",
    "ECN e0b 1",
    "FO",
    "md5",
    "tos 0x1",
    "flowlabel 0xfffff",
    "ttl",
    "sequence#",
    "99999999999999999999",
];

fn fragment_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(FRAGMENTS).prop_map(str::to_string),
            any::<char>().prop_map(|c| c.to_string()),
        ],
        0..60,
    )
    .prop_map(|v| v.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in any::<String>()) {
        let _ = parse_script(&s, &HashMap::new());
    }

    #[test]
    fn token_soup_never_panics(s in fragment_soup()) {
        let _ = parse_script(&s, &HashMap::new());
    }

    #[test]
    fn defines_never_panic(s in fragment_soup(), k in "[A-Z]{1,3}", v in any::<String>()) {
        let mut d = HashMap::new();
        d.insert(k, v);
        let _ = parse_script(&s, &d);
    }

    #[test]
    fn errors_have_valid_lines(s in fragment_soup()) {
        if let Err(e) = parse_script(&s, &HashMap::new()) {
            let nlines = s.matches('\n').count() + 1;
            prop_assert!(e.line >= 1 && e.line <= nlines, "line {} of {}", e.line, nlines);
            let prefix = format!("{}: ", e.line);
            prop_assert!(e.to_string().starts_with(&prefix));
        }
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let s = format!("0 f({}1{}) = 0\n", "[".repeat(10_000), "]".repeat(10_000));
    let e = parse_script(&s, &HashMap::new()).unwrap_err();
    assert!(e.message.contains("nested too deeply"), "{e}");
}
