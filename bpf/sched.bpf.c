/* sched.bpf.c: what every thread was doing, all the time: on CPU, runnable, in
 * uninterruptible (disk) sleep, or asleep; who woke it; block requests and fsync calls.
 *
 * Two hook paths for the hot three (sched_switch, sched_waking, sched_wakeup_new), chosen
 * per kernel by tracer/collector/probes.py (choose_sched_hooks): raw tracepoints (-DSCHED_RAW_TP)
 * where the kernel's BTF gives task_struct.pid's offset (-DTASK_PID_OFF) and the raw
 * argument lists match, else tracepoint arguments only (docs/platform.md: the headers
 * BCC compiles against may be another kernel's). Either way the tgid comes from
 * bpf_get_current_pid_tgid() at the moments the thread itself is current (its switch-out).
 *
 * sched_switch is the most frequent event on any machine (a ping-pong over a pipe does
 * >100k/s), so a record per switch would make the collector the bottleneck. Instead each
 * thread's time is tiled by records with no gaps and no overlaps:
 *  - an interval of one state lasting >= SCHED_LONG_NS is a "pure" record of its own;
 *  - shorter intervals are folded: their ns are added per state to the thread's
 *    accumulator, which is written as one "mixed" record [acc_start, now) once it spans
 *    SCHED_BUCKET_NS, or just before the next pure record (so the tiling stays exact).
 * The per-thread record rate is therefore at most ~1/SCHED_BUCKET_NS plus one per long
 * interval: a thread switching every 10 us costs 100 records/s, not 200 000.
 * Within a mixed record the order of the folded intervals is lost, nothing else: its ns[]
 * still sum exactly to its span.
 *
 * Wakeups: sched_waking fires in the waker's context (sched_wakeup may fire later on the
 * target CPU from an IPI, where "current" is unrelated), so it is the one used. A wakeup
 * that ends an idle stretch >= SCHED_LONG_NS is recorded with the waker: a process, or the
 * interrupt context we are in (tracked per CPU from the irq/softirq/hrtimer tracepoints).
 *
 * A thread's state before its first event in the trace is unknown to BPF; the collector
 * fills it from /proc (S/D read after attach) or as "other" (see tracer/collector/sched.py).
 */
#include "sched.h"

struct sched_thread {
    u64 since;          /* start of the current (not yet recorded) interval */
    u64 acc_start;      /* start of the folded accumulation; == since when nothing folded */
    u64 exec_ns;        /* its sum_exec_runtime when it last left a CPU (EXEC_UNKNOWN) */
    u64 acc[ST_N];      /* folded ns per state */
    u32 tgid;           /* 0 until the thread is seen on a CPU */
    u16 nfold;
    u8 state;           /* enum sched_state of the current interval */
    u8 _pad;
    u32 cpu;            /* where it was last switched in */
    u32 tid;            /* the entry's thread: in sched_slots, 0 = a free slot */
};  /* 88: tracer/collector/sched.py THREAD mirrors it */

/* Steal. Between a thread's switch-in and switch-out the guest kernel sees it on a CPU, but
 * on a virtual machine the hypervisor may not run that vCPU for part of the time (host steal:
 * seen here as a planted 200 ms spin reading 332 ms "on CPU" while the thread's own CPU clock
 * said 200 ms, docs/sched.md "Steal"). The scheduler charges a thread only what it ran:
 * update_curr() adds rq_clock_task deltas to se.sum_exec_runtime, and that clock leaves out
 * paravirt steal (and irq time with CONFIG_IRQ_TIME_ACCOUNTING); CLOCK_THREAD_CPUTIME_ID
 * reads the same sum. At sched_switch the leaving thread's sum is up to date (put_prev /
 * dequeue ran update_curr just before), and it does not move while the thread is off CPU,
 * so its value at the previous switch-out is its value at this switch-in: the difference
 * over one on-CPU interval is what the thread ran, the rest of the interval is ST_STEAL.
 * Only the current task's sum is read (bpf_get_current_task: prev at switch-out, the
 * interrupted task in the tick), so the tracepoint path measures it too. */
#define EXEC_UNKNOWN (~0ULL)

static __always_inline u64 current_exec_ns(void)
{
#ifdef TASK_EXEC_OFF
    u64 v = 0;
    u64 task = bpf_get_current_task();
    if (bpf_probe_read_kernel(&v, sizeof(v), (void *)(task + TASK_EXEC_OFF)))
        return EXEC_UNKNOWN;
    return v;
#else
    return EXEC_UNKNOWN;
#endif
}

