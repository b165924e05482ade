/* The hooks CPython cannot reach (recvmmsg, sendmmsg, splice, pselect, epoll_pwait2) and the
 * glibc fortify variants a `-O2 -D_FORTIFY_SOURCE=2` build calls (__read_chk, __recv_chk,
 * __recvfrom_chk, __poll_chk, __ppoll_chk, __fdelt_chk), on a connection to itself over
 * 127.0.0.1. It prints one line per call (return value, errno name, what came back); the test
 * (tests/c_hooks.rs) runs it on the kernel and under the library and wants the same lines. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Lengths the compiler cannot see, so fortify calls the _chk variants. */
static volatile size_t vlen_small = 4, vlen_buf = 64;
static volatile nfds_t vnfds = 1;

static const char *ename(int e) {
    switch (e) {
    case EAGAIN: return "EAGAIN";
    case EINVAL: return "EINVAL";
    case EBADF: return "EBADF";
    case EFAULT: return "EFAULT";
    case ESPIPE: return "ESPIPE";
    case EPIPE: return "EPIPE";
    case ENOTCONN: return "ENOTCONN";
    case ENOTSOCK: return "ENOTSOCK";
    case EINTR: return "EINTR";
    default: return "E?";
    }
}

static void show(const char *what, long r) {
    if (r < 0)
        printf("%s: -1 %s\n", what, ename(errno));
    else
        printf("%s: %ld\n", what, r);
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void nonblock(int fd, int on) {
    int fl = fcntl(fd, F_GETFL);
    if (fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) < 0)
        die("fcntl");
}

static void readn(int fd, char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            die("readn");
        got += r;
    }
}

static void writen(int fd, const char *buf, size_t n) {
    size_t put = 0;
    while (put < n) {
        ssize_t r = write(fd, buf + put, n - put);
        if (r <= 0)
            die("writen");
        put += r;
    }
}

static void pattern(char *b, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        b[i] = (char)((i * 2654435761u + seed) >> 13);
}

