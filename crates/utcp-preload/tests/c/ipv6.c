/* AF_INET6 stream sockets over ::1 (and IPv4-mapped addresses) as a program sees them: the
 * sockaddr_in6 length rules of bind/connect/accept/getsockname/getpeername/recvfrom/recvmsg/
 * sendto, IPV6_V6ONLY on and off with an IPv4 client, v4-mapped peers, AF_UNSPEC connect and
 * the IPPROTO_IPV6 options. Ports are printed only as "port" (they differ run to run); the run
 * on the kernel and the run under the library must print the same lines. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *ename(int e) {
    switch (e) {
    case EINVAL: return "EINVAL";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EADDRINUSE: return "EADDRINUSE";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ENOTCONN: return "ENOTCONN";
    case EISCONN: return "EISCONN";
    case ENETUNREACH: return "ENETUNREACH";
    case EFAULT: return "EFAULT";
    case EPIPE: return "EPIPE";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EAGAIN: return "EAGAIN";
    default: return "E?";
    }
}

static void show(const char *what, long r) {
    if (r < 0) printf("%s: -1 %s\n", what, ename(errno));
    else printf("%s: %ld\n", what, r);
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* The address as "family addr port?" (port printed as "port" when nonzero). */
static void addr(const char *what, const struct sockaddr_storage *ss, socklen_t len) {
    char b[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, b, sizeof b);
        printf("%s: len %u AF_INET6 %s %s flow %u scope %u\n", what, len, b, a->sin6_port ? "port" : "0",
               a->sin6_flowinfo, a->sin6_scope_id);
    } else if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)ss;
        inet_ntop(AF_INET, &a->sin_addr, b, sizeof b);
        printf("%s: len %u AF_INET %s %s\n", what, len, b, a->sin_port ? "port" : "0");
    } else {
        printf("%s: len %u family %d\n", what, len, ss->ss_family);
    }
}

static struct sockaddr_in6 sin6(const char *ip, in_port_t port) {
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_port = port;
    if (inet_pton(AF_INET6, ip, &a.sin6_addr) != 1) die("inet_pton");
    return a;
}

static int sock6(void) {
    int s = socket(AF_INET6, SOCK_STREAM, 0);
    if (s < 0) die("socket");
    return s;
}

static in_port_t port_of(int fd) {
    struct sockaddr_in6 a;
    socklen_t l = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &l) < 0) die("getsockname");
    return a.sin6_port;
}

static int listener(const char *ip, int v6only) {
    int s = sock6();
    if (v6only >= 0 && setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) < 0) die("V6ONLY");
    struct sockaddr_in6 a = sin6(ip, 0);
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(s, 8) < 0) die("listen");
    return s;
}

static int getint(int fd, int level, int name, const char *what) {
    int v = -99;
    socklen_t l = sizeof v;
    int r = getsockopt(fd, level, name, &v, &l);
    if (r < 0) printf("getsockopt %s: -1 %s\n", what, ename(errno));
    else printf("getsockopt %s: %d (len %u)\n", what, v, l);
    return v;
}

static void setint(int fd, int level, int name, int v, const char *what) {
    char w[80];
    snprintf(w, sizeof w, "setsockopt %s %d", what, v);
    show(w, setsockopt(fd, level, name, &v, sizeof v));
}