/* ns the current thread ran in the cpu interval now ending (EXEC_UNKNOWN: not measured,
 * all of it is cpu), and its sum becomes the baseline of its next interval. */
static __always_inline u64 sched_cpu_ran(struct sched_thread *t, u64 exec)
{
    u64 ran = EXEC_UNKNOWN;
    if (t->state == ST_CPU && exec != EXEC_UNKNOWN && t->exec_ns != EXEC_UNKNOWN &&
        exec >= t->exec_ns)
        ran = exec - t->exec_ns;
    t->exec_ns = exec;
    return ran;
}

/* Where each thread's entry lives. Every context switch looks up two threads and every
 * wakeup one, so the lookup is the hot path (bench/sched_overhead.py, docs/bench.md): a
 * hash lookup hashes the key and walks a bucket, an array lookup is inlined by the
 * verifier into a bounds check and an add. So threads live in a direct-mapped array
 * indexed by the low bits of the tid, tagged with the tid; a thread whose slot is held by
 * another live thread (tids SCHED_SLOTS apart: pid_max is 4M on systemd hosts) goes to
 * the hash map instead. A tid is in at most one of the two (sched_get looks in the slot
 * first, sched_new_thread reuses an existing entry). Entries are dropped at the thread's
 * last switch (TASK_DEAD). The collector reads the open intervals from both when the
 * recording stops; the array is mmapable so that read is one copy, not 65536 syscalls. */
#define SCHED_SLOTS 65536
BPF_F_TABLE("array", u32, struct sched_thread, sched_slots, SCHED_SLOTS, BPF_F_MMAPABLE);
BPF_HASH(sched_threads, u32, struct sched_thread, SCHED_MAX_THREADS);

static __always_inline struct sched_thread *sched_get(u32 tid)
{
    u32 i = tid & (SCHED_SLOTS - 1);
    struct sched_thread *s = sched_slots.lookup(&i);
    if (s && s->tid == tid)
        return s;
    return sched_threads.lookup(&tid);
}

static __always_inline void sched_drop(u32 tid)
{
    u32 i = tid & (SCHED_SLOTS - 1);
    struct sched_thread *s = sched_slots.lookup(&i);
    if (s && s->tid == tid)
        s->tid = 0;
    else
        sched_threads.delete(&tid);
}

/* Per-CPU interrupt context, for naming wakers. Set on entry, cleared on exit (not
 * counted: a trace attached mid-handler sees an exit without its entry). */
struct sched_irqctx {
    s32 hardirq;        /* irq + 1 inside irq_handler_entry/exit, else 0 */
    u32 softirq;        /* vec + 1 inside softirq_entry/exit, else 0 */
    u32 hrtimer;        /* 1 inside hrtimer_expire_entry/exit */
};
BPF_PERCPU_ARRAY(sched_irqctx, struct sched_irqctx, 1);

/* The thread each CPU last switched to. Some context switches never reach the tracepoint
 * programs (seen here: a task switched in, then its switch-out never reported, while the
 * same CPU later switches out another task; bpftrace sees the same holes). On the 2-vCPU
 * Firecracker VMs this was built on, the missing switches are exactly the switch-outs of
 * the sandbox agent's threads (PID 1's tokio-rt-worker): no tracepoint program runs while
 * one of them is current, so the switch away from it (which fires in its context) and the
 * switch-in of whatever follows are never seen (docs/sched.md "Missed switches"; the
 * recursion_misses of every program stay 0, so it is not BPF's recursion guard). A
 * switch-out of a task other than the one we last switched in, or a timer tick finding
 * another task on the CPU (sched_resync), proves that a switch was missed: the time since
 * the lost task's switch-in is then "other" (it ran for an unknown part of it), never
 * cpu. Counted in sched_missed[0] (switch-outs) and [1] (switch-ins), shown in meta.json. */
BPF_PERCPU_ARRAY(sched_runner, u32, 1);
BPF_PERCPU_ARRAY(sched_missed, u64, 2);

static __always_inline void sched_count_missed(int which)
{
    u64 *n = sched_missed.lookup(&which);
    if (n)
        (*n)++;
}

