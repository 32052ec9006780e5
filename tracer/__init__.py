"""k3sprof: an eBPF startup profiler for k3s."""

__version__ = "0.1.0"
