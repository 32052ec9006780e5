/* events.h: the records the BPF programs submit to the one ring buffer.
 *
 * This is the C side of the trace contract; tracer/collector/decode.py mirrors every struct
 * here as a numpy dtype (same field order, offsets and sizes: keep them in sync, the unit
 * test test_decode_layout compiles nothing but checks the Python side against the sizes
 * below).
 *
 * Rules for every program in bpf/:
 *  - read TRACEPOINT ARGUMENTS and helper results only, never kernel struct fields: the
 *    headers BCC compiles against may come from another kernel version (see docs/platform.md),
 *    so a struct offset could be silently wrong. Tracepoint `args` layouts come from the
 *    live tracefs format files and are always right;
 *  - every record starts with struct event_hdr;
 *  - a failed ring-buffer reservation increments lost_events[cpu]: nothing is dropped
 *    silently.
 *
 * Compile-time options (cflags, set by tracer/collector/probes.py):
 *  -DRB_PAGES=N        ring buffer size in pages (power of two)
 *  -DRB_FLAGS=F        ringbuf_submit flags: BPF_RB_NO_WAKEUP (default: the collector
 *                      polls on a timer; a wakeup per event costs ~13% on bursts)
 *  -DMAX_ARGS=N -DARG_LEN=N   argv capture bounds for execve (defaults 20 x 256 bytes)
 *  -DPROBE_PROCESS -DPROBE_SOCKET -DPROBE_MODULE -DPROBE_CGROUP   which concerns to build
 *  -DPROBE_STACKS      user stacks: on-CPU samples, and a stack id in the event records
 *                      below that explain a wait (bpf/stacks.bpf.c)
 *  -DHAVE_*            optional tracepoints present on this kernel (probed from tracefs)
 */
#ifndef K3SPROF_EVENTS_H
#define K3SPROF_EVENTS_H

#ifndef MAX_ARGS
#define MAX_ARGS 20
#endif
#ifndef ARG_LEN
#define ARG_LEN 256
#endif
#define PATH_LEN 256
#define SA_LEN 112 /* >= sizeof(struct sockaddr_un) == 110, sockaddr_in6 == 28 */
#define MOD_NAME_LEN 56
#ifndef RB_PAGES
#define RB_PAGES 4096
#endif
#ifndef RB_FLAGS
#define RB_FLAGS BPF_RB_NO_WAKEUP
#endif

enum event_type {
    EV_FORK = 1,         /* task:task_newtask, a process or a thread was created */
    EV_EXEC_ENTER = 2,   /* sys_enter_execve(at): filename + argv as the caller passed them */
    EV_EXEC = 3,         /* sched:sched_process_exec: the new image runs */
    EV_EXEC_FAIL = 4,    /* sys_exit_execve(at) with ret < 0 */
    EV_EXIT = 5,         /* sched:sched_process_exit of the last thread of a group */
    EV_CONNECT = 6,      /* sys_exit_connect, carrying its entry time and sockaddr */
    EV_BIND = 7,         /* sys_exit_bind */
    EV_LISTEN = 8,       /* sys_exit_listen (+ TCP port from the CLOSE->LISTEN transition) */
    EV_ACCEPT = 9,       /* sys_exit_accept(4) that returned a socket */
    EV_SK_RESULT = 10,   /* answer to a tracked non-blocking TCP connect */
    EV_MODULE = 11,      /* module load/free tracepoints, init_module/finit_module syscalls */
    EV_CGROUP = 12,      /* cgroup:cgroup_mkdir, a cgroup born during the trace */
    EV_STACK_SAMPLE = 13, /* an on-CPU sample of a target process (bpf/stacks.bpf.c) */
};

/* stack_id fields: a BPF_STACK_TRACE id (>= 0), a negative errno from bpf_get_stackid
 * (-EFAULT, -EEXIST...), or this: no stack was taken (the task is not a target, or the
 * recording has no stacks). */
#define STACK_NOT_TAKEN (-2147483647 - 1)

struct event_hdr {
    u64 ts_ns;      /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
    u64 cgroup_id;  /* bpf_get_current_cgroup_id(): cgroup v2 directory inode */
    u32 type;       /* enum event_type */
    u32 pid;        /* tgid of the current task (may be unrelated in softirq context) */
    u32 tid;
    u32 uid;
    char comm[16];
};  /* 48 bytes */

struct fork_event {
    struct event_hdr hdr;   /* current = the creating task */
    u64 clone_flags;        /* CLONE_THREAD set -> a thread of hdr.pid */
    u32 child_tid;          /* the new task's id (= its tgid unless CLONE_THREAD) */
    s32 stack_id;           /* the creating task's user stack (see STACK_NOT_TAKEN) */
};  /* 64 */

