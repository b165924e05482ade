//! Unit tests for each script construct, with exact AST assertions.

use std::collections::HashMap;

use utcp_drill::ast::*;
use utcp_drill::{parse_script, ParseError};

fn parse(s: &str) -> Script {
    match parse_script(s, &HashMap::new()) {
        Ok(x) => x,
        Err(e) => panic!("parse failed: {e}\n{s}"),
    }
}

fn parse_err(s: &str) -> ParseError {
    match parse_script(s, &HashMap::new()) {
        Ok(x) => panic!("expected error, got {x:#?}"),
        Err(e) => e,
    }
}

/// The single event of a one-event script.
fn one(s: &str) -> Event {
    let mut sc = parse(s);
    assert_eq!(sc.events.len(), 1, "{s}");
    sc.events.remove(0)
}

fn syscall(s: &str) -> SyscallEvent {
    match one(s).kind {
        EventKind::Syscall(c) => c,
        k => panic!("not a syscall: {k:?}"),
    }
}

fn tcp(s: &str) -> (PacketEvent, TcpSpec) {
    match one(s).kind {
        EventKind::Packet(p) => {
            let t = p.tcp().expect("tcp").clone();
            (p, t)
        }
        k => panic!("not a packet: {k:?}"),
    }
}

fn sym(s: &str) -> Expr {
    Expr::Symbol(s.to_string())
}

fn named(n: &str, arg: Option<Expr>, v: Expr) -> Expr {
    Expr::Named { name: n.to_string(), arg: arg.map(Box::new), value: Box::new(v) }
}

fn or(a: Expr, b: Expr) -> Expr {
    Expr::Or(Box::new(a), Box::new(b))
}

#[test]
fn options_comments_init_and_cleanup() {
    let s = parse(
        "// header comment\n/* block\ncomment */\n--tolerance_usecs=10000\n--mss=1000\n--verbose\n\
         --ip_version=ipv4\n--local_ip=192.168.0.1\n\
         `./defaults.sh\nsysctl -q x=1`\n\
         0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3 // trailing\n\
         `cleanup.sh`\n",
    );
    assert_eq!(
        s.options,
        vec![
            ("tolerance_usecs".to_string(), Some("10000".to_string())),
            ("mss".to_string(), Some("1000".to_string())),
            ("verbose".to_string(), None),
            ("ip_version".to_string(), Some("ipv4".to_string())),
            ("local_ip".to_string(), Some("192.168.0.1".to_string())),
        ]
    );
    assert_eq!(s.init_command, Some(Command { line: 9, text: "./defaults.sh\nsysctl -q x=1".to_string() }));
    assert_eq!(
        s.events,
        vec![Event {
            line: 11,
            time: TimeSpec::Absolute(0),
            kind: EventKind::Syscall(SyscallEvent {
                name: "socket".into(),
                args: vec![Expr::Ellipsis, sym("SOCK_STREAM"), sym("IPPROTO_TCP")],
                result: Expr::Int(3),
                errno: None,
                note: None,
            }),
        }]
    );
    assert_eq!(s.cleanup_command, Some(Command { line: 12, text: "cleanup.sh".to_string() }));
}

#[test]
fn in_script_define_option() {
    let s = parse("--define=FOO=42\n0 close(FOO) = 0\n");
    assert_eq!(s.options, vec![("define".into(), Some("FOO=42".into()))]);
    let EventKind::Syscall(c) = &s.events[0].kind else { panic!() };
    assert_eq!(c.args, vec![Expr::Int(42)]);
}

#[test]
fn command_line_defines() {
    let mut d = HashMap::new();
    d.insert("CMSG_LEVEL_IP".to_string(), "SOL_IP".to_string());
    d.insert("N".to_string(), "0x10".to_string());
    d.insert("S".to_string(), "\"abc\"".to_string());
    let s = parse_script("0 f(CMSG_LEVEL_IP, N, S) = N\n", &d).unwrap();
    let EventKind::Syscall(c) = &s.events[0].kind else { panic!() };
    assert_eq!(c.args, vec![sym("SOL_IP"), Expr::Int(16), Expr::Str("abc".into())]);
    assert_eq!(c.result, Expr::Int(16));
}

