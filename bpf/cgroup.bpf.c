/* cgroup.bpf.c: cgroups born during the trace (systemd units and transient scopes, kubelet
 * pod slices, containerd task cgroups), so every event's cgroup_id can be named even when
 * the directory is gone by the time anyone looks. Cgroups that already exist are read from
 * /sys/fs/cgroup at attach. */
TRACEPOINT_PROBE(cgroup, cgroup_mkdir)
{
    /* Only the cgroup v2 (default) hierarchy, id 0: bpf_get_current_cgroup_id() returns v2
     * ids, and v1 hierarchies (hybrid hosts) reuse the same directory names. */
    if (args->root != 0)
        return 0;
    struct cgroup_event *e = events.ringbuf_reserve(sizeof(*e));
    if (!e) {
        count_lost();
        return 0;
    }
    fill_hdr(&e->hdr, EV_CGROUP);
    e->id = args->id;
    e->level = args->level;
    e->root = args->root;
    e->path[0] = 0;
    TP_DATA_LOC_READ_STR(e->path, path, sizeof(e->path));
    events.ringbuf_submit(e, RB_FLAGS);
    return 0;
}