/* Non-zero once the collector stops the recording: from then on the thread map is frozen
 * and nothing is emitted, so the map the collector reads next is exactly where the records
 * it has drained end (no record can fall between the last drain and the map read).
 * Every program reads its clock BEFORE it tests the flag: the collector stamps the end
 * (meta.json sched.end_ns) just after setting the flag (tracer/collector/sched.py freeze),
 * so a program that passes the test read a time before the end. A clock read after the
 * test could be later than the end (a vCPU can stall between the two). */
BPF_ARRAY(sched_frozen, u64, 1);

static __always_inline int sched_is_frozen(void)
{
    int zero = 0;
    u64 *f = sched_frozen.lookup(&zero);
    return f && *f;
}

/* One record: a mixed one (state == ST_N) carries t->acc; a pure one all of [start, end)
 * in `state`. (Indexing by a runtime state is written as a loop of compares: the verifier
 * rejects variable-offset stack writes.) */
static __always_inline void sched_emit(u32 tid, struct sched_thread *t, u64 start, u64 end,
                                       u8 state, u16 nfold, u8 flags, u64 steal)
{
    struct sched_interval *r = events.ringbuf_reserve(sizeof(*r));
    if (!r) {
        /* the collector sees the hole in this thread's tiling and calls it "other" */
        count_lost();
        return;
    }
    r->start_ns = start;
    r->end_ns = end;
    r->type = EV_SCHED_INTERVAL;
    r->tid = tid;
    r->pid = t->tgid;
    r->nfold = nfold;
    r->state = state;
    r->flags = flags;
#pragma unroll
    for (int i = 0; i < ST_N; i++)
        r->ns[i] = state == ST_N ? t->acc[i] : (i == state ? end - start - steal : 0);
    if (state != ST_N)
        r->ns[ST_STEAL] += steal;  /* only a cpu interval has any (sched_transition) */
    events.ringbuf_submit(r, RB_FLAGS);
}

/* The thread's current interval ends now; it enters `next`. `ran`: for a cpu interval,
 * the ns charged to the thread (sched_cpu_ran), the rest is steal; EXEC_UNKNOWN: all cpu. */
static __always_inline void sched_transition(u32 tid, struct sched_thread *t, u64 now,
                                             u8 next, u8 flags, u64 ran)
{
    u64 dur = now - t->since;
    u8 s = t->state;
    if (s >= ST_N || s == ST_STEAL)
        s = ST_OTHER;
    u64 steal = (s == ST_CPU && ran < dur) ? dur - ran : 0;
    if (dur >= SCHED_LONG_NS) {
        if (t->since > t->acc_start)
            sched_emit(tid, t, t->acc_start, t->since, ST_N, t->nfold, SCHED_F_MIXED, 0);
        sched_emit(tid, t, t->since, now, s, 1, flags, steal);
        goto reset;
    }
#pragma unroll
    for (int i = 0; i < ST_N; i++)
        if (i == s)
            t->acc[i] += dur - steal;
    t->acc[ST_STEAL] += steal;
    if (t->nfold < 0xffff)
        t->nfold++;
    if (now - t->acc_start >= SCHED_BUCKET_NS || (flags & SCHED_F_DIED)) {
        sched_emit(tid, t, t->acc_start, now, ST_N, t->nfold, flags | SCHED_F_MIXED, 0);
        goto reset;
    }
    t->since = now;
    t->state = next;
    return;
reset:
#pragma unroll
    for (int i = 0; i < ST_N; i++)
        t->acc[i] = 0;
    t->nfold = 0;
    t->acc_start = now;
    t->since = now;
    t->state = next;
}

/* A thread's timeline starts (or restarts: a tid whose death we never saw) at now.
 * Two CPUs claiming one free slot at once for different tids: the later write wins and the
 * other thread is re-created at its next event; the collector sees the hole in its tiling
 * ("other", counted in sched.repairs). */
static __always_inline struct sched_thread *sched_new_thread(u32 tid, u64 now, u8 state,
                                                             u32 tgid, u64 exec)
{
    struct sched_thread *s = sched_get(tid);
    if (!s) {
        u32 i = tid & (SCHED_SLOTS - 1);
        s = sched_slots.lookup(&i);
        if (s && s->tid != 0)
            s = 0;  /* held by another live thread: this one overflows to the hash */
    }
    if (s) {
        __builtin_memset(s->acc, 0, sizeof(s->acc));
        s->since = now;
        s->acc_start = now;
        s->state = state;
        s->tgid = tgid;
        s->nfold = 0;
        s->cpu = 0;
        s->exec_ns = exec;
        s->tid = tid;
        return s;
    }
    struct sched_thread t = {};
    t.since = now;
    t.acc_start = now;
    t.state = state;
    t.tgid = tgid;
    t.exec_ns = exec;
    t.tid = tid;
    sched_threads.update(&tid, &t);
    return sched_threads.lookup(&tid);
}

