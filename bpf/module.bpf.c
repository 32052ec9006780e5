/* module.bpf.c: kernel module loads. k3s exec's `modprobe` for overlay, br_netfilter,
 * nf_conntrack, iptable_nat... and the kernel itself exec's modprobe (usermode helper,
 * parent kthreadd) when a mount/netfilter/netlink request needs a module.
 *
 * module:module_load/module_free exist only with CONFIG_MODULES (and the init_module /
 * finit_module syscall tracepoints too); the collector probes tracefs and passes
 * -DHAVE_MODULE_TP / -DHAVE_INIT_MODULE_SC. On a kernel without modules this file
 * compiles to nothing and the trace metadata says "unavailable" with the reason.
 */
#ifdef HAVE_INIT_MODULE_SC
static __always_inline int submit_module(void *ctx, u32 kind, long ret, u64 enter_ns)
{
    struct module_event *e = events.ringbuf_reserve(sizeof(*e));
    if (!e) {
        count_lost();
        return 0;
    }
    fill_hdr(&e->hdr, EV_MODULE);
    e->kind = kind;
    e->ret = ret;
    e->stack_id = STACK_OF(ctx);
    e->enter_ns = enter_ns;
    e->name[0] = 0;
    events.ringbuf_submit(e, RB_FLAGS);
    return 0;
}
#endif

#ifdef HAVE_MODULE_TP
TRACEPOINT_PROBE(module, module_load)
{
    struct module_event *e = events.ringbuf_reserve(sizeof(*e));
    if (!e) {
        count_lost();
        return 0;
    }
    fill_hdr(&e->hdr, EV_MODULE);
    e->kind = MOD_LOAD;
    e->enter_ns = 0;
    e->ret = 0;
    e->stack_id = STACK_NOT_TAKEN;  /* the load itself: its syscall's row has the stack */
    TP_DATA_LOC_READ_STR(e->name, name, sizeof(e->name));
    events.ringbuf_submit(e, RB_FLAGS);
    return 0;
}

TRACEPOINT_PROBE(module, module_free)
{
    struct module_event *e = events.ringbuf_reserve(sizeof(*e));
    if (!e) {
        count_lost();
        return 0;
    }
    fill_hdr(&e->hdr, EV_MODULE);
    e->kind = MOD_FREE;
    e->enter_ns = 0;
    e->ret = 0;
    e->stack_id = STACK_NOT_TAKEN;  /* the load itself: its syscall's row has the stack */
    TP_DATA_LOC_READ_STR(e->name, name, sizeof(e->name));
    events.ringbuf_submit(e, RB_FLAGS);
    return 0;
}
#endif

#ifdef HAVE_INIT_MODULE_SC
/* init_module(image, len, params) / finit_module(fd, params, flags): the module's name is
 * inside the image, not an argument; module_load (same task, just before the syscall
 * returns) names it. We record the syscall's duration and result. */
BPF_HASH(module_enter_ns, u32, u64, 1024);

static __always_inline int module_enter(void)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u64 now = bpf_ktime_get_ns();
    module_enter_ns.update(&tid, &now);
    return 0;
}

static __always_inline int module_exit(void *ctx, u32 kind, long ret)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u64 *t = module_enter_ns.lookup(&tid);
    u64 enter = t ? *t : 0;
    module_enter_ns.delete(&tid);
    return submit_module(ctx, kind, ret, enter);
}

TRACEPOINT_PROBE(syscalls, sys_enter_init_module) { return module_enter(); }
TRACEPOINT_PROBE(syscalls, sys_enter_finit_module) { return module_enter(); }

TRACEPOINT_PROBE(syscalls, sys_exit_init_module)
{
    return module_exit(args, MOD_INIT, args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_finit_module)
{
    return module_exit(args, MOD_FINIT, args->ret);
}
#endif