struct exec_enter_event {
    struct event_hdr hdr;
    u32 argc;               /* arguments captured (<= MAX_ARGS) */
    u32 truncated;          /* 1 if argv had more than MAX_ARGS entries */
    char filename[PATH_LEN];
    char argv[MAX_ARGS][ARG_LEN];
};  /* 48 + 8 + 256 + 20*256 = 5432 */

struct exec_event {
    struct event_hdr hdr;   /* pid/tid = after exec (tid == pid: de_thread made us leader) */
    u32 old_tid;            /* the tid that called execve (differs when a non-leader thread execs) */
    u32 _pad;
    char filename[PATH_LEN];
};  /* 312 */

struct exec_fail_event {
    struct event_hdr hdr;
    s64 ret;                /* -errno */
};  /* 56 */

struct exit_event {
    struct event_hdr hdr;
    s32 exit_code;          /* from exit_group(), valid if flags & 1 */
    s32 signal;             /* last fatal-capable signal sent to the group, valid if flags & 2 */
    u32 flags;
    u32 _pad;
};  /* 64 */

struct sockop_event {
    struct event_hdr hdr;
    u64 enter_ns;           /* syscall entry */
    u64 skaddr;             /* struct sock * seen in a state transition inside the syscall */
    s64 ret;
    s32 fd;
    u32 addrlen;            /* bytes of sa that are valid */
    u8 sa[SA_LEN];          /* struct sockaddr, as the caller passed it (listen: built from
                             * the LISTEN transition; accept: the peer, as the kernel wrote it) */
    /* A TCP connect answered while its thread is still inside connect() (every blocking
     * connect, and loopback handshakes, which complete in the caller's softirq) carries the
     * answer here instead of in separate sk_result records: paired in the kernel, so the
     * collector builds its row column-wise with no pairing state. newstate 0 = no answer
     * yet (the answer, if any, comes as an sk_result_event). */
    u64 result_ns;          /* when SYN_SENT -> newstate happened */
    s32 newstate;           /* TCP_ESTABLISHED(1) / TCP_CLOSE(7) / 0 */
    s32 error;              /* the inet_sk_error_report that followed the CLOSE, else 0 */
    u16 sport;              /* the socket's 4-tuple at the answer (as in sk_result_event) */
    u16 dport;
    u16 family;
    u16 _pad;
    u8 daddr[16];
    s32 stack_id;           /* the caller's user stack at the syscall (see STACK_NOT_TAKEN) */
    u32 _pad2;
};  /* 48 + 32 + 112 + 40 + 8 = 240 */

struct sk_result_event {
    struct event_hdr hdr;   /* pid/comm unreliable: may fire in softirq */
    u64 skaddr;             /* 0 for an error report (that tracepoint has no skaddr) */
    s32 newstate;           /* TCP_ESTABLISHED(1) / TCP_CLOSE(7); 0 for an error report */
    s32 error;              /* inet_sk_error_report error (positive errno), else 0 */
    u16 sport;              /* host order; the tuple matches an error report to its socket */
    u16 dport;
    u16 family;
    u16 _pad;
    u8 daddr[16];           /* v4 in the first 4 bytes */
};  /* 48 + 16 + 8 + 16 = 88 */

enum module_kind { MOD_LOAD = 1, MOD_FREE = 2, MOD_INIT = 3, MOD_FINIT = 4 };

struct module_event {
    struct event_hdr hdr;
    u64 enter_ns;           /* syscall entry for MOD_INIT/MOD_FINIT, else 0 */
    s64 ret;                /* syscall return for MOD_INIT/MOD_FINIT */
    u32 kind;               /* enum module_kind */
    s32 stack_id;           /* init_module/finit_module: the caller's user stack */
    char name[MOD_NAME_LEN];
};  /* 48 + 24 + 56 = 128 */

struct cgroup_event {
    struct event_hdr hdr;
    u64 id;                 /* the new cgroup's id (== its directory inode on v2) */
    s32 level;
    s32 root;               /* hierarchy id (v1 hierarchies have their own) */
    char path[PATH_LEN];
};  /* 48 + 16 + 256 = 320 */

/* An on-CPU sample (bpf/stacks.bpf.c). Not an event_hdr record (no comm, uid, cgroup: the
 * sampled task's process rows have them); its type is at offset 16 like every record's. */
struct stack_sample {
    u64 ts_ns;
    u32 pid;                /* tgid of the task on the CPU */
    u32 tid;
    u32 type;               /* EV_STACK_SAMPLE */
    s32 stack_id;           /* user stack id, or get_stackid's negative errno */
    u32 cpu;
    u32 _pad;
};  /* 32 */

#endif /* K3SPROF_EVENTS_H */