/* prev_state as sched_switch reports it (__trace_sched_switch_state): 0 = still
 * TASK_RUNNING (yield, or woken before it could sleep), 0x100 = preempted, else one bit of
 * "SDTtXZPI" (1 << index). */
#define PS_UNINTERRUPTIBLE 0x2
#define PS_DEAD (0x10 | 0x20)   /* X, Z: the thread's final switch */
#define PS_PREEMPTED 0x100

/* One context switch on this CPU: prev (current until now) leaves in state `to`, or for
 * good (dead), and next gets the CPU. Both hook paths below end here. */
static __always_inline int sched_on_switch(u64 now, u32 prev, u32 next, u8 to, int dead)
{
    if (sched_is_frozen())
        return 0;
    /* pid 0 is the per-CPU idle task: not a thread of any process */
    int zero = 0;
    u32 cpu = bpf_get_smp_processor_id();
    u32 *runner = sched_runner.lookup(&zero);
    if (runner && *runner != 0 && *runner != prev) {
        u32 lost = *runner;
        struct sched_thread *l = sched_get(lost);
        if (l && l->state == ST_CPU && l->cpu == cpu) {
            l->state = ST_OTHER;  /* [switch-in, now): ran for an unknown part of it */
            l->exec_ns = EXEC_UNKNOWN;  /* and its sum moved by as much */
            sched_transition(lost, l, now, ST_OTHER, 0, EXEC_UNKNOWN);
            sched_count_missed(0);
        }
    }
    if (runner)
        *runner = next;
    if (prev != 0) {
        u32 tgid = bpf_get_current_pid_tgid() >> 32;  /* current is still prev here */
        u64 exec = current_exec_ns();
        struct sched_thread *t = sched_get(prev);
        if (!t) {
            if (!dead)
                sched_new_thread(prev, now, to, tgid, exec);
        } else {
            t->tgid = tgid;
            if (t->state != ST_CPU) {
                /* its switch-in was missed: since its last event it waited and ran */
                t->state = ST_OTHER;
                sched_count_missed(1);
            }
            u64 ran = sched_cpu_ran(t, exec);
            if (dead) {
                sched_transition(prev, t, now, ST_OTHER, SCHED_F_DIED, ran);
                sched_drop(prev);
            } else {
                sched_transition(prev, t, now, to, 0, ran);
            }
        }
    }
    if (next != 0) {
        struct sched_thread *t = sched_get(next);
        if (!t) {
            /* its sum is not current's: the first cpu interval is not split */
            t = sched_new_thread(next, now, ST_CPU, 0, EXEC_UNKNOWN);
        } else if (t->state != ST_CPU) {
            sched_transition(next, t, now, ST_CPU, 0, EXEC_UNKNOWN);
        } else if (t->cpu != cpu) {
            /* "on a CPU" elsewhere: its switch-out there was missed */
            t->state = ST_OTHER;
            t->exec_ns = EXEC_UNKNOWN;
            sched_transition(next, t, now, ST_CPU, 0, EXEC_UNKNOWN);
            sched_count_missed(0);
        }
        if (t)
            t->cpu = cpu;
    }
    return 0;
}

#ifdef SCHED_RAW_TP
/* Raw tracepoints (chosen per kernel by tracer/collector/probes.py sched_hooks): the program
 * runs straight from the tracepoint with its raw arguments, skipping the perf-event glue
 * that fills a TRACEPOINT_PROBE's `args` record (three hits per ping-pong round trip: that
 * glue was most of the concern's cost, docs/sched.md "Overhead"). The arguments are
 * task_struct pointers; the one field read behind them, pid, is at TASK_PID_OFF, taken from
 * this kernel's BTF (tracer/collector/btf.py), never from the headers BCC compiles against
 * (they can be another kernel's: docs/platform.md). */
#ifndef TASK_PID_OFF
#error "SCHED_RAW_TP needs -DTASK_PID_OFF (task_struct.pid, from the kernel's BTF)"
#endif