#[test]
fn time_specs() {
    let times: Vec<TimeSpec> = parse(
        "0.100 close(3) = 0\n+0.1 close(3) = 0\n+.01 close(3) = 0\n2 close(3) = 0\n\
         * > . 1:1(0) ack 1\n0.1~0.2 > . 1:1(0) ack 1\n+0.1~+0.2 > . 1:1(0) ack 1\n\
         +0...0.5 read(3, ..., 10) = 10\n0.1...0.2 read(3, ..., 10) = 10\n+.1...0.25 read(3, ..., 1) = 1\n",
    )
    .events
    .into_iter()
    .map(|e| e.time)
    .collect();
    assert_eq!(
        times,
        vec![
            TimeSpec::Absolute(100_000),
            TimeSpec::Relative(100_000),
            TimeSpec::Relative(10_000),
            TimeSpec::Absolute(2_000_000),
            TimeSpec::Any,
            TimeSpec::Range { start: Time::absolute(100_000), end: Time::absolute(200_000) },
            TimeSpec::Range { start: Time::relative(100_000), end: Time::relative(200_000) },
            TimeSpec::Blocking { start: Time::relative(0), end: Time::relative(500_000) },
            TimeSpec::Blocking { start: Time::absolute(100_000), end: Time::absolute(200_000) },
            TimeSpec::Blocking { start: Time::relative(100_000), end: Time::relative(250_000) },
        ]
    );
}

#[test]
fn time_semantic_errors() {
    assert_eq!(
        parse_err("0 close(3) = 0\n* close(3) = 0\n").to_string(),
        "2: event time <star> can only be used with outbound packets"
    );
    assert_eq!(
        parse_err("+0~+1 < . 1:1(0) ack 1 win 10\n").message,
        "event time range can only be used with outbound packets"
    );
    assert_eq!(parse_err("0.2~0.1 > . 1:1(0) ack 1\n").message, "time range is backwards");
    assert_eq!(parse_err("-1 close(3) = 0\n").message, "negative time");
    // Mixed relative/absolute ranges are a syntax error in packetdrill.
    assert!(parse_err("+0~1 > . 1:1(0) ack 1\n").message.starts_with("syntax error"));
    // Blocking end time only for syscalls.
    assert!(parse_err("0...1 > . 1:1(0) ack 1\n").message.starts_with("syntax error"));
}

#[test]
fn event_lines() {
    let s = parse("\n\n  0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n\n/* x\n*/ +0 close(3) = 0\n");
    let lines: Vec<usize> = s.events.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![3, 6]);
}

#[test]
fn tcp_packets() {
    let (p, t) = tcp("+0 < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>\n");
    assert_eq!(p.direction, Direction::Inbound);
    assert_eq!(p.ip, None);
    assert_eq!(p.ports, None);
    assert_eq!(
        t,
        TcpSpec {
            flags: "S".into(),
            seq_start: 0,
            seq_end: 0,
            payload_len: 0,
            ack: None,
            win: Some(32792),
            urg: None,
            options: TcpOptions::List(vec![
                TcpOption::Mss(1000),
                TcpOption::SackOk,
                TcpOption::Nop,
                TcpOption::Nop,
                TcpOption::Nop,
                TcpOption::WScale(7),
            ]),
        }
    );

    let (p, t) = tcp("+0 > S. 0:0(0) ack 1 <...>\n");
    assert_eq!(p.direction, Direction::Outbound);
    assert_eq!(t.flags, "S.");
    assert_eq!(t.ack, Some(1));
    assert_eq!(t.win, None);
    assert_eq!(t.options, TcpOptions::Any);

    let (_, t) = tcp("+0 < P. 1:1001(1000) ack 1 win 257\n");
    assert_eq!((t.flags.as_str(), t.seq_start, t.seq_end, t.payload_len), ("P.", 1, 1001, 1000));
    assert_eq!(t.options, TcpOptions::List(vec![]));

    let (_, t) = tcp("+0 < U. 1:2(1) ack 1 win 100 urg 1\n");
    assert_eq!((t.flags.as_str(), t.urg), ("U.", Some(1)));

    let (_, t) = tcp("+0 < - 0:0(0) win 10\n");
    assert_eq!(t.flags, "");
    let (_, t) = tcp("+0 < . 1:1(0) ack 1 win 10\n");
    assert_eq!(t.flags, ".");
    let (_, t) = tcp("+0 < SEW 0:0(0) win 10\n");
    assert_eq!(t.flags, "SEW");
    let (_, t) = tcp("+0 < FP. 1:1(0) ack 1 win 10\n");
    assert_eq!(t.flags, "FP.");
    let (_, t) = tcp("+0 > R 1:1(0) win 0");
    assert_eq!((t.flags.as_str(), t.win), ("R", Some(0)));
}