static void test_lengths(void) {
    puts("-- lengths");
    int s = sock6();
    struct sockaddr_in6 a = sin6("::1", 0);
    show("bind len 23", bind(s, (struct sockaddr *)&a, 23));
    show("bind len 129", bind(s, (struct sockaddr *)&a, 129));
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    show("bind sockaddr_in len 16", bind(s, (struct sockaddr *)&v4, sizeof v4));
    struct sockaddr_in6 fam4 = a;
    fam4.sin6_family = AF_INET;
    show("bind family AF_INET len 28", bind(s, (struct sockaddr *)&fam4, sizeof fam4));
    struct sockaddr_in6 other = sin6("2001:db8::1", 0);
    show("bind 2001:db8::1", bind(s, (struct sockaddr *)&other, sizeof other));
    show("bind ::1 len 24", bind(s, (struct sockaddr *)&a, 24));
    show("bind again", bind(s, (struct sockaddr *)&a, sizeof a));
    struct sockaddr_storage ss;
    socklen_t l;
    for (int i = 0; i < 5; i++) {
        static const socklen_t lens[] = {0, 8, 16, 28, 100};
        memset(&ss, 0, sizeof ss);
        l = lens[i];
        int r = getsockname(s, (struct sockaddr *)&ss, &l);
        char w[64];
        snprintf(w, sizeof w, "getsockname len %u", lens[i]);
        show(w, r);
        printf("  written back %u, family bytes %s\n", l, lens[i] >= 2 && ss.ss_family == AF_INET6 ? "AF_INET6" : "none");
    }
    l = (socklen_t)-1;
    show("getsockname len -1", getsockname(s, (struct sockaddr *)&ss, &l));
    l = sizeof ss;
    show("getpeername unconnected", getpeername(s, (struct sockaddr *)&ss, &l));
    getint(s, IPPROTO_IPV6, IPV6_V6ONLY, "V6ONLY after bind ::1");
    show("listen", listen(s, 8));
    int c = sock6();
    struct sockaddr_in6 dst = sin6("::1", port_of(s));
    show("connect len 23", connect(c, (struct sockaddr *)&dst, 23));
    show("connect sockaddr_in", connect(c, (struct sockaddr *)&v4, sizeof v4));
    show("connect ::1", connect(c, (struct sockaddr *)&dst, sizeof dst));
    show("connect again", connect(c, (struct sockaddr *)&dst, sizeof dst));
    l = sizeof ss;
    getsockname(c, (struct sockaddr *)&ss, &l);
    addr("client sockname", &ss, l);
    l = sizeof ss;
    getpeername(c, (struct sockaddr *)&ss, &l);
    addr("client peername", &ss, l);
    memset(&ss, 0, sizeof ss);
    l = 10;
    int a1 = accept(s, (struct sockaddr *)&ss, &l);
    if (a1 < 0) die("accept");
    printf("accept len 10: written back %u, family %s\n", l, ss.ss_family == AF_INET6 ? "AF_INET6" : "?");
    l = sizeof ss;
    getpeername(a1, (struct sockaddr *)&ss, &l);
    addr("server peername", &ss, l);
    l = 28;
    show("getpeername len 28", getpeername(a1, (struct sockaddr *)&ss, &l));
    /* Data, and the address calls of a TCP socket: no name comes back. */
    show("sendto with an address (ignored on TCP)", sendto(c, "abc", 3, 0, (struct sockaddr *)&dst, sizeof dst));
    show("sendto with addrlen 200", sendto(c, "abc", 3, 0, (struct sockaddr *)&dst, 200));
    show("sendto with addrlen -1", sendto(c, "abc", 3, 0, (struct sockaddr *)&dst, (socklen_t)-1));
    char buf[16];
    l = sizeof ss;
    long n = recvfrom(a1, buf, 3, MSG_WAITALL, (struct sockaddr *)&ss, &l);
    printf("recvfrom: %ld, addrlen %u\n", n, l);
    struct iovec iov = {.iov_base = "xyz", .iov_len = 3};
    struct msghdr m = {.msg_name = &dst, .msg_namelen = sizeof dst, .msg_iov = &iov, .msg_iovlen = 1};
    show("sendmsg with a name", sendmsg(c, &m, 0));
    m.msg_namelen = 1000;
    show("sendmsg namelen 1000", sendmsg(c, &m, 0));
    struct iovec riov = {.iov_base = buf, .iov_len = 6};
    struct msghdr rm = {.msg_name = &ss, .msg_namelen = sizeof ss, .msg_iov = &riov, .msg_iovlen = 1};
    n = recvmsg(a1, &rm, MSG_WAITALL);
    printf("recvmsg: %ld, namelen %u, flags %d, data %.6s\n", n, rm.msg_namelen, rm.msg_flags, buf);
    /* AF_UNSPEC: connect() disconnects. */
    struct sockaddr_in6 unspec = dst;
    unspec.sin6_family = AF_UNSPEC;
    show("connect AF_UNSPEC", connect(c, (struct sockaddr *)&unspec, sizeof unspec));
    l = sizeof ss;
    show("getpeername after AF_UNSPEC", getpeername(c, (struct sockaddr *)&ss, &l));
    show("send after AF_UNSPEC", send(c, "q", 1, MSG_NOSIGNAL));
    close(c);
    close(a1);
    close(s);
}