static int pair(int *client, int *server) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int one = 1;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 4) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &len) < 0)
        die("listen");
    *client = socket(AF_INET, SOCK_STREAM, 0);
    if (*client < 0 || connect(*client, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    *server = accept(l, NULL, NULL);
    if (*server < 0)
        die("accept");
    setsockopt(*client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(*server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return l;
}

/* Waits (poll) until `fd` has `n` bytes to read, so what a call finds does not depend on timing. */
static void wait_bytes(int fd, int n) {
    for (int i = 0; i < 2000; i++) {
        int avail = 0;
        if (ioctl(fd, FIONREAD, &avail) == 0 && avail >= n)
            return;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, 5);
    }
    fprintf(stderr, "timed out waiting for %d bytes\n", n);
    exit(2);
}

static void test_mmsg(int c, int s) {
    char a1[] = "al", a2[] = "pha", b[] = "beta", g[] = "gamma!";
    struct iovec v0[2] = {{a1, 2}, {a2, 3}}, v1[1] = {{b, 4}}, v2[1] = {{g, 6}};
    struct mmsghdr m[3];
    memset(m, 0, sizeof m);
    m[0].msg_hdr.msg_iov = v0;
    m[0].msg_hdr.msg_iovlen = 2;
    m[1].msg_hdr.msg_iov = v1;
    m[1].msg_hdr.msg_iovlen = 1;
    m[2].msg_hdr.msg_iov = v2;
    m[2].msg_hdr.msg_iovlen = 1;
    show("sendmmsg 3", sendmmsg(c, m, 3, 0));
    printf("sendmmsg lens: %u %u %u\n", m[0].msg_len, m[1].msg_len, m[2].msg_len);
    show("sendmmsg vlen 0", sendmmsg(c, m, 0, 0));
    wait_bytes(s, 15);

    char bufs[4][4];
    struct iovec rv[4];
    struct mmsghdr r[4];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 4; i++) {
        rv[i].iov_base = bufs[i];
        rv[i].iov_len = 4;
        r[i].msg_hdr.msg_iov = &rv[i];
        r[i].msg_hdr.msg_iovlen = 1;
        r[i].msg_len = 99;
    }
    show("recvmmsg waitforone 4", recvmmsg(s, r, 4, MSG_WAITFORONE, NULL));
    for (int i = 0; i < 4; i++)
        printf("  msg %d: len %u flags %#x '%.*s'\n", i, r[i].msg_len, r[i].msg_hdr.msg_flags, (int)r[i].msg_len,
               bufs[i]);
    show("recvmmsg dontwait empty", recvmmsg(s, r, 4, MSG_DONTWAIT, NULL));
    show("recvmmsg vlen 0", recvmmsg(s, r, 0, MSG_DONTWAIT, NULL));
    struct timespec bad = {0, 2000000000L};
    show("recvmmsg bad timeout", recvmmsg(s, r, 2, 0, &bad));

    writen(c, "xy", 2);
    wait_bytes(s, 2);
    struct timespec t = {5, 0};
    show("recvmmsg timeout dontwait", recvmmsg(s, r, 2, MSG_DONTWAIT, &t));
    printf("  msg 0: len %u '%.*s'\n", r[0].msg_len, (int)r[0].msg_len, bufs[0]);

    /* A bad second message: the first went, so the count is 1. */
    struct iovec badv = {NULL, 3};
    m[1].msg_hdr.msg_iov = &badv;
    show("sendmmsg second faults", sendmmsg(c, m, 3, 0));
    printf("  len %u\n", m[0].msg_len);
    m[0].msg_hdr.msg_iov = &badv;
    show("sendmmsg first faults", sendmmsg(c, m, 3, 0));
    wait_bytes(s, 5);
    show("recvmmsg the 5 bytes", recvmmsg(s, r, 4, MSG_DONTWAIT, NULL));
    printf("  lens %u %u\n", r[0].msg_len, r[1].msg_len);
}

static void test_splice(int c, int s) {
    static char out[10000], in[65536];
    int p[2];
    if (pipe(p) < 0)
        die("pipe");
    pattern(out, sizeof out, 7);
    writen(c, out, sizeof out);
    wait_bytes(s, sizeof out);
    show("splice sock->pipe", splice(s, NULL, p[1], NULL, 65536, 0));
    readn(p[0], in, sizeof out);
    printf("  pipe holds the bytes: %s\n", memcmp(in, out, sizeof out) ? "no" : "yes");

    pattern(out, 5000, 9);
    writen(p[1], out, 5000);
    show("splice pipe->sock", splice(p[0], NULL, c, NULL, 65536, 0));
    readn(s, in, 5000);
    printf("  socket got the bytes: %s\n", memcmp(in, out, 5000) ? "no" : "yes");

    /* Kernel pipe to kernel pipe: the library passes it through untouched. */
    int q[2];
    if (pipe(q) < 0)
        die("pipe");
    writen(p[1], "kernel", 6);
    show("splice pipe->pipe", splice(p[0], NULL, q[1], NULL, 100, 0));
    readn(q[0], in, 6);
    printf("  '%.6s'\n", in);
    close(q[0]);
    close(q[1]);

    loff_t off = 0;
    show("splice len 0", splice(s, NULL, p[1], NULL, 0, 0));
    show("splice bad flags", splice(s, NULL, p[1], NULL, 10, 0x100));
    show("splice off_out on pipe", splice(s, NULL, p[1], &off, 10, 0));
    show("splice off_in on socket", splice(s, &off, p[1], NULL, 10, 0));
    show("splice off_out on socket", splice(p[0], NULL, c, &off, 10, 0));
    show("splice sock->pipe read end", splice(s, NULL, p[0], NULL, 10, 0));
    show("splice pipe write end->sock", splice(p[1], NULL, c, NULL, 10, 0));
    show("splice sock->sock", splice(s, NULL, c, NULL, 10, 0));
    int devnull = open("/dev/null", O_WRONLY);
    show("splice sock->/dev/null", splice(s, NULL, devnull, NULL, 10, 0));
    close(devnull);

    nonblock(s, 1);
    show("splice empty nonblocking sock", splice(s, NULL, p[1], NULL, 100, 0));
    nonblock(s, 0);
    show("splice empty pipe nonblock", splice(p[0], NULL, c, NULL, 100, SPLICE_F_NONBLOCK));

    /* A full pipe: SPLICE_F_NONBLOCK fails before the socket is read. */
    nonblock(p[1], 1);
    size_t filled = 0;
    for (;;) {
        ssize_t r = write(p[1], in, sizeof in);
        if (r < 0)
            break;
        filled += r;
    }
    nonblock(p[1], 0);
    writen(c, "queued", 6);
    wait_bytes(s, 6);
    show("splice into full pipe nonblock", splice(s, NULL, p[1], NULL, 100, SPLICE_F_NONBLOCK));
    nonblock(p[1], 1);
    show("splice into full O_NONBLOCK pipe", splice(s, NULL, p[1], NULL, 100, 0));
    nonblock(p[1], 0);
    while (filled > 0) {
        size_t n = filled < sizeof in ? filled : sizeof in;
        readn(p[0], in, n);
        filled -= n;
    }
    show("splice after draining", splice(s, NULL, p[1], NULL, 100, SPLICE_F_NONBLOCK));
    readn(p[0], in, 6);
    printf("  '%.6s'\n", in);

    /* The pipe's write end closed: an empty pipe is end of file. */
    close(p[1]);
    show("splice pipe without writers", splice(p[0], NULL, c, NULL, 100, 0));
    close(p[0]);
    if (pipe(p) < 0)
        die("pipe");
    close(p[0]);
    signal(SIGPIPE, SIG_IGN);
    show("splice into pipe without readers", splice(s, NULL, p[1], NULL, 100, 0));
    close(p[1]);

    /* End of file on the socket. */
    int c2, s2, l2 = pair(&c2, &s2);
    if (pipe(p) < 0)
        die("pipe");
    shutdown(c2, SHUT_WR);
    show("splice sock at eof", splice(s2, NULL, p[1], NULL, 100, 0));
    show("splice listener", splice(l2, NULL, p[1], NULL, 100, SPLICE_F_NONBLOCK));
    close(p[0]);
    close(p[1]);
    close(c2);
    close(s2);
    close(l2);
}

static void test_pselect_epoll(int c, int s) {
    int p[2];
    if (pipe(p) < 0)
        die("pipe");
    sigset_t mask;
    sigemptyset(&mask);
    fd_set r;
    struct timespec ts = {0, 0};
    int hi = (s > p[0] ? s : p[0]) + 1;

    FD_ZERO(&r);
    FD_SET(s, &r);
    FD_SET(p[0], &r);
    show("pselect nothing ready", pselect(hi, &r, NULL, NULL, &ts, &mask));
    writen(p[1], "k", 1);
    FD_ZERO(&r);
    FD_SET(s, &r);
    FD_SET(p[0], &r);
    show("pselect pipe ready", pselect(hi, &r, NULL, NULL, &ts, NULL));
    printf("  sock %d pipe %d\n", FD_ISSET(s, &r), FD_ISSET(p[0], &r));
    char k;
    readn(p[0], &k, 1);
    writen(c, "ping", 4);
    wait_bytes(s, 4);
    struct timespec five = {5, 0};
    FD_ZERO(&r);
    FD_SET(s, &r);
    FD_SET(p[0], &r);
    fd_set w;
    FD_ZERO(&w);
    FD_SET(c, &w);
    show("pselect sock ready", pselect(hi > c + 1 ? hi : c + 1, &r, &w, NULL, &five, &mask));
    printf("  sock %d pipe %d client writable %d timeout left %ld.%09ld\n", FD_ISSET(s, &r), FD_ISSET(p[0], &r),
           FD_ISSET(c, &w), (long)five.tv_sec, five.tv_nsec);
    struct timespec badts = {0, -1};
    show("pselect bad timeout", pselect(hi, &r, NULL, NULL, &badts, NULL));

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 42}, out[8];
    if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) < 0)
        die("epoll_ctl");
    ev.data.u64 = 7;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) < 0)
        die("epoll_ctl");
    int n = epoll_pwait2(ep, out, 8, &ts, &mask);
    show("epoll_pwait2 sock ready", n);
    for (int i = 0; i < n; i++)
        printf("  data %llu events %#x\n", (unsigned long long)out[i].data.u64, out[i].events);
    show("epoll_pwait2 no timeout", epoll_pwait2(ep, out, 8, NULL, NULL));
    char buf[8];
    readn(s, buf, 4);
    show("epoll_pwait2 drained", epoll_pwait2(ep, out, 8, &ts, NULL));
    show("epoll_pwait2 bad timeout", epoll_pwait2(ep, out, 8, &badts, NULL));
    show("epoll_pwait2 maxevents 0", epoll_pwait2(ep, out, 0, &ts, NULL));
    writen(p[1], "k", 1);
    n = epoll_pwait2(ep, out, 8, &five, NULL);
    show("epoll_pwait2 pipe ready", n);
    for (int i = 0; i < n; i++)
        printf("  data %llu events %#x\n", (unsigned long long)out[i].data.u64, out[i].events);
    readn(p[0], &k, 1);
    close(ep);
    close(p[0]);
    close(p[1]);
}