/* (not "task_pid": that is a kernel function whose declaration the stacks concern's perf-event
 * headers bring in) */
static __always_inline u32 raw_task_tid(u64 task)
{
    u32 pid = 0;
    bpf_probe_read_kernel(&pid, sizeof(pid), (void *)(task + TASK_PID_OFF));
    return pid;
}

/* Raw task states (include/linux/sched.h; stable since 5.15, and the raw sched_switch
 * passes prev_state only since 5.18, which sched_hooks checks in the BTF). */
#define TS_UNINTERRUPTIBLE 0x2
#define TS_REPORT 0x7f          /* R S D T t X Z P: what the tracepoint can report */
#define TS_DEAD 0x80            /* do_task_dead(): the thread's final switch */
#define TS_IDLE 0x402           /* TASK_UNINTERRUPTIBLE | TASK_NOLOAD: reported as I */
#define TS_RTLOCK_WAIT 0x1000   /* reported as D */
#define TS_FROZEN 0x8000        /* reported as D (6.1+) */

/* TP_PROTO(bool preempt, struct task_struct *prev, struct task_struct *next,
 *          unsigned int prev_state). The state is mapped as the tracepoint maps it
 * (__trace_sched_switch_state): preempted -> runnable; else its highest reportable bit, D
 * -> io, none (still TASK_RUNNING) -> runnable, any other -> sleep. The tracepoint reports
 * a dying thread as X/Z from its exit_state; here its raw state is TASK_DEAD (exit_state is
 * always set by then, in exit_notify), so both paths see the same final switch. */
RAW_TRACEPOINT_PROBE(sched_switch)
{
    u64 now = bpf_ktime_get_ns();  /* before the frozen test: see sched_frozen */
    u32 prev = (u32)bpf_get_current_pid_tgid();  /* current is still prev */
    u32 next = raw_task_tid(ctx->args[2]);
    u32 st = (u32)ctx->args[3];
    u8 to = ST_SLEEP;
    int dead = 0;
    if (ctx->args[0]) {
        to = ST_RQ;
    } else if (st & TS_DEAD) {
        dead = 1;
    } else {
        /* as __task_state_index: idle (even freezable) reports I, an rtlock wait or a
         * frozen task D */
        u32 rep = st & TS_REPORT;
        if ((st & TS_IDLE) == TS_IDLE)
            rep = 0x80;
        if (st & (TS_RTLOCK_WAIT | TS_FROZEN))
            rep = TS_UNINTERRUPTIBLE;
        if (rep == 0)
            to = ST_RQ;
        else if ((rep & ~(u32)0x3) == 0 && (rep & TS_UNINTERRUPTIBLE))
            to = ST_IO;  /* highest bit D */
    }
    return sched_on_switch(now, prev, next, to, dead);
}
#else
TRACEPOINT_PROBE(sched, sched_switch)
{
    u64 now = bpf_ktime_get_ns();  /* before the frozen test: see sched_frozen */
    long ps = args->prev_state;
    u8 to = ST_SLEEP;
    if (ps == 0 || (ps & PS_PREEMPTED))
        to = ST_RQ;
    else if (ps & PS_UNINTERRUPTIBLE)
        to = ST_IO;
    return sched_on_switch(now, args->prev_pid, args->next_pid, to, (ps & PS_DEAD) != 0);
}
#endif