static void test_dualstack(void) {
    puts("-- dual stack");
    struct sockaddr_storage ss;
    socklen_t l;
    for (int v6only = 0; v6only < 2; v6only++) {
        printf("[::] V6ONLY %d\n", v6only);
        int s = listener("::", v6only);
        getint(s, IPPROTO_IPV6, IPV6_V6ONLY, "V6ONLY");
        int c4 = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in d4 = {.sin_family = AF_INET, .sin_port = port_of(s), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int r = connect(c4, (struct sockaddr *)&d4, sizeof d4);
        show("IPv4 client connect", r);
        if (r == 0) {
            l = sizeof ss;
            int a = accept(s, (struct sockaddr *)&ss, &l);
            addr("accepted IPv4 peer", &ss, l);
            l = sizeof ss;
            getsockname(a, (struct sockaddr *)&ss, &l);
            addr("accepted sockname", &ss, l);
            l = sizeof ss;
            getsockname(c4, (struct sockaddr *)&ss, &l);
            addr("IPv4 client sockname", &ss, l);
            close(a);
        }
        close(c4);
        int c6 = sock6();
        struct sockaddr_in6 d6 = sin6("::1", port_of(s));
        show("IPv6 client connect", connect(c6, (struct sockaddr *)&d6, sizeof d6));
        l = sizeof ss;
        int a = accept(s, (struct sockaddr *)&ss, &l);
        addr("accepted IPv6 peer", &ss, l);
        close(a);
        close(c6);
        close(s);
    }
    /* An AF_INET6 client reaches an AF_INET listener through the mapped address. */
    int s4 = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in b4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(s4, (struct sockaddr *)&b4, sizeof b4) < 0 || listen(s4, 8) < 0) die("v4 listener");
    struct sockaddr_in b4l;
    l = sizeof b4l;
    getsockname(s4, (struct sockaddr *)&b4l, &l);
    int c = sock6();
    struct sockaddr_in6 m = sin6("::ffff:127.0.0.1", b4l.sin_port);
    show("connect ::ffff:127.0.0.1", connect(c, (struct sockaddr *)&m, sizeof m));
    l = sizeof ss;
    getsockname(c, (struct sockaddr *)&ss, &l);
    addr("mapped client sockname", &ss, l);
    l = sizeof ss;
    getpeername(c, (struct sockaddr *)&ss, &l);
    addr("mapped client peername", &ss, l);
    l = sizeof ss;
    int a = accept(s4, (struct sockaddr *)&ss, &l);
    addr("IPv4 listener's peer", &ss, l);
    show("mapped client send", send(c, "m", 1, 0));
    char ch = 0;
    show("IPv4 server recv", recv(a, &ch, 1, 0));
    close(a);
    close(c);
    int c2 = sock6();
    setint(c2, IPPROTO_IPV6, IPV6_V6ONLY, 1, "V6ONLY");
    show("V6ONLY connect ::ffff:127.0.0.1", connect(c2, (struct sockaddr *)&m, sizeof m));
    close(c2);
    int b = sock6();
    struct sockaddr_in6 bm = sin6("::ffff:127.0.0.1", 0);
    show("bind ::ffff:127.0.0.1", bind(b, (struct sockaddr *)&bm, sizeof bm));
    getint(b, IPPROTO_IPV6, IPV6_V6ONLY, "V6ONLY after mapped bind");
    l = sizeof ss;
    getsockname(b, (struct sockaddr *)&ss, &l);
    addr("mapped bind sockname", &ss, l);
    close(b);
    close(s4);
    /* A V6ONLY [::] listener and an IPv4 one share a port. */
    int s6 = listener("::", 1);
    int s4b = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in same = {.sin_family = AF_INET, .sin_port = port_of(s6)};
    show("AF_INET bind beside a V6ONLY [::]", bind(s4b, (struct sockaddr *)&same, sizeof same));
    close(s4b);
    close(s6);
    int s6b = listener("::", 0);
    int s4c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in same2 = {.sin_family = AF_INET, .sin_port = port_of(s6b)};
    show("AF_INET bind beside a dual-stack [::]", bind(s4c, (struct sockaddr *)&same2, sizeof same2));
    close(s4c);
    close(s6b);
}