#[test]
fn tcp_options_all_kinds() {
    let (_, t) = tcp("+0 > . 1:1(0) ack 1 <nop, eol, sack 1:2 3:4, TS val 100 ecr 0, md5 0123abcd, \
         FO 0102030405060708, FO, FOEXP abcd, ECN e0b 1 ceb 2 e1b 3>\n");
    assert_eq!(
        t.options,
        TcpOptions::List(vec![
            TcpOption::Nop,
            TcpOption::Eol,
            TcpOption::Sack(vec![(1, 2), (3, 4)]),
            TcpOption::Timestamp { val: 100, ecr: 0 },
            TcpOption::Md5("0123abcd".into()),
            TcpOption::FastOpen("0102030405060708".into()),
            TcpOption::FastOpen(String::new()),
            TcpOption::FastOpenExp("abcd".into()),
            TcpOption::AccEcn(vec![(AccEcnField::E0b, 1), (AccEcnField::Ceb, 2), (AccEcnField::E1b, 3)]),
        ])
    );
}

#[test]
fn tcp_semantic_errors() {
    assert_eq!(parse_err("0 < . 1:10(5) ack 1 win 10\n").message, "inconsistent TCP sequence numbers and payload size");
    assert_eq!(parse_err("0 < . 1:1(0) ack 1 win 70000\n").message, "TCP window value out of range");
    assert_eq!(
        parse_err("0 < . 1:1(0) ack 1 win 10 <...>\n").message,
        "<...> for TCP options can only be used with outbound packets"
    );
    assert_eq!(parse_err("0 < SX 0:0(0) win 10\n").message, "Invalid TCP flag: 'X'");
    assert_eq!(parse_err("0 < S 0:0(0) win 10 <mss 70000>\n").message, "mss value out of range");
    assert!(parse_err("0 < S 0:0(0) win 10 <bogus 1>\n").message.starts_with("syntax error"));
}

#[test]
fn ip_annotations_ports_encap() {
    let (p, t) = tcp("0 < [ect0] S 0:0(0) win 10\n");
    assert_eq!(p.ip, Some(IpInfo { tos: Some(TosSpec::Ecn(IpEcn::Ect0)), flow_label: None, ttl: None }));
    assert_eq!(t.flags, "S");
    let (p, _) = tcp("0 > (ce) . 1:1(0) ack 1\n");
    assert_eq!(p.ip.unwrap().tos, Some(TosSpec::Ecn(IpEcn::Ce)));
    let (p, _) = tcp("0 > [ect01, flowlabel 0x3] . 1:1(0) ack 1\n");
    assert_eq!(p.ip, Some(IpInfo { tos: Some(TosSpec::Ect01), flow_label: Some(3), ttl: None }));
    let (p, _) = tcp("0 > [tos 0x2] . 1:1(0) ack 1\n");
    assert_eq!(p.ip.unwrap().tos, Some(TosSpec::Tos(2)));
    let (p, _) = tcp("0 > [ttl 64] . 1:1(0) ack 1\n");
    assert_eq!(p.ip.unwrap().ttl, Some(64));
    let (p, _) = tcp("0 < 8080>80 S 0:0(0) win 10\n");
    assert_eq!(p.ports, Some((8080, 80)));
    let (p, _) = tcp("0 < ipv4 1.2.3.4 > 5.6.7.8: S 0:0(0) win 10\n");
    assert_eq!(
        p.encap,
        vec![IpEncap { version: IpVersion::V4, ip: None, src: "1.2.3.4".into(), dst: "5.6.7.8".into() }]
    );
}