/* Thread tid is being woken, in the waker's context. */
static __always_inline int sched_on_waking(u64 now, u32 tid)
{
    if (tid == 0 || sched_is_frozen())
        return 0;
    struct sched_thread *t = sched_get(tid);
    u64 idle_start;
    u8 idle_state;
    u32 wakee_tgid = 0;
    if (!t) {
        /* First sight of this thread. Almost always it was asleep since before the trace,
         * but sched_waking also fires for a task that set TASK_INTERRUPTIBLE and is still
         * on its CPU: so its state from now until its next switch is "other", not a guess. */
        sched_new_thread(tid, now, ST_OTHER, 0, EXEC_UNKNOWN);
        idle_start = 0;
        idle_state = ST_OTHER;
    } else {
        if (t->state == ST_OTHER) {
            sched_transition(tid, t, now, ST_RQ, 0, EXEC_UNKNOWN);  /* lost track; runnable now */
            return 0;
        }
        if (t->state != ST_IO && t->state != ST_SLEEP)
            return 0;  /* running or already runnable: no idle stretch ends here */
        idle_start = t->since;
        idle_state = t->state;
        wakee_tgid = t->tgid;
        sched_transition(tid, t, now, ST_RQ, 0, EXEC_UNKNOWN);
        if (now - idle_start < SCHED_LONG_NS)
            return 0;
    }
    struct sched_wake *w = events.ringbuf_reserve(sizeof(*w));
    if (!w) {
        count_lost();
        return 0;
    }
    u64 id = bpf_get_current_pid_tgid();
    int zero = 0;
    struct sched_irqctx *c = sched_irqctx.lookup(&zero);
    w->ts_ns = now;
    w->idle_start_ns = idle_start;
    w->type = EV_SCHED_WAKE;
    w->tid = tid;
    w->pid = wakee_tgid;
    w->waker_pid = id >> 32;
    w->waker_tid = (u32)id;
    w->idle_state = idle_state;
    w->softirq = 0;
    w->irq = -1;
    w->cpu = bpf_get_smp_processor_id();
    bpf_get_current_comm(&w->waker_comm, sizeof(w->waker_comm));
    /* innermost context first: hrtimer callbacks and irq handlers run with interrupts
     * off, so they nest inside a softirq, never the other way round */
    if (c && c->hrtimer)
        w->kind = WK_TIMER;
    else if (c && c->hardirq) {
        w->kind = WK_HARDIRQ;
        w->irq = c->hardirq - 1;
    } else if (c && c->softirq) {
        w->softirq = c->softirq;
        /* TIMER (1) and HRTIMER (8) softirqs run expired timers */
        w->kind = (c->softirq == 2 || c->softirq == 9) ? WK_TIMER : WK_SOFTIRQ;
    } else if ((u32)id == 0)
        w->kind = WK_IDLE;
    else
        w->kind = WK_PROCESS;
    events.ringbuf_submit(w, RB_FLAGS);
    return 0;
}

#ifdef SCHED_RAW_TP
/* TP_PROTO(struct task_struct *p) */
RAW_TRACEPOINT_PROBE(sched_waking)
{
    u64 now = bpf_ktime_get_ns();  /* before the frozen test: see sched_frozen */
    return sched_on_waking(now, raw_task_tid(ctx->args[0]));
}
#else
TRACEPOINT_PROBE(sched, sched_waking)
{
    u64 now = bpf_ktime_get_ns();  /* before the frozen test: see sched_frozen */
    return sched_on_waking(now, args->pid);
}
#endif

/* A new task (fork or thread) becomes runnable: its timeline starts here. current is the
 * creator; the child's tgid is learnt at its first switch-out. */
static __always_inline int sched_on_wakeup_new(u64 now, u32 tid)
{
    if (tid != 0 && !sched_is_frozen())
        sched_new_thread(tid, now, ST_RQ, 0, 0);  /* sched_fork zeroes its sum_exec_runtime */
    return 0;
}

#ifdef SCHED_RAW_TP
RAW_TRACEPOINT_PROBE(sched_wakeup_new)
{
    u64 now = bpf_ktime_get_ns();  /* before the frozen test: see sched_frozen */
    return sched_on_wakeup_new(now, raw_task_tid(ctx->args[0]));
}
#else
TRACEPOINT_PROBE(sched, sched_wakeup_new)
{
    u64 now = bpf_ktime_get_ns();  /* before the frozen test: see sched_frozen */
    return sched_on_wakeup_new(now, args->pid);
}
#endif

#ifdef HAVE_SCHED_IRQ
static __always_inline int sched_irqctx_set(int which, s32 value)
{
    int zero = 0;
    struct sched_irqctx *c = sched_irqctx.lookup(&zero);
    if (c) {
        if (which)
            c->hardirq = value;
        else
            c->softirq = (u32)value;
    }
    return 0;
}

#ifdef SCHED_RAW_TP
/* softirq_entry/exit(unsigned int vec_nr), irq_handler_entry(int irq, struct irqaction *),
 * irq_handler_exit(int irq, struct irqaction *, int ret): plain numbers, no struct read */
