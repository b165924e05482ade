//! Recursive-descent parser for packetdrill scripts.
//!
//! Grammar (after packetdrill's `parser.y`):
//!
//! ```text
//! script      := option* [COMMAND] event+ [COMMAND] EOF
//! option      := --NAME [= value]
//! event       := time_spec action
//! time_spec   := '+' time | time | '*' | time '~' time | '+' time '~' '+' time
//! action      := packet | [... time] syscall | COMMAND | CODE
//! packet      := ('<'|'>') prefix* [ipinfo] (tcp | udp | icmp)
//! tcp         := [PORT>PORT] flags S:E(L) [ack N] [win N] [urg N] [<opts>|<...>]
//! syscall     := NAME '(' [expr (',' expr)*] ')' '=' expr [ERRNO (words)] [(words)]
//! ```
//!
//! Semantic checks done here (as packetdrill's parser does them): negative
//! times, backwards ranges, `*` and ranges only on outbound packets, `<...>`
//! only on outbound packets, `end == start + len` for sequence ranges, value
//! ranges of header fields, valid TCP flag characters.

use std::collections::HashMap;

use crate::ast::*;
use crate::lexer::{Lexer, Tok, Token};

/// A parse (or lex) error at a 1-based source line. Displays as
/// `LINE: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}: {message}")]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// Description.
    pub message: String,
}

/// Parse a packetdrill script. `defines` are the `-D NAME=value` command-line
/// definitions (substituted for words while lexing, as packetdrill does).
pub fn parse_script(text: &str, defines: &HashMap<String, String>) -> Result<Script, ParseError> {
    let mut p = Parser::new(text, defines)?;
    p.script()
}

type PResult<T> = Result<T, ParseError>;

/// Maximum nesting of expressions (guards against stack overflow).
const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    lexer: Lexer<'a>,
    cur: Token,
    depth: usize,
}