#[test]
fn udp_and_icmp_packets() {
    let e = one("0 < udp (100)\n");
    let EventKind::Packet(p) = e.kind else { panic!() };
    assert_eq!(p.body, PacketBody::Udp(UdpSpec { payload_len: 100 }));
    let e = one("0 > icmp unreachable frag_needed mtu 1400 [1:1461(1460)]\n");
    let EventKind::Packet(p) = e.kind else { panic!() };
    assert_eq!(
        p.body,
        PacketBody::Icmp(IcmpSpec {
            icmp_type: "unreachable".into(),
            code: Some("frag_needed".into()),
            mtu: Some(1400),
            echo_id: None,
            echoed: Some(IcmpEchoed::Tcp { seq_start: 1, seq_end: 1461, payload_len: 1460 }),
        })
    );
}

#[test]
fn syscall_results() {
    let c = syscall("+0 write(4, ..., 10) = -1 EPIPE (Broken pipe)\n");
    assert_eq!(c.result, Expr::Int(-1));
    assert_eq!(c.errno, Some(Errno { name: "EPIPE".into(), strerror: Some("Broken pipe".into()) }));
    assert_eq!(c.expected(), SyscallResult::Errno { value: -1, name: "EPIPE".into() });
    let c = syscall("+0 fcntl(3, F_GETFL) = 0x2 (flags O_RDWR)\n");
    assert_eq!((c.result.clone(), c.errno.clone()), (Expr::Int(2), None));
    assert_eq!(c.note.as_deref(), Some("flags O_RDWR"));
    let c = syscall("+0 close(3) = ...\n");
    assert_eq!(c.expected(), SyscallResult::Ellipsis);
    let c = syscall("+0 getpid() = 0\n");
    assert_eq!(c.args, vec![]);
    assert_eq!(c.expected(), SyscallResult::Int(0));
}