RAW_TRACEPOINT_PROBE(softirq_entry) { return sched_irqctx_set(0, (u32)ctx->args[0] + 1); }
RAW_TRACEPOINT_PROBE(softirq_exit) { return sched_irqctx_set(0, 0); }
RAW_TRACEPOINT_PROBE(irq_handler_entry) { return sched_irqctx_set(1, (s32)ctx->args[0] + 1); }
RAW_TRACEPOINT_PROBE(irq_handler_exit) { return sched_irqctx_set(1, 0); }
#else
TRACEPOINT_PROBE(irq, softirq_entry) { return sched_irqctx_set(0, args->vec + 1); }
TRACEPOINT_PROBE(irq, softirq_exit) { return sched_irqctx_set(0, 0); }
TRACEPOINT_PROBE(irq, irq_handler_entry) { return sched_irqctx_set(1, args->irq + 1); }
TRACEPOINT_PROBE(irq, irq_handler_exit) { return sched_irqctx_set(1, 0); }
#endif
#endif

#ifdef HAVE_SCHED_HRTIMER
/* The scheduler tick is an hrtimer: on a busy CPU this fires every 1/HZ (4 ms at HZ=250),
 * in interrupt context, where current is the task the interrupt stopped, i.e. the task on
 * this CPU. When that is not the thread the CPU last switched to (sched_runner), a switch
 * was never reported (see sched_runner: on the machines this was built on, every switch-out
 * of the sandbox agent's threads is missing). Without this check the thread that got the
 * CPU in the missing switch keeps its old state until its own next reported switch, which
 * for a thread spinning on an otherwise quiet CPU can be 50 ms or more, all of it "other"
 * (a 300 ms spin read 52 ms of other in CI: docs/sched.md "Missed switches"). Here the
 * lost runner's time since its switch-in and the found thread's time since its last event
 * become "other", the found thread is on this CPU from now, and every hole is closed
 * within one tick of the CPU running something we can see. Counted as the switch that
 * sched_switch would count at the next reported switch (never both: the runner is fixed). */
static __always_inline void sched_resync(void)
{
    int zero = 0;
    u32 *runner = sched_runner.lookup(&zero);
    if (!runner)
        return;
    u64 id = bpf_get_current_pid_tgid();
    u32 cur = (u32)id;
    if (*runner == cur)
        return;
    u64 now = bpf_ktime_get_ns();  /* before the frozen test: see sched_frozen */
    if (sched_is_frozen())
        return;
    u32 cpu = bpf_get_smp_processor_id();
    u32 lost = *runner;
    if (lost != 0) {
        struct sched_thread *l = sched_get(lost);
        if (l && l->state == ST_CPU && l->cpu == cpu) {
            l->state = ST_OTHER;  /* [switch-in, now): ran for an unknown part of it */
            l->exec_ns = EXEC_UNKNOWN;  /* and its sum moved by as much */
            sched_transition(lost, l, now, ST_OTHER, 0, EXEC_UNKNOWN);
            sched_count_missed(0);
        }
    }
    *runner = cur;
    if (cur == 0)
        return;  /* the idle task: no entry */
    struct sched_thread *t = sched_get(cur);
    if (!t) {
        /* first sight, e.g. running since before the attach with no switch yet: on CPU
         * from now; the collector fills the time before from /proc ("other" for R) */
        t = sched_new_thread(cur, now, ST_CPU, id >> 32, current_exec_ns());
    } else if (t->state != ST_CPU || t->cpu != cpu) {
        /* its switch-in here was missed: since its last event it waited and ran */
        t->state = ST_OTHER;
        sched_transition(cur, t, now, ST_CPU, 0, EXEC_UNKNOWN);
        t->exec_ns = current_exec_ns();  /* its cpu interval from now is measured */
        sched_count_missed(1);
    }
    if (t) {
        t->cpu = cpu;
        t->tgid = id >> 32;
    }
}

static __always_inline int sched_hrtimer(u32 inside)
{
    int zero = 0;
    struct sched_irqctx *c = sched_irqctx.lookup(&zero);
    if (c)
        c->hrtimer = inside;
    if (inside)
        sched_resync();
    return 0;
}

#ifdef SCHED_RAW_TP
/* hrtimer_expire_entry(struct hrtimer *, ktime_t *now), _exit(struct hrtimer *): no
 * argument is read */
RAW_TRACEPOINT_PROBE(hrtimer_expire_entry) { return sched_hrtimer(1); }
RAW_TRACEPOINT_PROBE(hrtimer_expire_exit) { return sched_hrtimer(0); }
#else
TRACEPOINT_PROBE(timer, hrtimer_expire_entry) { return sched_hrtimer(1); }
TRACEPOINT_PROBE(timer, hrtimer_expire_exit) { return sched_hrtimer(0); }
#endif
#endif