static void test_options(void) {
    puts("-- IPPROTO_IPV6 options");
    int s = sock6();
    getint(s, IPPROTO_IPV6, IPV6_V6ONLY, "V6ONLY");
    getint(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, "UNICAST_HOPS");
    setint(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 7, "UNICAST_HOPS");
    getint(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, "UNICAST_HOPS");
    setint(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 256, "UNICAST_HOPS");
    setint(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, -1, "UNICAST_HOPS");
    getint(s, IPPROTO_IPV6, IPV6_UNICAST_HOPS, "UNICAST_HOPS");
    getint(s, IPPROTO_IPV6, IPV6_TCLASS, "TCLASS");
    setint(s, IPPROTO_IPV6, IPV6_TCLASS, 0x28, "TCLASS");
    getint(s, IPPROTO_IPV6, IPV6_TCLASS, "TCLASS");
    getint(s, IPPROTO_IPV6, IPV6_MTU_DISCOVER, "MTU_DISCOVER");
    setint(s, IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DONT, "MTU_DISCOVER");
    getint(s, IPPROTO_IPV6, IPV6_MTU_DISCOVER, "MTU_DISCOVER");
    getint(s, IPPROTO_IPV6, IPV6_RECVERR, "RECVERR");
    setint(s, IPPROTO_IPV6, IPV6_RECVERR, 1, "RECVERR");
    getint(s, IPPROTO_IPV6, IPV6_RECVERR, "RECVERR");
    getint(s, IPPROTO_IPV6, IPV6_MTU, "MTU unconnected");
    getint(s, SOL_SOCKET, SO_DOMAIN, "SO_DOMAIN");
    getint(s, IPPROTO_IP, IP_TOS, "IP_TOS on AF_INET6");
    getint(s, IPPROTO_TCP, TCP_MAXSEG, "TCP_MAXSEG");
    int l = listener("::1", -1);
    struct sockaddr_in6 d = sin6("::1", port_of(l));
    show("connect", connect(s, (struct sockaddr *)&d, sizeof d));
    setint(s, IPPROTO_IPV6, IPV6_V6ONLY, 0, "V6ONLY when connected");
    /* TCP_MAXSEG once connected is left out: utcp's loopback route MTU is 65535, lo's 65536. */
    int a = accept(l, NULL, NULL);
    getint(a, IPPROTO_IPV6, IPV6_V6ONLY, "accepted V6ONLY");
    getint(a, IPPROTO_IPV6, IPV6_UNICAST_HOPS, "accepted UNICAST_HOPS");
    int c4 = socket(AF_INET, SOCK_STREAM, 0);
    getint(c4, IPPROTO_IPV6, IPV6_V6ONLY, "V6ONLY on AF_INET");
    getint(c4, IPPROTO_IPV6, IPV6_TCLASS, "TCLASS on AF_INET");
    close(c4);
    close(a);
    close(l);
    close(s);
    /* Refused (an off-host destination's answer depends on the host's routes: not here). */
    int r = sock6();
    int dead = listener("::1", -1);
    struct sockaddr_in6 gone = sin6("::1", port_of(dead));
    close(dead);
    show("connect ::1 closed port", connect(r, (struct sockaddr *)&gone, sizeof gone));
    getint(r, SOL_SOCKET, SO_ERROR, "SO_ERROR");
    close(r);
    int any = sock6();
    int al = listener("::1", -1);
    struct sockaddr_in6 anyd = sin6("::", port_of(al));
    show("connect [::]:port", connect(any, (struct sockaddr *)&anyd, sizeof anyd));
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getpeername(any, (struct sockaddr *)&ss, &sl);
    addr("[::] peer", &ss, sl);
    close(any);
    close(al);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    test_lengths();
    test_dualstack();
    test_options();
    puts("done");
    return 0;
}