#[test]
fn syscall_expressions() {
    let c = syscall("+0 recv(4, ..., 10, MSG_PEEK|MSG_DONTWAIT|0x40) = 10\n");
    assert_eq!(c.args[3], or(or(sym("MSG_PEEK"), sym("MSG_DONTWAIT")), Expr::Int(0x40)));
    assert_eq!(c.args[3].or_terms().len(), 3);

    let c = syscall("+0 setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0\n");
    assert_eq!(c.args[3], Expr::Struct(vec![named("onoff", None, Expr::Int(1)), named("linger", None, Expr::Int(0))]));
    assert_eq!(c.args[3].field("linger"), Some((None, &Expr::Int(0))));

    let c =
        syscall("+0 bind(3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr(\"192.0.2.1\")}, 16) = 0\n");
    assert_eq!(
        c.args[1],
        Expr::Struct(vec![
            named("sa_family", None, sym("AF_INET")),
            named("sin_port", None, Expr::Call { name: "htons".into(), args: vec![Expr::Int(8080)] }),
            named("sin_addr", None, Expr::Call { name: "inet_addr".into(), args: vec![Expr::Str("192.0.2.1".into())] }),
        ])
    );

    let c = syscall(
        "+0 recvmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 1000}], msg_flags=0, \
         msg_control=[{cmsg_len=20, cmsg_level=SOL_TCP, cmsg_type=TCP_CM_INQ, cmsg_data=1000}]}, 0) = 1000\n",
    );
    assert_eq!(
        c.args[1],
        Expr::Struct(vec![
            named("msg_name", Some(Expr::Ellipsis), Expr::Ellipsis),
            named("msg_iov", Some(Expr::Int(1)), Expr::List(vec![Expr::Struct(vec![Expr::Ellipsis, Expr::Int(1000)])])),
            named("msg_flags", None, Expr::Int(0)),
            named(
                "msg_control",
                None,
                Expr::List(vec![Expr::Struct(vec![
                    named("cmsg_len", None, Expr::Int(20)),
                    named("cmsg_level", None, sym("SOL_TCP")),
                    named("cmsg_type", None, sym("TCP_CM_INQ")),
                    named("cmsg_data", None, Expr::Int(1000)),
                ])])
            ),
        ])
    );
    assert_eq!(c.args[1].field("msg_iov").map(|(a, _)| a.cloned()), Some(Some(Expr::Int(1))));

    let c = syscall("+0 poll([{fd=5, events=POLLIN|POLLOUT, revents=POLLIN}], 1, 0) = 1\n");
    assert_eq!(
        c.args[0],
        Expr::List(vec![Expr::Struct(vec![
            named("fd", None, Expr::Int(5)),
            named("events", None, or(sym("POLLIN"), sym("POLLOUT"))),
            named("revents", None, sym("POLLIN")),
        ])])
    );

    let c = syscall("+0 epoll_ctl(5, EPOLL_CTL_ADD, 3, {events=EPOLLIN|EPOLLET, fd=3}) = 0\n");
    assert_eq!(
        c.args[3],
        Expr::Struct(vec![named("events", None, or(sym("EPOLLIN"), sym("EPOLLET"))), named("fd", None, Expr::Int(3)),])
    );

    let c = syscall(
        "+0 getsockopt(3, SOL_TCP, TCP_INFO, {tcpi_state=TCP_ESTABLISHED, tcpi_last_data_recv=...}, [...]) = 0\n",
    );
    assert_eq!(
        c.args[3],
        Expr::Struct(vec![
            named("tcpi_state", None, sym("TCP_ESTABLISHED")),
            named("tcpi_last_data_recv", None, Expr::Ellipsis),
        ])
    );
    assert_eq!(c.args[4], Expr::List(vec![Expr::Ellipsis]));

    let c = syscall("+0 write(3, \"ab\" \"cd\", 4) = 4\n");
    assert_eq!(c.args[1], Expr::Str("abcd".into()));
    let c = syscall("+0 write(3, \"ab\"..., 4) = 4\n");
    assert_eq!(c.args[1], Expr::StrEllipsis("ab".into()));
    let c = syscall("+0 pipe([]) = 0\n");
    assert_eq!(c.args[0], Expr::List(vec![]));
    let c = syscall("+0 pipe([3, 4]) = 0\n");
    assert_eq!(c.args[0], Expr::List(vec![Expr::Int(3), Expr::Int(4)]));
    let c = syscall("+0 f(x=1|2) = 0\n");
    assert_eq!(c.args[0], named("x", None, or(Expr::Int(1), Expr::Int(2))));
    assert_eq!(c.args[0].to_string(), "x=1|2");
}

#[test]
fn command_and_code_events() {
    let s = parse("0 `nstat -n`\n+0 %{ assert tcpi_state == 1 }%\n+0.1 %{\nimport x\nprint(x)\n}%\n+0 `a\nb`\n");
    let kinds: Vec<(usize, TimeSpec, EventKind)> = s.events.into_iter().map(|e| (e.line, e.time, e.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            (1, TimeSpec::Absolute(0), EventKind::Command("nstat -n".into())),
            (2, TimeSpec::Relative(0), EventKind::Code("assert tcpi_state == 1".into())),
            (3, TimeSpec::Relative(100_000), EventKind::Code("\nimport x\nprint(x)\n".into())),
            (7, TimeSpec::Relative(0), EventKind::Command("a\nb".into())),
        ]
    );
}

#[test]
fn structural_errors() {
    // '#' is not a comment in packetdrill.
    let e = parse_err("# comment\n0 close(3) = 0\n");
    assert_eq!(e.line, 1);
    assert!(e.message.starts_with("syntax error"), "{e}");
    // No events.
    assert!(parse_err("// only a comment\n").message.contains("no events"));
    assert!(parse_err("`./defaults.sh`\n").message.contains("no events"));
    // Untimed event in the middle.
    assert!(parse_err("0 close(3) = 0\n`x`\n0 close(3) = 0\n").message.starts_with("syntax error"));
    // Missing result.
    let e = parse_err("0 close(3)\n");
    assert_eq!(e.line, 2);
    assert_eq!(e.to_string(), "2: syntax error: expected '=', found end of file");
    // Unterminated constructs.
    assert_eq!(parse_err("0 `abc\n").message, "unterminated back-quoted command");
    assert_eq!(parse_err("0 %{ abc\n").message, "unterminated %{ code block");
}
