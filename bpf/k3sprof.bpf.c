/* k3sprof.bpf.c: the one compilation unit BCC builds. It declares the shared maps and
 * helpers, then includes one file per concern, each switched on by a -DPROBE_* flag so a
 * kernel that lacks a concern's tracepoints still records the others.
 *
 * BCC attaches every TRACEPOINT_PROBE(category, event) by name; the function name
 * tracepoint__<category>__<event> says exactly where each program hooks.
 */
#include <uapi/linux/ptrace.h>
#include "events.h"

/* The one ring buffer every program submits to (size in pages, a power of two). */
BPF_RINGBUF_OUTPUT(events, RB_PAGES);

/* Failed reservations per CPU: the collector sums them into meta.json "lost_events". */
BPF_PERCPU_ARRAY(lost_events, u64, 1);

static __always_inline void count_lost(void)
{
    int zero = 0;
    u64 *n = lost_events.lookup(&zero);
    if (n)
        (*n)++;
}

/* Fill the common header from the current task. Returns 0 when the event must be skipped
 * (the recorder's own activity: recording ourselves would feed back into the trace). */
static __always_inline int fill_hdr(struct event_hdr *h, u32 type)
{
    u64 id = bpf_get_current_pid_tgid();
    h->ts_ns = bpf_ktime_get_ns();
    h->cgroup_id = bpf_get_current_cgroup_id();
    h->type = type;
    h->pid = id >> 32;
    h->tid = (u32)id;
    h->uid = (u32)bpf_get_current_uid_gid();
    bpf_get_current_comm(&h->comm, sizeof(h->comm));
    return 1;
}

/* The recorder's own tgid, written by the collector right after loading: a map, not a
 * -D constant, so the compiled programs are the same for every recording and can be cached
 * (tracer/collector/bpfcache.py). */
BPF_ARRAY(self_tgid, u32, 1);

static __always_inline int is_self(void)
{
    int zero = 0;
    u32 *self = self_tgid.lookup(&zero);
    return self && *self != 0 && (bpf_get_current_pid_tgid() >> 32) == *self;
}

/* Stacks first: the other concerns call STACK_OF(ctx) to fill their records' stack_id. */
#ifdef PROBE_STACKS
#include <uapi/linux/bpf_perf_event.h>
#include "stacks.bpf.c"
#define STACK_OF(ctx) stack_of(ctx)
#else
#define STACK_OF(ctx) STACK_NOT_TAKEN
#endif

#ifdef PROBE_PROCESS
#include "process.bpf.c"
#endif
#ifdef PROBE_SOCKET
#include "socket.bpf.c"
#endif
#ifdef PROBE_MODULE
#include "module.bpf.c"
#endif
#ifdef PROBE_CGROUP
#include "cgroup.bpf.c"
#endif
#ifdef PROBE_SCHED
#include "sched.bpf.c"
#endif
