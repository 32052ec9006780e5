/* sched.h: the records of the scheduler concern (bpf/sched.bpf.c).
 *
 * Kept apart from events.h so this concern can evolve on its own; the record types are
 * numbered from 32 so they never collide with enum event_type. Every record has its u32
 * `type` at byte offset 16 like struct event_hdr, because the collector reads the type of
 * every record at that offset before it knows what the record is
 * (tracer/collector/decode.split). tracer/collector/sched.py mirrors these structs as
 * numpy dtypes (test_sched_decode checks the sizes below).
 *
 * Compile-time options (set by tracer/collector/probes.py when the concern is on):
 *  -DPROBE_SCHED            build this concern
 *  -DSCHED_LONG_NS=N        a state interval at least this long is its own record
 *                           (default 1 ms: the critical path's idle-stretch threshold)
 *  -DSCHED_BUCKET_NS=N      shorter intervals are folded into a per-thread "mixed" record
 *                           covering at most about this much time (default 10 ms: the
 *                           busy-cores resolution)
 *  -DHAVE_SCHED_IRQ         irq:* softirq/hardirq tracepoints exist (waker context)
 *  -DHAVE_SCHED_HRTIMER     timer:hrtimer_expire_* exist (timer wakers)
 *  -DHAVE_SCHED_BLOCK       block:block_rq_issue/complete exist
 *  -DHAVE_SCHED_SYNC_FILE_RANGE   its syscall tracepoints exist
 *  -DTASK_EXEC_OFF=N        task_struct.se.sum_exec_runtime's offset (kernel BTF): splits
 *                           a cpu interval into the time charged to the thread and steal
 *                           (sched.bpf.c sched_cpu_ran); without it no steal is measured
 */
#ifndef K3SPROF_SCHED_H
#define K3SPROF_SCHED_H

#ifndef SCHED_LONG_NS
#define SCHED_LONG_NS 1000000ULL
#endif
#ifndef SCHED_BUCKET_NS
#define SCHED_BUCKET_NS 10000000ULL
#endif
#define SCHED_MAX_THREADS 65536

enum sched_event_type {
    EV_SCHED_INTERVAL = 32,  /* a stretch of one thread's time, with ns per state */
    EV_SCHED_WAKE = 33,      /* the wakeup that ended a long idle stretch, and who did it */
    EV_SCHED_BIO = 34,       /* one block request, issue -> complete */
    EV_SCHED_SYNC = 35,      /* one fsync / fdatasync / sync_file_range call */
};

/* Thread states. The index is also the slot in ns[]. */
enum sched_state {
    ST_CPU = 0,      /* on a CPU */
    ST_RQ = 1,       /* runnable, waiting for a CPU (preempted, or woken and not yet run) */
    ST_IO = 2,       /* uninterruptible sleep (D): disk waits, but also some kernel locks */
    ST_SLEEP = 3,    /* interruptible or idle sleep (S, I), stopped/traced (T, t), parked */
    ST_OTHER = 4,    /* not known (see sched.bpf.c: a thread first seen being woken) */
    ST_STEAL = 5,    /* on a CPU as the guest kernel sees it, but not charged to the thread:
                      * the hypervisor ran something else on the vCPU (steal), or interrupt
                      * time the kernel accounts apart (CONFIG_IRQ_TIME_ACCOUNTING); only
                      * ever a part of a cpu interval (sched.bpf.c sched_cpu_ran) */
    ST_N = 6,
};

#define SCHED_F_DIED 1   /* the thread died at end_ns (its last record) */
#define SCHED_F_MIXED 2  /* folded: several short intervals; ns[] says how much of each */

struct sched_interval {
    u64 start_ns;
    u64 end_ns;         /* ns[0] + ... + ns[4] == end_ns - start_ns, always */
    u32 type;           /* EV_SCHED_INTERVAL, at offset 16 */
    u32 tid;
    u32 pid;            /* tgid; 0 when the thread has not yet been seen on a CPU */
    u16 nfold;          /* intervals folded into a mixed record (saturates) */
    u8 state;           /* the state of a pure (unfolded) record; ST_N for mixed */
    u8 flags;           /* SCHED_F_* */
    u64 ns[ST_N];       /* a pure ST_CPU record may carry ns[ST_STEAL] beside ns[ST_CPU] */
};  /* 80 */

enum waker_kind {
    WK_PROCESS = 1,     /* a task, in process context: waker_pid/tid/comm */
    WK_TIMER = 2,       /* inside an hrtimer expiry (nanosleep, timeouts) or TIMER softirq */
    WK_SOFTIRQ = 3,     /* inside another softirq: vec says which (NET_RX = network, BLOCK = disk) */
    WK_HARDIRQ = 4,     /* inside a device interrupt handler: irq says which device */
    WK_IDLE = 5,        /* the idle task, outside any tracked interrupt context */
};

struct sched_wake {
    u64 ts_ns;          /* sched_waking */
    u64 idle_start_ns;  /* when the wakee went to sleep; 0 = before the trace began */
    u32 type;           /* EV_SCHED_WAKE */
    u32 tid;            /* the wakee */
    u32 pid;            /* its tgid (0 = not yet known) */
    u32 waker_pid;
    u32 waker_tid;
    u8 kind;            /* enum waker_kind */
    u8 idle_state;      /* ST_IO / ST_SLEEP / ST_OTHER (first seen) */
    u16 softirq;        /* vec + 1 while in a softirq, else 0 */
    s32 irq;            /* irq number while in a hard irq handler, else -1 */
    u32 cpu;
    char waker_comm[16];
};  /* 64 */

struct sched_bio {
    u64 issue_ns;
    u64 end_ns;
    u32 type;           /* EV_SCHED_BIO */
    u32 tid;            /* the task current at issue (often a kworker or jbd2, not the writer) */
    u32 pid;
    u32 dev;            /* kernel dev_t: major << 20 | minor */
    u64 sector;
    u32 bytes;
    s32 error;
    char rwbs[8];
    char comm[16];
};  /* 72 */

enum sync_kind { SYNC_FSYNC = 1, SYNC_FDATASYNC = 2, SYNC_FILE_RANGE = 3 };

struct sched_sync {
    u64 enter_ns;
    u64 exit_ns;
    u32 type;           /* EV_SCHED_SYNC */
    u32 tid;
    u32 pid;
    u32 kind;           /* enum sync_kind */
    s64 ret;
    s64 fd;
    s32 stack_id;       /* the caller's user stack (STACK_NOT_TAKEN: not a stacks target) */
    u32 _pad;
};  /* 56 */

#endif /* K3SPROF_SCHED_H */
