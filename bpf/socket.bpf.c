/* socket.bpf.c: connect (with its REAL outcome), bind, listen, accept.
 *
 * Kernel semantics this relies on (verified with bpftrace on 6.18, see docs/platform.md):
 *  - a TCP connect moves the socket CLOSE->SYN_SENT inside the connect() syscall, in the
 *    caller's context: that is where we learn the socket's address (skaddr) and tie it to
 *    the syscall (we key pending syscalls by tid).
 *  - a non-blocking connect (every Go program: k3s, containerd, etcd, kubectl) returns
 *    -EINPROGRESS; the answer comes later, possibly in softirq context with an unrelated
 *    pid: SYN_SENT->ESTABLISHED (ok), or SYN_SENT->CLOSE with inet_sk_error_report
 *    error=111 (refused; CLOSE first, then the report), ETIMEDOUT (report first, then
 *    CLOSE), EHOSTUNREACH... We follow only sockets seen in SYN_SENT during a connect(),
 *    so the rest of the machine's TCP traffic costs one hash lookup. A tracked socket is
 *    forgotten at its first answer (ESTABLISHED or CLOSE).
 *  - AF_UNIX connect is synchronous even when non-blocking: the return value IS the outcome.
 *  - CLOSE->LISTEN fires inside listen() with sport = the listening port (host order).
 */
#define EINPROGRESS_ 115
#define EAGAIN_ 11
#define TCP_ESTABLISHED_ 1
#define TCP_SYN_SENT_ 2
#define TCP_CLOSE_ 7
#define TCP_LISTEN_ 10
#define IPPROTO_TCP_ 6

struct pending_sockop {
    u64 enter_ns;
    u64 skaddr;
    u64 uaddr;     /* user pointer: accept's peer address is written by the kernel */
    s32 fd;
    u32 addrlen;
    u32 want_len;  /* the addrlen the caller passed (connect, bind) */
    u8 sa[SA_LEN];
    /* the connect's answer, when it comes while the thread is still in the syscall */
    u64 result_ns;
    s32 newstate;
    s32 error;
    u16 sport;
    u16 dport;
    u16 family;
    u16 _pad;
    u8 daddr[16];
};
/* tid -> the socket syscall it is inside. One at a time per thread. */
BPF_HASH(pending_sockops, u32, struct pending_sockop, 16384);
/* struct sock * of connects whose answer we still expect -> 1. LRU: sockets closed by
 * their owner before any answer must not fill the map. */
BPF_TABLE("lru_hash", u64, u8, tracked_socks, 16384);

/* Copy the caller's struct sockaddr (addrlen bytes valid) into dst; returns the bytes
 * valid, 0 if it could not be read. Constant-size reads keep the verifier happy. Reading past
 * a short sockaddr is harmless (addrlen says what is valid) unless it crosses into an unmapped
 * page, so fall back to the common smaller sizes: sockaddr_in6 (28), sockaddr_in (16). */
static __always_inline u32 read_sockaddr(u8 *dst, const void *uaddr, u32 addrlen)
{
    u32 n = addrlen > SA_LEN ? SA_LEN : addrlen;
    if (bpf_probe_read_user(dst, SA_LEN, uaddr) == 0 ||
        (n <= 28 && bpf_probe_read_user(dst, 28, uaddr) == 0) ||
        (n <= 16 && bpf_probe_read_user(dst, 16, uaddr) == 0))
        return n;
    return 0;
}

static __always_inline void sockop_enter(int fd, const void *uaddr, int addrlen, int copy)
{
    if (is_self())
        return;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct pending_sockop p = {};
    p.enter_ns = bpf_ktime_get_ns();
    p.fd = fd;
    p.uaddr = (u64)uaddr;
    if (copy && uaddr && addrlen > 0) {
        p.want_len = addrlen;
        p.addrlen = read_sockaddr(p.sa, uaddr, addrlen);
    }
    pending_sockops.update(&tid, &p);
}