/* Another thread writes `what` to `fd` after a pause, while the main thread sleeps in a call. */
struct late {
    int fd;
    const char *what;
    pthread_t t;
};

static void *late_writer(void *arg) {
    struct late *l = arg;
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
    writen(l->fd, l->what, strlen(l->what));
    return NULL;
}

static void later(struct late *l, int fd, const char *what) {
    l->fd = fd;
    l->what = what;
    if (pthread_create(&l->t, NULL, late_writer, l) != 0)
        die("pthread_create");
}

/* Each call sleeps until another thread's write wakes it (real threads, real clock). */
static void test_wakeups(int c, int s) {
    struct late l;
    char buf[16];
    struct iovec v = {buf, sizeof buf};
    struct mmsghdr m[2];
    memset(m, 0, sizeof m);
    m[0].msg_hdr.msg_iov = &v;
    m[0].msg_hdr.msg_iovlen = 1;
    m[1] = m[0];
    later(&l, c, "late");
    show("recvmmsg woken", recvmmsg(s, m, 2, MSG_WAITFORONE, NULL));
    printf("  len %u '%.*s'\n", m[0].msg_len, (int)m[0].msg_len, buf);
    pthread_join(l.t, NULL);

    fd_set r;
    FD_ZERO(&r);
    FD_SET(s, &r);
    struct timespec five = {5, 0};
    later(&l, c, "sel");
    show("pselect woken", pselect(s + 1, &r, NULL, NULL, &five, NULL));
    pthread_join(l.t, NULL);
    readn(s, buf, 3);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = 5}, out[4];
    if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) < 0)
        die("epoll_ctl");
    later(&l, c, "ep");
    show("epoll_pwait2 woken", epoll_pwait2(ep, out, 4, &five, NULL));
    printf("  data %llu events %#x\n", (unsigned long long)out[0].data.u64, out[0].events);
    pthread_join(l.t, NULL);
    readn(s, buf, 2);
    close(ep);

    int p[2];
    if (pipe(p) < 0)
        die("pipe");
    later(&l, c, "spliced");
    show("splice sock->pipe woken", splice(s, NULL, p[1], NULL, 100, 0));
    pthread_join(l.t, NULL);
    readn(p[0], buf, 7);
    printf("  '%.7s'\n", buf);
    later(&l, p[1], "piped");
    show("splice pipe->sock woken", splice(p[0], NULL, c, NULL, 100, 0));
    pthread_join(l.t, NULL);
    readn(s, buf, 5);
    printf("  '%.5s'\n", buf);
    close(p[0]);
    close(p[1]);
}

