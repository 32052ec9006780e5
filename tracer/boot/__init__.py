"""Boot-time tracing: a systemd unit that records k3s startup from early boot.

The unit (``k3sprof-boot.service``) is ``Type=notify`` and ordered ``Before=k3s.service
k3s-agent.service``: systemd holds k3s back until the recorder reports READY=1, which
`k3sprof record` sends only once its probes are live, so k3s never starts untraced. It is
ordering only (no ``Requires=`` anywhere): when the recorder fails or hangs, its start job
fails or times out (``TimeoutStartSec``) and k3s starts anyway; the failure is in the journal.

One module per job:

- :mod:`~tracer.boot.options`: what the unit is installed with (``BootOptions``, defaults);
- :mod:`~tracer.boot.unit`: the unit's text, install / uninstall / status;
- :mod:`~tracer.boot.runs`: run directories (``<seq>-<UTC time>-<boot id>``) and rotation;
- :mod:`~tracer.boot.supervise`: ``boot run`` (ExecStart): record, analyze and report, rotate.

The boot id and sd_notify come from :mod:`tracer.host`. The names below are the package's API
(the CLI and the tests use them from here).
"""

from tracer.boot.options import (
    DEFAULT_ATTACH_TIMEOUT_S,
    DEFAULT_KEEP,
    DEFAULT_OUTPUT_DIR,
    DEFAULT_TIMEOUT_S,
    BootOptions,
)
from tracer.boot.runs import (
    ANALYSIS_FILE,
    REPORT_FILE,
    RUN_FILE,
    RUN_NAME,
    TRACE_SUBDIR,
    RunInfo,
    ensure_output_dir,
    list_runs,
    new_run_dir,
    rotate,
    run_name,
)
from tracer.boot.supervise import RunResult, Step, run, tracer_argv
from tracer.boot.unit import (
    K3S_UNITS,
    UNIT_NAME,
    WANTED_BY,
    BootStatus,
    InstallResult,
    UninstallResult,
    default_exe,
    exec_line,
    install,
    options_from_argv,
    parse_exec_line,
    read_unit,
    render_unit,
    run_argv,
    status,
    uninstall,
    unit_path,
    wants_link,
    warm_bytecode_cache,
)

__all__ = [
    "ANALYSIS_FILE",
    "DEFAULT_ATTACH_TIMEOUT_S",
    "DEFAULT_KEEP",
    "DEFAULT_OUTPUT_DIR",
    "DEFAULT_TIMEOUT_S",
    "K3S_UNITS",
    "REPORT_FILE",
    "RUN_FILE",
    "RUN_NAME",
    "TRACE_SUBDIR",
    "UNIT_NAME",
    "WANTED_BY",
    "BootOptions",
    "BootStatus",
    "InstallResult",
    "RunInfo",
    "RunResult",
    "Step",
    "UninstallResult",
    "default_exe",
    "ensure_output_dir",
    "exec_line",
    "install",
    "list_runs",
    "new_run_dir",
    "options_from_argv",
    "parse_exec_line",
    "read_unit",
    "render_unit",
    "rotate",
    "run",
    "run_argv",
    "run_name",
    "status",
    "tracer_argv",
    "uninstall",
    "unit_path",
    "wants_link",
    "warm_bytecode_cache",
]
