/* stacks.bpf.c: user stacks of the recorded processes. On-CPU samples, and the stack of the
 * task at each event that explains a wait (fork/clone, connect, bind, listen, accept, the
 * fsync family, init_module/finit_module), so the analyzer can name WHICH PART of one Go
 * process (k3s: apiserver, kubelet, kine... are goroutines of one process) ran, spawned,
 * connected or synced.
 *
 * Built with -DPROBE_STACKS; included by k3sprof.bpf.c BEFORE the other concerns, which call
 * stack_of(ctx) (via the STACK_OF macro, which is "not taken" when stacks are off) to fill
 * the stack_id field of their records.
 *
 * How a stack is taken: bpf_get_stackid(ctx, map, BPF_F_USER_STACK) walks the user stack
 * by frame pointers (from the user registers the task entered the kernel with, when the
 * program runs in kernel context: a syscall tracepoint, or a sample that interrupted a
 * syscall), hashes the PCs, and stores them once in the BPF_STACK_TRACE map; records carry
 * only the id. Go keeps frame pointers on amd64 and arm64, so Go stacks are complete; code
 * without frame pointers (32-bit ARM Go, C inside cgo such as sqlite, -fomit-frame-pointer
 * C) yields a stack that stops after its first frame or wanders (docs/stacks.md).
 *
 * Errors are recorded, never dropped: a negative stack_id is get_stackid's errno (-EFAULT
 * the walk failed, -EEXIST the map bucket holds another stack: the map is a hash with one
 * stack per bucket, so a collision loses the newer stack), and the collector counts them
 * into meta.json. STACK_NOT_TAKEN marks a record of a task that is not a target.
 *
 * Cost: only TARGET processes are sampled or walked (one hash lookup by tgid decides);
 * a walk costs about 1-2 us.
 *
 * Targets (stack_targets, by tgid), maintained here in BPF so a short-lived child is a
 * target from its first instruction:
 *  - the process tree of `record -- CMD`: the recorder forks CMD from one thread while
 *    stack_seed_tid holds that thread's tid; task_newtask of that thread adds the child, and
 *    from then on every process a target forks is a target (threads share the tgid);
 *  - processes whose comm after exec is one of stack_comms (the active profile's
 *    executables: k3s, k3s-server, containerd, etcd...; written by the collector), added at
 *    sched_process_exec; processes already running at attach are added by the collector
 *    from /proc;
 *  - removed when the process exits (a reused pid is not a target by accident).
 *
 * Compile-time options: -DPROBE_STACKS; -DSTACK_MAP_ENTRIES=N (stack map size);
 * -DSTACK_SPILL_ENTRIES=N (the collision map's size, below).
 */
#ifndef STACK_MAP_ENTRIES
#define STACK_MAP_ENTRIES 16384
#endif
#ifndef STACK_SPILL_ENTRIES
#define STACK_SPILL_ENTRIES 4096
#endif

/* id -> up to 127 user PCs (the kernel's default perf_event_max_stack), innermost first.
 * Preallocated by the kernel: 16384 x ~1 KiB. Never deleted from during a recording: a
 * deleted id can be handed out again for a different stack while records that carry the
 * old meaning are still in flight, and the trace's contract is one id = one stack
 * (docs/stacks.md, "Why the stack map is never emptied"). */
BPF_STACK_TRACE(stack_traces, STACK_MAP_ENTRIES);

/* Where a stack goes when its bucket in stack_traces holds another one (get_stackid's
 * -EEXIST: one stack per bucket, so a recording with 1000 distinct stacks lost ~6 % of new
 * ones, and a CI run lost one poll attempt's stack in 104). The bucket is the stack's hash
 * masked by the map's size, so a stack that collided in stack_traces collides here only with
 * another stack that ALSO collided there with the same low bits: this map holds the few
 * spilled stacks, and is nearly empty. Its ids are handed out as STACK_MAP_ENTRIES + its own
 * id, so one id still names one stack (tracer/collector/stacks.py reads them back from here).
 * 4096 x ~1 KiB, preallocated. */