/* A signal reaches the main thread while it sleeps in a call; then another thread's write ends
 * the sleep. With SA_RESTART the call restarts and returns the data; without, EINTR. */
static volatile sig_atomic_t hits;
static void on_usr1(int sig) {
    (void)sig;
    hits++;
}

struct kick {
    pthread_t target, t;
    int fd;
    const char *what;
};

static void *kicker(void *arg) {
    struct kick *k = arg;
    struct timespec pause = {0, 200 * 1000 * 1000};
    nanosleep(&pause, NULL);
    pthread_kill(k->target, SIGUSR1);
    nanosleep(&pause, NULL);
    writen(k->fd, k->what, strlen(k->what));
    return NULL;
}

static void kick(struct kick *k, int fd, const char *what) {
    k->target = pthread_self();
    k->fd = fd;
    k->what = what;
    if (pthread_create(&k->t, NULL, kicker, k) != 0)
        die("pthread_create");
}

static void handler(int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) < 0)
        die("sigaction");
}

static void test_signals(int c, int s) {
    int p[2];
    char buf[16];
    struct kick k;
    if (pipe(p) < 0)
        die("pipe");
    for (int restart = 1; restart >= 0; restart--) {
        handler(restart ? SA_RESTART : 0);
        const char *how = restart ? "SA_RESTART" : "no SA_RESTART";
        char what[64];

        hits = 0;
        kick(&k, p[1], "pipe");
        snprintf(what, sizeof what, "splice pipe->sock, signal with %s", how);
        show(what, splice(p[0], NULL, c, NULL, 100, 0));
        pthread_join(k.t, NULL);
        printf("  handler ran %d\n", hits);
        readn(restart ? s : p[0], buf, 4);

        hits = 0;
        kick(&k, c, "sock");
        snprintf(what, sizeof what, "splice sock->pipe, signal with %s", how);
        show(what, splice(s, NULL, p[1], NULL, 100, 0));
        pthread_join(k.t, NULL);
        printf("  handler ran %d\n", hits);
        readn(restart ? p[0] : s, buf, 4);

        hits = 0;
        struct iovec v = {buf, sizeof buf};
        struct mmsghdr m[1];
        memset(m, 0, sizeof m);
        m[0].msg_hdr.msg_iov = &v;
        m[0].msg_hdr.msg_iovlen = 1;
        kick(&k, c, "mmsg");
        snprintf(what, sizeof what, "recvmmsg, signal with %s", how);
        show(what, recvmmsg(s, m, 1, 0, NULL));
        pthread_join(k.t, NULL);
        printf("  handler ran %d\n", hits);
        if (!restart)
            readn(s, buf, 4);
    }
    signal(SIGUSR1, SIG_DFL);
    close(p[0]);
    close(p[1]);
}