static __always_inline void sockop_exit(void *ctx, u32 type, long ret)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct pending_sockop *p = pending_sockops.lookup(&tid);
    if (!p)
        return;
    if (type == EV_ACCEPT && ret < 0) {
        /* Go's accept loop is non-blocking: EAGAIN is "nobody yet", not an event */
        pending_sockops.delete(&tid);
        return;
    }
    struct sockop_event *e = events.ringbuf_reserve(sizeof(*e));
    if (!e) {
        count_lost();
        pending_sockops.delete(&tid);
        return;
    }
    fill_hdr(&e->hdr, type);
    e->enter_ns = p->enter_ns;
    e->skaddr = p->skaddr;
    e->ret = ret;
    e->fd = p->fd;
    e->addrlen = p->addrlen;
    __builtin_memcpy(e->sa, p->sa, SA_LEN);
    e->result_ns = p->result_ns;
    e->newstate = p->newstate;
    e->error = p->error;
    e->sport = p->sport;
    e->dport = p->dport;
    e->family = p->family;
    e->_pad = 0;
    __builtin_memcpy(e->daddr, p->daddr, 16);
    e->stack_id = STACK_OF(ctx);  /* the user stack is the same at entry and exit */
    e->_pad2 = 0;
    if (type == EV_ACCEPT && p->uaddr) {
        /* the kernel has written the peer's address by now */
        if (bpf_probe_read_user(e->sa, 28, (void *)p->uaddr) == 0)
            e->addrlen = 28;
    } else if (e->addrlen == 0 && p->want_len > 0 && p->uaddr) {
        /* The address could not be read at entry: a BPF program cannot fault a page in, and
         * the caller's page was not present (never touched yet, or reclaimed or migrated; a
         * CI run had 1 of 100,000 connects without its endpoint, likely so). The syscall has
         * copied it from user memory by now, faulting the page in: read it again.
         * tests/integration/test_record.py puts the address in an untouched page: every
         * endpoint was missing before this. */
        e->addrlen = read_sockaddr(e->sa, (void *)p->uaddr, p->want_len);
    }
    events.ringbuf_submit(e, RB_FLAGS);
    pending_sockops.delete(&tid);
}

