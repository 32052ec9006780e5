"""`k3sprof demo`: a real control-plane-style startup, recorded, analyzed and reported.

``supervisor`` is the recorded workload (real etcd, containerd, modprobe, iptables and CNI plugins,
wired the way k3s wires its own startup); ``run`` records it and turns the trace into a report.
"""