static void test_fortify(int c, int s) {
    char buf[64];
    struct pollfd pf[1] = {{.fd = s, .events = POLLIN}};
    writen(c, "fortified!", 10);
    wait_bytes(s, 10);
    show("__poll_chk", poll(pf, vnfds, 1000));
    printf("  revents %#x\n", pf[0].revents);
    struct timespec ts = {1, 0};
    show("__ppoll_chk", ppoll(pf, vnfds, &ts, NULL));
    fd_set r;
    FD_ZERO(&r);
    FD_SET(s, &r); /* __fdelt_chk */
    show("select (FD_SET via __fdelt_chk)", select(s + 1, &r, NULL, NULL, NULL));
    printf("  isset %d\n", FD_ISSET(s, &r));
    ssize_t n = read(s, buf, vlen_small);
    show("__read_chk", n);
    printf("  '%.*s'\n", (int)(n > 0 ? n : 0), buf);
    n = recv(s, buf, vlen_small, 0);
    show("__recv_chk", n);
    printf("  '%.*s'\n", (int)(n > 0 ? n : 0), buf);
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    n = recvfrom(s, buf, vlen_buf, 0, (struct sockaddr *)&from, &flen);
    show("__recvfrom_chk", n);
    printf("  '%.*s' addrlen %u\n", (int)(n > 0 ? n : 0), buf, flen);
    n = recv(s, buf, vlen_buf, MSG_DONTWAIT);
    show("__recv_chk empty", n);
}

/* Before main (and before the library's stack exists): hooked calls on kernel fds, and a
 * TCP socket made and closed, must neither recurse nor deadlock. */
static int early_ok;
__attribute__((constructor)) static void early(void) {
    int p[2];
    char c = 0;
    struct pollfd pf;
    if (pipe(p) < 0 || write(p[1], "e", 1) != 1)
        return;
    pf.fd = p[0];
    pf.events = POLLIN;
    if (poll(&pf, 1, 1000) == 1 && read(p[0], &c, 1) == 1 && fcntl(p[0], F_GETFD) >= 0)
        early_ok = c == 'e';
    close(p[0]);
    close(p[1]);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    early_ok &= s >= 0 && close(s) == 0;
}

/* `hooks overflow-CALL`: CALL on a utcp socket with a length past its buffer; fortify must
 * abort with glibc's report, as it does on a kernel socket. */
static int overflow(const char *call) {
    int c, s;
    pair(&c, &s);
    nonblock(s, 1); /* never wait, caught or not */
    char small[4];
    struct pollfd pf[1] = {{.fd = s, .events = POLLIN}};
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    volatile nfds_t two = 2;
    if (!strcmp(call, "read"))
        (void)!read(s, small, vlen_buf);
    else if (!strcmp(call, "recv"))
        recv(s, small, vlen_buf, MSG_DONTWAIT);
    else if (!strcmp(call, "recvfrom"))
        recvfrom(s, small, vlen_buf, MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
    else if (!strcmp(call, "poll"))
        poll(pf, two, 0);
    else if (!strcmp(call, "ppoll"))
        ppoll(pf, two, &(struct timespec){0, 0}, NULL);
    printf("%s: not caught\n", call);
    return 1;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && !strncmp(argv[1], "overflow-", 9))
        return overflow(argv[1] + 9);
    printf("before main: %s\n", early_ok ? "ok" : "failed");
    int c, s, l = pair(&c, &s);
    test_mmsg(c, s);
    test_splice(c, s);
    test_pselect_epoll(c, s);
    test_wakeups(c, s);
    test_signals(c, s);
    test_fortify(c, s);
    close(c);
    close(s);
    close(l);
    printf("done\n");
    return 0;
}