TRACEPOINT_PROBE(syscalls, sys_enter_connect)
{
    sockop_enter(args->fd, args->uservaddr, args->addrlen, 1);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_connect)
{
    sockop_exit(args, EV_CONNECT, args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_bind)
{
    sockop_enter(args->fd, args->umyaddr, args->addrlen, 1);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_bind)
{
    sockop_exit(args, EV_BIND, args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_listen)
{
    sockop_enter(args->fd, 0, 0, 0);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_listen)
{
    sockop_exit(args, EV_LISTEN, args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_accept4)
{
    sockop_enter(args->fd, args->upeer_sockaddr, 0, 0);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_accept4)
{
    sockop_exit(args, EV_ACCEPT, args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_accept)
{
    sockop_enter(args->fd, args->upeer_sockaddr, 0, 0);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_accept)
{
    sockop_exit(args, EV_ACCEPT, args->ret);
    return 0;
}

/* Copy the socket 4-tuple into a result record. A macro, not a function: the address
 * fields must be read straight off the tracepoint context (`args`) at constant offsets (the
 * verifier rejects ctx pointers passed around), and BCC forbids map calls inside macros, so
 * reserve/submit stay in the probe bodies. */
#define FILL_TUPLE(e)                                                                      \
    do {                                                                                   \
        (e)->sport = args->sport;                                                          \
        (e)->dport = args->dport;                                                          \
        (e)->family = args->family;                                                        \
        (e)->_pad = 0;                                                                     \
        if (args->family == 2) {                                                           \
            __builtin_memcpy((e)->daddr, args->daddr, 4);                                  \
            __builtin_memset(&(e)->daddr[4], 0, 12);                                       \
        } else {                                                                           \
            __builtin_memcpy((e)->daddr, args->daddr_v6, 16);                              \
        }                                                                                  \
    } while (0)

TRACEPOINT_PROBE(sock, inet_sock_set_state)
{
    if (args->protocol != IPPROTO_TCP_)
        return 0;
    u64 sk = (u64)args->skaddr;
    int oldstate = args->oldstate, newstate = args->newstate;

    if (newstate == TCP_SYN_SENT_ || newstate == TCP_LISTEN_) {
        /* inside connect()/listen(): find the syscall this thread is in */
        u32 tid = (u32)bpf_get_current_pid_tgid();
        struct pending_sockop *p = pending_sockops.lookup(&tid);
        if (!p)
            return 0;
        p->skaddr = sk;
        if (newstate == TCP_SYN_SENT_) {
            u8 one = 1;
            tracked_socks.update(&sk, &one);
        } else {
            /* listen() has no address argument: build the sockaddr the bind made,
             * in the layout user space passes (family, port in network order, addr) */
            u16 fam = args->family;
            u16 port_be = (args->sport >> 8) | ((args->sport & 0xff) << 8);
            __builtin_memcpy(&p->sa[0], &fam, 2);
            __builtin_memcpy(&p->sa[2], &port_be, 2);
            if (fam == 2 /* AF_INET */) {
                __builtin_memcpy(&p->sa[4], args->saddr, 4);
                p->addrlen = 16;
            } else {
                __builtin_memcpy(&p->sa[8], args->saddr_v6, 16);
                p->addrlen = 28;
            }
        }
        return 0;
    }
    if (oldstate != TCP_SYN_SENT_)
        return 0;
    if (!tracked_socks.lookup(&sk))
        return 0;
    {
        /* Answered while the connecting thread is still inside connect() (we run in its
         * context: a blocking connect woken up, or a loopback handshake processed in the
         * caller's softirq)? Then the answer travels in the connect's own record: one
         * record instead of two or three, and nothing to pair in user space. */
        u32 tid = (u32)bpf_get_current_pid_tgid();
        struct pending_sockop *p = pending_sockops.lookup(&tid);
        if (p && p->skaddr == sk && p->newstate == 0) {
            p->result_ns = bpf_ktime_get_ns();
            p->newstate = newstate;
            FILL_TUPLE(p);
            tracked_socks.delete(&sk);
            return 0;
        }
    }
    /* the answer to a connect we saw: ESTABLISHED = ok, CLOSE = failed (the error report,
     * if any, says why) */
    struct sk_result_event *e = events.ringbuf_reserve(sizeof(*e));
    if (!e) {
        count_lost();
    } else {
        fill_hdr(&e->hdr, EV_SK_RESULT);
        e->skaddr = sk;
        e->newstate = newstate;
        e->error = 0;
        FILL_TUPLE(e);
        events.ringbuf_submit(e, RB_FLAGS);
    }
    tracked_socks.delete(&sk);
    return 0;
}

/* This tracepoint has no skaddr: we send every TCP error report (they are rare: refused,
 * timed out, reset) with its 4-tuple, and the collector pairs it with the SYN_SENT->CLOSE
 * of a tracked connect that has the same tuple (refused: CLOSE then report; timeout:
 * report then CLOSE; both in the same kernel call). */
TRACEPOINT_PROBE(sock, inet_sk_error_report)
{
    /* (no is_self() here: in softirq "current" is whoever was interrupted) */
    if (args->protocol != IPPROTO_TCP_)
        return 0;
    /* error 0 explains nothing: a refused connect is followed by a second report with
     * error 0 and dport 0 (seen on 6.18), as many records as refusals, all useless */
    if (args->error == 0)
        return 0;
    {
        /* the report that explains a CLOSE already folded into a pending connect (refused:
         * CLOSE, then this, in the same softirq, in the connecting thread's context):
         * fold it in too. Same 4-tuple, so it is that socket's. */
        u32 tid = (u32)bpf_get_current_pid_tgid();
        struct pending_sockop *p = pending_sockops.lookup(&tid);
        if (p && p->newstate == TCP_CLOSE_ && p->error == 0 && p->sport == args->sport &&
            p->dport == args->dport && p->family == args->family) {
            p->error = args->error;
            return 0;
        }
    }
    struct sk_result_event *e = events.ringbuf_reserve(sizeof(*e));
    if (!e) {
        count_lost();
        return 0;
    }
    fill_hdr(&e->hdr, EV_SK_RESULT);
    e->skaddr = 0;
    e->newstate = 0;
    e->error = args->error;
    FILL_TUPLE(e);
    events.ringbuf_submit(e, RB_FLAGS);
    return 0;
}