BPF_STACK_TRACE(stack_spill, STACK_SPILL_ENTRIES);
#define STACK_EEXIST (-17)  /* -EEXIST */

/* The current task's user stack: an id (>= STACK_MAP_ENTRIES: in stack_spill) or get_stackid's
 * negative errno (-EEXIST only when both maps' buckets were taken). A second walk costs one
 * more ~1-2 us, only on a collision. */
static __always_inline s32 stack_take(void *ctx)
{
    s32 id = stack_traces.get_stackid(ctx, BPF_F_USER_STACK);
    if (id != STACK_EEXIST)
        return id;
    s32 spilled = stack_spill.get_stackid(ctx, BPF_F_USER_STACK);
    return spilled >= 0 ? spilled + STACK_MAP_ENTRIES : spilled;
}

/* tgid -> why it is a target (STACK_WHY_*). */
#define STACK_WHY_TREE 1
#define STACK_WHY_EXE 2
BPF_HASH(stack_targets, u32, u8, 16384);

/* comm (zero-padded, as bpf_get_current_comm writes it) -> 1: the profile's executables. */
struct stack_comm {
    char comm[16];
};
BPF_HASH(stack_comms, struct stack_comm, u8, 64);

/* [0]: the recorder thread that is about to fork `record -- CMD` (0 otherwise). */
BPF_ARRAY(stack_seed_tid, u32, 1);

static __always_inline int stack_is_target(u32 tgid)
{
    return tgid != 0 && stack_targets.lookup(&tgid) != 0;
}

/* The current task's user stack id, a negative errno, or STACK_NOT_TAKEN when the task is
 * not a target. ctx: the program's context (tracepoint args / perf_event data). */
static __always_inline s32 stack_of(void *ctx)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!stack_is_target(tgid))
        return STACK_NOT_TAKEN;
    return stack_take(ctx);
}

/* task_newtask, in the creating task's context: a process forked by a target, or by the
 * recorder thread seeding `record -- CMD`, is a target. */
static __always_inline void stacks_on_newtask(u32 child_pid, u64 clone_flags)
{
    if (clone_flags & 0x00010000 /* CLONE_THREAD: same tgid, already decided */)
        return;
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    u8 why = STACK_WHY_TREE;
    if (stack_is_target(tgid)) {
        stack_targets.update(&child_pid, &why);
        return;
    }
    int zero = 0;
    u32 *seed = stack_seed_tid.lookup(&zero);
    if (seed && *seed != 0 && *seed == (u32)id)
        stack_targets.update(&child_pid, &why);
}

/* sched_process_exec: the new image's comm is set by now; a profile executable becomes a
 * target (whatever started it: systemd, containerd, a shell). */
static __always_inline void stacks_on_exec(void)
{
    struct stack_comm c = {};
    bpf_get_current_comm(&c.comm, sizeof(c.comm));
    if (!stack_comms.lookup(&c))
        return;
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    u8 why = STACK_WHY_EXE;
    stack_targets.update(&tgid, &why);
}

static __always_inline void stacks_on_exit(u32 tgid)
{
    stack_targets.delete(&tgid);
}

/* The on-CPU sampler: a perf event on the software CPU clock of every online CPU, at
 * --sample-hz (frequency mode: the kernel adjusts the period to hit the rate). Attached by
 * the collector (BCC attach_perf_event, or bpfcache.attach_perf_event from the cache), not
 * auto-attached: the function name says what it is, not where it hooks. It fires in
 * interrupt context on whatever task is running; the idle task (tgid 0) and non-targets
 * cost one lookup. */
int stacks__cpu_sample(struct bpf_perf_event_data *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    if (!stack_is_target(tgid))
        return 0;
    struct stack_sample *e = events.ringbuf_reserve(sizeof(*e));
    if (!e) {
        count_lost();
        return 0;
    }
    e->ts_ns = bpf_ktime_get_ns();
    e->pid = tgid;
    e->tid = (u32)id;
    e->type = EV_STACK_SAMPLE;
    e->stack_id = stack_take(ctx);
    e->cpu = bpf_get_smp_processor_id();
    e->_pad = 0;
    events.ringbuf_submit(e, RB_FLAGS);
    return 0;
}
