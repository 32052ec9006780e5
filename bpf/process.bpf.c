/* process.bpf.c: process lifecycle. fork/clone, exec (argv + failures), exit (code/signal).
 *
 * Kernel semantics this relies on (verified on 6.18, see docs/platform.md):
 *  - task:task_newtask fires in copy_process() in the PARENT's context with the child's
 *    tid and the clone flags: CLONE_THREAD tells a thread from a process. (sched_process_fork
 *    cannot tell them apart without reading task structs.)
 *  - sched:sched_process_exec fires once the new image is committed; if a non-leader thread
 *    called execve, de_thread() has already made it the leader: args->pid is the tgid and
 *    args->old_pid the calling tid. The k3s wrapper's syscall.Exec into k3s-server is
 *    exactly that case (a multi-threaded Go process exec'ing in place).
 *  - argv lives in user memory and is only readable at sys_enter_execve.
 *  - sched_process_exit carries no exit code: we remember exit_group()'s argument and the
 *    last signal sent to the group, and report them when the group dies.
 */
#define CLONE_THREAD_FLAG 0x00010000

struct exit_info {
    s32 code;
    s32 signal;
    u32 flags;  /* 1: code valid, 2: signal valid */
};
/* tgid -> what we know about how it is ending. LRU: a group that never dies (or whose
 * exit we miss) cannot leak map space. */
BPF_TABLE("lru_hash", u32, struct exit_info, exit_infos, 16384);

TRACEPOINT_PROBE(task, task_newtask)
{
#ifdef PROBE_STACKS
    /* before is_self(): the recorder's fork of `record -- CMD` seeds the target tree */
    stacks_on_newtask(args->pid, args->clone_flags);
#endif
    if (is_self())
        return 0;
    struct fork_event *e = events.ringbuf_reserve(sizeof(*e));
    if (!e) {
        count_lost();
        return 0;
    }
    fill_hdr(&e->hdr, EV_FORK);
    e->clone_flags = args->clone_flags;
    e->child_tid = args->pid;
    e->stack_id = STACK_OF(args);
    events.ringbuf_submit(e, RB_FLAGS);
    return 0;
}

/* Both execve and execveat land here; filename/argv pointers are user memory. */
static __always_inline int on_exec_enter(const char *filename, const char *const *argv)
{
    if (is_self())
        return 0;
    struct exec_enter_event *e = events.ringbuf_reserve(sizeof(*e));
    if (!e) {
        count_lost();
        return 0;
    }
    fill_hdr(&e->hdr, EV_EXEC_ENTER);
    e->filename[0] = 0;
    bpf_probe_read_user_str(e->filename, sizeof(e->filename), filename);
    e->argc = 0;
    e->truncated = 0;
#pragma unroll
    for (int i = 0; i < MAX_ARGS; i++) {
        const char *arg = NULL;
        e->argv[i][0] = 0;
        if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) || !arg)
            goto done;
        bpf_probe_read_user_str(e->argv[i], ARG_LEN, arg);
        e->argc = i + 1;
    }
    {
        /* more arguments than we keep? say so instead of silently cutting */
        const char *more = NULL;
        bpf_probe_read_user(&more, sizeof(more), &argv[MAX_ARGS]);
        e->truncated = more != NULL;
    }
done:
    events.ringbuf_submit(e, RB_FLAGS);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_execve)
{
    return on_exec_enter(args->filename, args->argv);
}

static __always_inline int on_exec_exit(long ret)
{
    if (ret >= 0 || is_self())
        return 0;  /* success is reported by sched_process_exec */
    struct exec_fail_event *e = events.ringbuf_reserve(sizeof(*e));
    if (!e) {
        count_lost();
        return 0;
    }
    fill_hdr(&e->hdr, EV_EXEC_FAIL);
    e->ret = ret;
    events.ringbuf_submit(e, RB_FLAGS);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_execve)
{
    return on_exec_exit(args->ret);
}

#ifdef HAVE_EXECVEAT
TRACEPOINT_PROBE(syscalls, sys_enter_execveat)
{
    return on_exec_enter(args->filename, args->argv);
}

TRACEPOINT_PROBE(syscalls, sys_exit_execveat)
{
    return on_exec_exit(args->ret);
}
#endif

TRACEPOINT_PROBE(sched, sched_process_exec)
{
#ifdef PROBE_STACKS
    stacks_on_exec();
#endif
    if (is_self())
        return 0;
    struct exec_event *e = events.ringbuf_reserve(sizeof(*e));
    if (!e) {
        count_lost();
        return 0;
    }
    fill_hdr(&e->hdr, EV_EXEC);
    e->old_tid = args->old_pid;
    e->_pad = 0;
    e->filename[0] = 0;
    TP_DATA_LOC_READ_STR(e->filename, filename, sizeof(e->filename));
    events.ringbuf_submit(e, RB_FLAGS);
    /* a new image starts with a clean slate: an exit code remembered from before the exec
     * cannot belong to it (exit_group never returns, so there is none; but a signal may) */
    return 0;
}

#ifdef HAVE_EXIT_GROUP
TRACEPOINT_PROBE(syscalls, sys_enter_exit_group)
{
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    struct exit_info zero = {}, *info;
    info = exit_infos.lookup_or_try_init(&tgid, &zero);
    if (info) {
        info->code = (s32)args->error_code & 0xff;  /* what wait() will report */
        info->flags |= 1;
    }
    return 0;
}
#endif

#ifdef HAVE_SIGNAL_GENERATE
TRACEPOINT_PROBE(signal, signal_generate)
{
    /* Only signals whose default action terminates matter; result 0 = delivered/queued.
     * A handled SIGTERM (Go installs handlers) is followed by exit_group(), whose code
     * then wins: the signal is used only when the group dies without calling exit_group. */
    int sig = args->sig;
    if (args->result != 0 || sig == 17 /*SIGCHLD*/ || sig == 28 /*SIGWINCH*/ ||
        sig == 23 /*SIGURG: Go preemption*/ || sig == 18 /*SIGCONT*/ || sig == 19 /*SIGSTOP*/ ||
        sig == 20 /*SIGTSTP*/ || sig == 21 || sig == 22)
        return 0;
    u32 tgid = args->pid;
    struct exit_info zero = {}, *info;
    info = exit_infos.lookup_or_try_init(&tgid, &zero);
    if (info) {
        info->signal = sig;
        info->flags |= 2;
    }
    return 0;
}
#endif

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
#ifdef HAVE_EXIT_GROUP_DEAD
    if (!args->group_dead)
        return 0;  /* a thread, not the process */
#else
    if ((u32)id != tgid)
        return 0;  /* older kernels: the leader's exit stands for the process */
#endif
#ifdef PROBE_STACKS
    stacks_on_exit(tgid);
#endif
    if (is_self())
        return 0;
    struct exit_event *e = events.ringbuf_reserve(sizeof(*e));
    if (!e) {
        count_lost();
        exit_infos.delete(&tgid);
        return 0;
    }
    fill_hdr(&e->hdr, EV_EXIT);
    e->exit_code = 0;
    e->signal = 0;
    e->flags = 0;
    e->_pad = 0;
    struct exit_info *info = exit_infos.lookup(&tgid);
    if (info) {
        e->exit_code = info->code;
        e->signal = info->signal;
        e->flags = info->flags;
        exit_infos.delete(&tgid);
    }
    events.ringbuf_submit(e, RB_FLAGS);
    return 0;
}