fn is_kw(t: &Tok, k: &str) -> bool {
    matches!(t, Tok::Keyword(w) if w == k)
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, defines: &HashMap<String, String>) -> PResult<Self> {
        let mut lexer = Lexer::new(text, defines);
        let cur = lexer.next_token()?;
        Ok(Parser { lexer, cur, depth: 0 })
    }

    fn bump(&mut self) -> PResult<Token> {
        let next = self.lexer.next_token()?;
        Ok(std::mem::replace(&mut self.cur, next))
    }

    fn tok(&self) -> &Tok {
        &self.cur.tok
    }

    fn line(&self) -> usize {
        self.cur.line
    }

    fn err_at<T>(&self, line: usize, msg: impl Into<String>) -> PResult<T> {
        Err(ParseError { line, message: msg.into() })
    }

    fn unexpected<T>(&self, expected: &str) -> PResult<T> {
        self.err_at(self.line(), format!("syntax error: expected {expected}, found {}", self.cur.tok.describe()))
    }

    fn is_punct(&self, c: char) -> bool {
        self.cur.tok == Tok::Punct(c)
    }

    fn eat_punct(&mut self, c: char) -> PResult<bool> {
        if self.is_punct(c) {
            self.bump()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn expect_punct(&mut self, c: char) -> PResult<()> {
        if self.eat_punct(c)? {
            Ok(())
        } else {
            self.unexpected(&format!("'{c}'"))
        }
    }

    fn is_kw(&self, k: &str) -> bool {
        is_kw(self.tok(), k)
    }

    fn eat_kw(&mut self, k: &str) -> PResult<bool> {
        if self.is_kw(k) {
            self.bump()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn expect_kw(&mut self, k: &str) -> PResult<()> {
        if self.eat_kw(k)? {
            Ok(())
        } else {
            self.unexpected(&format!("'{k}'"))
        }
    }

    /// A decimal INTEGER token (packetdrill's `INTEGER`).
    fn expect_int(&mut self, what: &str) -> PResult<i64> {
        match self.tok() {
            Tok::Int { value, .. } => {
                let v = *value;
                self.bump()?;
                Ok(v)
            }
            _ => self.unexpected(what),
        }
    }

    fn int_in_range(&mut self, what: &str, max: i64, range_msg: &str) -> PResult<i64> {
        let line = self.line();
        let v = self.expect_int(what)?;
        if !(0..=max).contains(&v) {
            return self.err_at(line, range_msg);
        }
        Ok(v)
    }

    fn u32_val(&mut self, what: &str, range_msg: &str) -> PResult<u32> {
        Ok(self.int_in_range(what, u32::MAX as i64, range_msg)? as u32)
    }

    fn u16_val(&mut self, what: &str, range_msg: &str) -> PResult<u16> {
        Ok(self.int_in_range(what, u16::MAX as i64, range_msg)? as u16)
    }

    // ---------------------------------------------------------------- script

    fn script(&mut self) -> PResult<Script> {
        let mut script = Script::default();
        while let Tok::Opt(name) = self.tok() {
            let name = name.clone();
            let line = self.line();
            self.bump()?;
            let value = if self.eat_punct('=')? { Some(self.option_value()?) } else { None };
            if name == "define" {
                let ok = value.as_deref().and_then(|v| v.split_once('=')).filter(|(k, _)| !k.is_empty());
                match ok {
                    Some((k, v)) => self.lexer.define(k, v),
                    None => return self.err_at(line, format!("bad definition: {}", value.as_deref().unwrap_or(""))),
                }
            }
            script.options.push((name, value));
        }
        if let Tok::BackQuoted(text) = self.tok() {
            script.init_command = Some(Command { line: self.line(), text: text.clone() });
            self.bump()?;
        }
        loop {
            match self.tok() {
                Tok::Eof => break,
                Tok::BackQuoted(text) if !script.events.is_empty() => {
                    script.cleanup_command = Some(Command { line: self.line(), text: text.clone() });
                    self.bump()?;
                    if self.tok() != &Tok::Eof {
                        return self.unexpected("end of file after the untimed cleanup command (events need a time)");
                    }
                    break;
                }
                _ => {
                    let ev = self.event()?;
                    script.events.push(ev);
                }
            }
        }
        if script.events.is_empty() {
            return self.err_at(self.line(), "syntax error: script has no events");
        }
        Ok(script)
    }

    fn option_value(&mut self) -> PResult<String> {
        let t = self.bump()?;
        let v = match t.tok {
            Tok::Int { text, .. } => text,
            Tok::Hex(v) => format!("{v:#x}"),
            Tok::Float(f) => f,
            Tok::Str(s) => s,
            Tok::Ipv4(a) | Tok::Ipv6(a) => a,
            Tok::Keyword(k) => k,
            Tok::Word(w) => {
                if self.eat_punct('=')? {
                    let rhs = self.bump()?;
                    match rhs.tok {
                        Tok::Word(r) | Tok::Keyword(r) => format!("{w}={r}"),
                        Tok::Int { text, .. } => format!("{w}={text}"),
                        Tok::Hex(v) => format!("{w}={v:#x}"),
                        Tok::Float(r) => format!("{w}={r}"),
                        Tok::Str(r) => format!("{w}=\"{r}\""),
                        Tok::BackQuoted(r) => format!("{w}=`{r}`"),
                        other => {
                            return self.err_at(
                                rhs.line,
                                format!("syntax error: bad option value after '{w}=': {}", other.describe()),
                            )
                        }
                    }
                } else {
                    w
                }
            }
            other => return self.err_at(t.line, format!("syntax error: bad option value: {}", other.describe())),
        };
        Ok(v)
    }

    // ---------------------------------------------------------------- events

    /// `time`: FLOAT or INTEGER seconds -> microseconds.
    fn time_value(&mut self) -> PResult<Micros> {
        let line = self.line();
        let usecs = match self.tok() {
            Tok::Float(text) => {
                let f: f64 = text.parse().unwrap_or(f64::NAN);
                if f < 0.0 {
                    return self.err_at(line, "negative time");
                }
                let us = f * 1.0e6;
                if !us.is_finite() || us >= i64::MAX as f64 {
                    return self.err_at(line, "time out of range");
                }
                us as i64
            }
            Tok::Int { value, .. } => {
                if *value < 0 {
                    return self.err_at(line, "negative time");
                }
                match value.checked_mul(1_000_000) {
                    Some(v) => v,
                    None => return self.err_at(line, "time out of range"),
                }
            }
            _ => return self.unexpected("a time"),
        };
        self.bump()?;
        Ok(usecs)
    }

    fn event(&mut self) -> PResult<Event> {
        let line = self.line();
        let time = match self.tok() {
            Tok::Punct('*') => {
                self.bump()?;
                TimeSpec::Any
            }
            Tok::Punct('+') => {
                self.bump()?;
                let start = self.time_value()?;
                if self.eat_punct('~')? {
                    self.expect_punct('+')?;
                    let end = self.time_value()?;
                    TimeSpec::Range { start: Time::relative(start), end: Time::relative(end) }
                } else {
                    TimeSpec::Relative(start)
                }
            }
            Tok::Float(_) | Tok::Int { .. } => {
                let start = self.time_value()?;
                if self.eat_punct('~')? {
                    let end = self.time_value()?;
                    TimeSpec::Range { start: Time::absolute(start), end: Time::absolute(end) }
                } else {
                    TimeSpec::Absolute(start)
                }
            }
            _ => return self.unexpected("an event time ('+', '*' or a number)"),
        };
        if let TimeSpec::Range { start, end } = time {
            if end.usecs < start.usecs {
                return self.err_at(line, "time range is backwards");
            }
        }
        // Action.
        let (time, kind) = match self.tok().clone() {
            Tok::Punct('<') | Tok::Punct('>') => (time, EventKind::Packet(self.packet()?)),
            Tok::BackQuoted(text) => {
                self.bump()?;
                (time, EventKind::Command(text))
            }
            Tok::Code(text) => {
                self.bump()?;
                (time, EventKind::Code(text))
            }
            Tok::Ellipsis => {
                self.bump()?;
                let end = self.time_value()?;
                let time = match time {
                    TimeSpec::Absolute(s) => TimeSpec::Blocking { start: Time::absolute(s), end: Time::absolute(end) },
                    TimeSpec::Relative(s) => TimeSpec::Blocking { start: Time::relative(s), end: Time::relative(end) },
                    // packetdrill rejects these combinations semantically.
                    TimeSpec::Any => {
                        return self.err_at(line, "event time <star> can only be used with outbound packets")
                    }
                    _ => return self.err_at(line, "event time range can only be used with outbound packets"),
                };
                (time, EventKind::Syscall(self.syscall()?))
            }
            Tok::Word(_) => (time, EventKind::Syscall(self.syscall()?)),
            _ => return self.unexpected("a packet, system call, command or code block"),
        };
        let outbound_packet = matches!(&kind, EventKind::Packet(p) if p.direction == Direction::Outbound);
        match time {
            TimeSpec::Any if !outbound_packet => {
                return self.err_at(line, "event time <star> can only be used with outbound packets")
            }
            TimeSpec::Range { .. } if !outbound_packet => {
                return self.err_at(line, "event time range can only be used with outbound packets")
            }
            _ => {}
        }
        Ok(Event { line, time, kind })
    }

    // --------------------------------------------------------------- packets

    fn packet(&mut self) -> PResult<PacketEvent> {
        let direction = match self.bump()?.tok {
            Tok::Punct('<') => Direction::Inbound,
            _ => Direction::Outbound,
        };
        let mut encap = Vec::new();
        // packet_prefix: outer IP headers (GRE / MPLS are not supported).
        loop {
            let version = if self.is_kw("ipv4") {
                IpVersion::V4
            } else if self.is_kw("ipv6") {
                IpVersion::V6
            } else if self.is_kw("gre") || self.is_kw("GREv0") || self.is_kw("mpls") {
                return self.err_at(self.line(), "GRE/MPLS encapsulation is not supported by this parser");
            } else {
                break;
            };
            self.bump()?;
            let ip = self.opt_ip_info()?;
            let src = self.ip_addr(version)?;
            self.expect_punct('>')?;
            let dst = self.ip_addr(version)?;
            self.expect_punct(':')?;
            encap.push(IpEncap { version, ip, src, dst });
        }
        let ip = self.opt_ip_info()?;
        if self.is_kw("udp") {
            self.bump()?;
            let ports = self.opt_ports()?;
            self.expect_punct('(')?;
            let len = self.u16_val("UDP payload size", "UDP payload size out of range")?;
            self.expect_punct(')')?;
            return Ok(PacketEvent {
                direction,
                encap,
                ip,
                ports,
                body: PacketBody::Udp(UdpSpec { payload_len: len }),
            });
        }
        if self.is_kw("icmp") {
            self.bump()?;
            let icmp = self.icmp()?;
            return Ok(PacketEvent { direction, encap, ip, ports: None, body: PacketBody::Icmp(icmp) });
        }
        if self.is_kw("encap") {
            return self.err_at(self.line(), "PSP encapsulation is not supported by this parser");
        }
        let ports = self.opt_ports()?;
        let tcp = self.tcp(direction)?;
        Ok(PacketEvent { direction, encap, ip, ports, body: PacketBody::Tcp(tcp) })
    }

    fn ip_addr(&mut self, v: IpVersion) -> PResult<String> {
        match (self.tok(), v) {
            (Tok::Ipv4(a), IpVersion::V4) | (Tok::Ipv6(a), IpVersion::V6) => {
                let a = a.clone();
                self.bump()?;
                Ok(a)
            }
            _ => self.unexpected("an IP address"),
        }
    }

    fn opt_ports(&mut self) -> PResult<Option<(u16, u16)>> {
        if let Tok::Int { .. } = self.tok() {
            // Either a port pair or (for TCP) nothing: flags never start with
            // an integer, so an integer here must be a source port.
            let sport = self.u16_val("source port", "src port out of range")?;
            self.expect_punct('>')?;
            let dport = self.u16_val("destination port", "dst port out of range")?;
            return Ok(Some((sport, dport)));
        }
        Ok(None)
    }

    /// `(ip_info)` or `[ip_info]` where
    /// `ip_info := tos_spec | flowlabel HEX | ttl INT | tos_spec ',' flowlabel HEX`.
    fn opt_ip_info(&mut self) -> PResult<Option<IpInfo>> {
        let close = match self.tok() {
            Tok::Punct('(') => ')',
            Tok::Punct('[') => ']',
            _ => return Ok(None),
        };
        self.bump()?;
        let mut info = IpInfo::default();
        const WHAT: &str = "an IP annotation (ect0, ect1, ce, noecn, ect01, tos, flowlabel, ttl)";
        let Tok::Keyword(k) = self.tok().clone() else {
            return self.unexpected(WHAT);
        };
        let ecn = match k.as_str() {
            "noecn" => Some(TosSpec::Ecn(IpEcn::NotEct)),
            "ect0" => Some(TosSpec::Ecn(IpEcn::Ect0)),
            "ect1" => Some(TosSpec::Ecn(IpEcn::Ect1)),
            "ce" => Some(TosSpec::Ecn(IpEcn::Ce)),
            "ect01" => Some(TosSpec::Ect01),
            _ => None,
        };
        match k.as_str() {
            _ if ecn.is_some() || k == "tos" => {
                self.bump()?;
                info.tos = match ecn {
                    Some(t) => Some(t),
                    None => match self.tok() {
                        Tok::Hex(v) if (0..=255).contains(v) => {
                            let v = *v as u8;
                            self.bump()?;
                            Some(TosSpec::Tos(v))
                        }
                        Tok::Hex(_) => return self.err_at(self.line(), "tos out of range for 8 bits"),
                        _ => return self.unexpected("a hex TOS value"),
                    },
                };
                if self.eat_punct(',')? {
                    info.flow_label = Some(self.flow_label()?);
                }
            }
            "flowlabel" => info.flow_label = Some(self.flow_label()?),
            "ttl" => {
                self.bump()?;
                let v = self.int_in_range("a TTL", 255, "ttl out of range")?;
                info.ttl = Some(v as u8);
            }
            _ => return self.unexpected(WHAT),
        }
        self.expect_punct(close)?;
        Ok(Some(info))
    }

    fn flow_label(&mut self) -> PResult<u32> {
        self.expect_kw("flowlabel")?;
        match self.tok() {
            Tok::Hex(v) if (0..=0xfffff).contains(v) => {
                let v = *v as u32;
                self.bump()?;
                Ok(v)
            }
            Tok::Hex(_) => self.err_at(self.line(), "flowlabel out of range for 20 bits"),
            _ => self.unexpected("a hex flow label"),
        }
    }

    /// `S:E(L)` with packetdrill's checks.
    fn seq(&mut self) -> PResult<(u32, u32, u32)> {
        let line = self.line();
        let start = self.u32_val("a sequence range (start:end(len))", "TCP start sequence number out of range")?;
        self.expect_punct(':')?;
        let end = self.u32_val("end sequence number", "TCP end sequence number out of range")?;
        self.expect_punct('(')?;
        let len = self.u16_val("payload length", "TCP payload size out of range")?;
        self.expect_punct(')')?;
        if u64::from(end) != u64::from(start) + u64::from(len) {
            return self.err_at(line, "inconsistent TCP sequence numbers and payload size");
        }
        Ok((start, end, u32::from(len)))
    }

    fn flags(&mut self) -> PResult<String> {
        let line = self.line();
        let flags = match self.tok().clone() {
            Tok::Word(w) => {
                self.bump()?;
                match self.tok().clone() {
                    Tok::Punct('.') => {
                        self.bump()?;
                        format!("{w}.")
                    }
                    Tok::Float(f) => {
                        self.bump()?;
                        format!("{w}{f}")
                    }
                    _ => w,
                }
            }
            Tok::Float(f) => {
                self.bump()?;
                f
            }
            Tok::Punct('.') => {
                self.bump()?;
                ".".to_string()
            }
            Tok::Punct('-') => {
                self.bump()?;
                String::new()
            }
            _ => return self.unexpected("TCP flags"),
        };
        validate_flags(&flags).map_err(|m| ParseError { line, message: m })?;
        Ok(flags)
    }

    fn tcp(&mut self, direction: Direction) -> PResult<TcpSpec> {
        let flags = self.flags()?;
        let (seq_start, seq_end, payload_len) = self.seq()?;
        let ack = if self.eat_kw("ack")? {
            Some(self.u32_val("an ack number", "TCP ack sequence number out of range")?)
        } else {
            None
        };
        let win =
            if self.eat_kw("win")? { Some(self.u16_val("a window", "TCP window value out of range")?) } else { None };
        let urg = if self.eat_kw("urg")? {
            Some(self.u16_val("an urgent pointer", "urg_ptr value out of range")?)
        } else {
            None
        };
        let options = if self.is_punct('<') {
            let line = self.line();
            self.bump()?;
            if self.tok() == &Tok::Ellipsis {
                self.bump()?;
                self.expect_punct('>')?;
                if direction != Direction::Outbound {
                    return self.err_at(line, "<...> for TCP options can only be used with outbound packets");
                }
                TcpOptions::Any
            } else {
                let mut list = vec![self.tcp_option()?];
                while self.eat_punct(',')? {
                    list.push(self.tcp_option()?);
                }
                self.expect_punct('>')?;
                TcpOptions::List(list)
            }
        } else {
            TcpOptions::List(Vec::new())
        };
        Ok(TcpSpec { flags, seq_start, seq_end, payload_len, ack, win, urg, options })
    }

    fn hex_blob(&mut self, optional: bool) -> PResult<String> {
        match self.tok() {
            Tok::Word(w) => {
                let w = w.clone();
                self.bump()?;
                Ok(w)
            }
            Tok::Int { text, .. } => {
                let t = text.clone();
                self.bump()?;
                Ok(t)
            }
            _ if optional => Ok(String::new()),
            _ => self.unexpected("a hex string"),
        }
    }

    fn tcp_option(&mut self) -> PResult<TcpOption> {
        let Tok::Keyword(k) = self.tok().clone() else {
            return self.unexpected("a TCP option");
        };
        self.bump()?;
        Ok(match k.as_str() {
            "nop" => TcpOption::Nop,
            "eol" => TcpOption::Eol,
            "mss" => TcpOption::Mss(self.u16_val("an MSS value", "mss value out of range")?),
            "wscale" => {
                TcpOption::WScale(
                    self.int_in_range("a window scale", 255, "window scale shift count out of range")? as u8
                )
            }
            "sackOK" => TcpOption::SackOk,
            "sack" => {
                let mut blocks = Vec::new();
                while let Tok::Int { .. } = self.tok() {
                    let l = self.u32_val("SACK left edge", "TCP SACK left sequence number out of range")?;
                    self.expect_punct(':')?;
                    let r = self.u32_val("SACK right edge", "TCP SACK right sequence number out of range")?;
                    blocks.push((l, r));
                }
                if blocks.is_empty() {
                    return self.unexpected("a SACK block (L:R)");
                }
                TcpOption::Sack(blocks)
            }
            "TS" => {
                self.expect_kw("val")?;
                let val = self.u32_val("a TS value", "ts val out of range")?;
                self.expect_kw("ecr")?;
                let ecr = self.u32_val("a TS echo reply", "ecr val out of range")?;
                TcpOption::Timestamp { val, ecr }
            }
            "md5" => TcpOption::Md5(self.hex_blob(false)?),
            "FO" => TcpOption::FastOpen(self.hex_blob(true)?),
            "FOEXP" => TcpOption::FastOpenExp(self.hex_blob(true)?),
            "ECN" => {
                let mut fields = Vec::new();
                loop {
                    let f = if self.is_kw("e0b") {
                        AccEcnField::E0b
                    } else if self.is_kw("ceb") {
                        AccEcnField::Ceb
                    } else if self.is_kw("e1b") {
                        AccEcnField::E1b
                    } else {
                        break;
                    };
                    self.bump()?;
                    let v = self.int_in_range("an AccECN counter", 0xff_ffff, "TCP AccECN field value out of range")?;
                    fields.push((f, v as u32));
                }
                if fields.is_empty() || fields.len() > 3 || fields[0].0 == AccEcnField::Ceb {
                    return self.err_at(self.line(), "syntax error: bad AccECN option");
                }
                TcpOption::AccEcn(fields)
            }
            _ => return self.err_at(self.line(), format!("syntax error: unknown TCP option '{k}'")),
        })
    }

    fn icmp(&mut self) -> PResult<IcmpSpec> {
        let icmp_type = match self.tok() {
            Tok::Word(w) => w.clone(),
            _ => return self.unexpected("an ICMP type"),
        };
        self.bump()?;
        let code = match self.tok() {
            Tok::Word(w) => {
                let w = w.clone();
                self.bump()?;
                Some(w)
            }
            _ => None,
        };
        let mtu = if self.eat_kw("mtu")? { Some(self.expect_int("an MTU")?) } else { None };
        let echo_id = if self.eat_kw("id")? { Some(self.expect_int("an echo id")?) } else { None };
        let echoed = if self.eat_punct('[')? {
            let e = if self.eat_kw("udp")? {
                self.expect_punct('(')?;
                let l = self.expect_int("a payload length")?;
                self.expect_punct(')')?;
                IcmpEchoed::Udp { payload_len: l }
            } else if self.eat_kw("raw")? {
                self.expect_punct('(')?;
                let l = self.expect_int("a payload length")?;
                self.expect_punct(')')?;
                IcmpEchoed::Raw { payload_len: l }
            } else {
                let (seq_start, seq_end, payload_len) = self.seq()?;
                IcmpEchoed::Tcp { seq_start, seq_end, payload_len }
            };
            self.expect_punct(']')?;
            Some(e)
        } else {
            None
        };
        Ok(IcmpSpec { icmp_type, code, mtu, echo_id, echoed })
    }

    // -------------------------------------------------------------- syscalls

    fn syscall(&mut self) -> PResult<SyscallEvent> {
        let name = match self.tok() {
            Tok::Word(w) => w.clone(),
            _ => return self.unexpected("a system call name"),
        };
        self.bump()?;
        self.expect_punct('(')?;
        let args = self.expr_list(')')?;
        self.expect_punct('=')?;
        let result = self.expr()?;
        let errno = if let Tok::Word(w) = self.tok() {
            let name = w.clone();
            self.bump()?;
            let strerror = if self.is_punct('(') { Some(self.note()?) } else { None };
            Some(Errno { name, strerror })
        } else {
            None
        };
        let note = if self.is_punct('(') { Some(self.note()?) } else { None };
        Ok(SyscallEvent { name, args, result, errno, note })
    }

    /// `( word word ... )` -> words joined by single spaces. Accepts words,
    /// keywords and numbers (packetdrill accepts only words and `flags`).
    fn note(&mut self) -> PResult<String> {
        self.expect_punct('(')?;
        let mut words: Vec<String> = Vec::new();
        loop {
            let w = match self.tok() {
                Tok::Word(w) | Tok::Keyword(w) | Tok::Float(w) => w.clone(),
                Tok::Int { text, .. } => text.clone(),
                Tok::Punct(')') if !words.is_empty() => break,
                _ => return self.unexpected("a word in a parenthesised note"),
            };
            words.push(w);
            self.bump()?;
        }
        self.bump()?;
        Ok(words.join(" "))
    }

    /// Comma-separated expressions up to (and consuming) `close`.
    fn expr_list(&mut self, close: char) -> PResult<Vec<Expr>> {
        let mut out = Vec::new();
        if self.eat_punct(close)? {
            return Ok(out);
        }
        loop {
            out.push(self.expr()?);
            if self.eat_punct(',')? {
                continue;
            }
            if self.eat_punct(close)? {
                return Ok(out);
            }
            return self.unexpected(&format!("',' or '{close}'"));
        }
    }

    fn expr(&mut self) -> PResult<Expr> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let line = self.line();
            self.depth -= 1;
            return self.err_at(line, "expression nested too deeply");
        }
        let r = self.expr_inner();
        self.depth -= 1;
        r
    }

    fn expr_inner(&mut self) -> PResult<Expr> {
        let mut e = self.primary()?;
        while self.eat_punct('|')? {
            let rhs = self.primary()?;
            e = Expr::Or(Box::new(e), Box::new(rhs));
        }
        Ok(e)
    }

    fn primary(&mut self) -> PResult<Expr> {
        match self.tok().clone() {
            Tok::Ellipsis => {
                self.bump()?;
                Ok(Expr::Ellipsis)
            }
            Tok::Int { value, .. } | Tok::Hex(value) => {
                self.bump()?;
                Ok(Expr::Int(value))
            }
            Tok::Str(s) => {
                self.bump()?;
                if self.tok() == &Tok::Ellipsis {
                    self.bump()?;
                    return Ok(Expr::StrEllipsis(s));
                }
                let mut s = s;
                while let Tok::Str(more) = self.tok() {
                    s.push_str(more);
                    self.bump()?;
                }
                Ok(Expr::Str(s))
            }
            Tok::Punct('[') => {
                self.bump()?;
                Ok(Expr::List(self.expr_list(']')?))
            }
            Tok::Punct('{') => {
                self.bump()?;
                Ok(Expr::Struct(self.expr_list('}')?))
            }
            Tok::Word(name) | Tok::Keyword(name) => {
                self.bump()?;
                let arg_line = self.line();
                let args = if self.eat_punct('(')? { Some(self.expr_list(')')?) } else { None };
                if self.eat_punct('=')? {
                    let arg = match args {
                        None => None,
                        Some(mut a) if a.len() == 1 => Some(Box::new(a.remove(0))),
                        Some(_) => {
                            return self.err_at(arg_line, format!("field '{name}(...)' takes exactly one argument"))
                        }
                    };
                    // `name=value`: the value extends over `|` (bison shifts).
                    let value = self.expr()?;
                    return Ok(Expr::Named { name, arg, value: Box::new(value) });
                }
                Ok(match args {
                    Some(args) => Expr::Call { name, args },
                    None => Expr::Symbol(name),
                })
            }
            _ => self.unexpected("an expression"),
        }
    }
}

/// packetdrill's `is_tcp_flags_spec_valid`.
fn validate_flags(flags: &str) -> Result<(), String> {
    let mut has_ecn = false;
    let mut has_ace = false;
    for c in flags.chars() {
        if !".FSRPEWAU01234567".contains(c) {
            return Err(format!("Invalid TCP flag: '{c}'"));
        }
        if "EWA".contains(c) {
            if has_ace {
                return Err(format!("Conflicting TCP flag: '{c}'"));
            }
            has_ecn = true;
        }
        if c.is_ascii_digit() {
            if has_ecn || has_ace {
                return Err(format!("Conflicting TCP flag: '{c}'"));
            }
            has_ace = true;
        }
    }
    Ok(())
}