#ifdef HAVE_SCHED_BLOCK
struct sched_bio_key {
    u64 sector;
    u32 dev;
    u32 _pad;
};
struct sched_bio_issue {
    u64 ts;
    u32 tid;
    u32 pid;
    u32 bytes;
    u32 _pad;
    char comm[16];
};
/* In-flight requests by (dev, sector). LRU: a completion we never see (a request issued
 * before a driver reset, a flush with sector 0 reused) cannot leak map space. */
BPF_TABLE("lru_hash", struct sched_bio_key, struct sched_bio_issue, sched_bios, 16384);

TRACEPOINT_PROBE(block, block_rq_issue)
{
    struct sched_bio_key k = {};
    k.sector = args->sector;
    k.dev = args->dev;
    struct sched_bio_issue v = {};
    u64 id = bpf_get_current_pid_tgid();
    v.ts = bpf_ktime_get_ns();
    v.tid = (u32)id;
    v.pid = id >> 32;
    v.bytes = args->bytes;
    bpf_get_current_comm(&v.comm, sizeof(v.comm));
    sched_bios.update(&k, &v);
    return 0;
}

TRACEPOINT_PROBE(block, block_rq_complete)
{
    struct sched_bio_key k = {};
    k.sector = args->sector;
    k.dev = args->dev;
    struct sched_bio_issue *v = sched_bios.lookup(&k);
    if (!v)
        return 0;  /* issued before the trace began */
    struct sched_bio *r = events.ringbuf_reserve(sizeof(*r));
    if (!r) {
        count_lost();
        sched_bios.delete(&k);
        return 0;
    }
    r->issue_ns = v->ts;
    r->end_ns = bpf_ktime_get_ns();
    r->type = EV_SCHED_BIO;
    r->tid = v->tid;
    r->pid = v->pid;
    r->dev = args->dev;
    r->sector = args->sector;
    r->bytes = v->bytes;
    r->error = args->error;
    __builtin_memcpy(r->comm, v->comm, sizeof(r->comm));
    bpf_probe_read_kernel(r->rwbs, sizeof(r->rwbs), args->rwbs);
    events.ringbuf_submit(r, RB_FLAGS);
    sched_bios.delete(&k);
    return 0;
}
#endif

/* fsync-family calls: entry time by tid, one record at exit. */
BPF_HASH(sched_sync_enter, u32, u64, 16384);

static __always_inline int sched_sync_begin(void)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u64 now = bpf_ktime_get_ns();
    sched_sync_enter.update(&tid, &now);
    return 0;
}

static __always_inline int sched_sync_end(void *ctx, u32 kind, long ret, s64 fd)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = (u32)id;
    u64 *t0 = sched_sync_enter.lookup(&tid);
    if (!t0)
        return 0;
    struct sched_sync *r = events.ringbuf_reserve(sizeof(*r));
    if (!r) {
        count_lost();
        sched_sync_enter.delete(&tid);
        return 0;
    }
    r->enter_ns = *t0;
    r->exit_ns = bpf_ktime_get_ns();
    r->type = EV_SCHED_SYNC;
    r->tid = tid;
    r->pid = id >> 32;
    r->kind = kind;
    r->ret = ret;
    r->fd = fd;
    r->stack_id = STACK_OF(ctx);
    r->_pad = 0;
    events.ringbuf_submit(r, RB_FLAGS);
    sched_sync_enter.delete(&tid);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_fsync) { return sched_sync_begin(); }
TRACEPOINT_PROBE(syscalls, sys_exit_fsync) { return sched_sync_end(args, SYNC_FSYNC, args->ret, -1); }
TRACEPOINT_PROBE(syscalls, sys_enter_fdatasync) { return sched_sync_begin(); }
TRACEPOINT_PROBE(syscalls, sys_exit_fdatasync)
{
    return sched_sync_end(args, SYNC_FDATASYNC, args->ret, -1);
}
#ifdef HAVE_SCHED_SYNC_FILE_RANGE
TRACEPOINT_PROBE(syscalls, sys_enter_sync_file_range) { return sched_sync_begin(); }
TRACEPOINT_PROBE(syscalls, sys_exit_sync_file_range)
{
    return sched_sync_end(args, SYNC_FILE_RANGE, args->ret, -1);
}
#endif
