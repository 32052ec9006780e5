"""What `boot install` writes into the unit and `boot run` obeys: the options and their defaults."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tracer import conditions
from tracer._errors import UsageError

DEFAULT_OUTPUT_DIR = Path("/var/lib/k3sprof")
DEFAULT_TIMEOUT_S = 300
DEFAULT_KEEP = 5
#: TimeoutStartSec: how long k3s may be held back by an attach that hangs. BCC compiles and
#: attaches in about 1-1.5 s on a warm machine; a cold first boot of a small VM is far slower.
DEFAULT_ATTACH_TIMEOUT_S = 60


@dataclass(frozen=True)
class BootOptions:
    """What `boot install` writes into the unit and `boot run` obeys."""

    output_dir: Path = DEFAULT_OUTPUT_DIR
    #: the end condition: the recorder stops there (record --until) AND the analysis ends its
    #: critical path there (analyze --end); None: the timeout, and the profile's own end
    end: str | None = None
    timeout_s: int = DEFAULT_TIMEOUT_S
    keep: int = DEFAULT_KEEP
    attach_timeout_s: int = DEFAULT_ATTACH_TIMEOUT_S
    #: where the analysis starts its critical path (analyze --start); None: the profile's start
    start: str | None = None

    def validate(self) -> BootOptions:
        """Raise UsageError (one line) for a value the unit could not use."""
        for flag, cond in (("--end", self.end), ("--start", self.start)):
            if cond is not None:
                conditions.parse(cond)
                if "\n" in cond:
                    raise UsageError(f"{flag}: a condition cannot contain a newline")
        if self.timeout_s <= 0:
            raise UsageError(
                f"--timeout must be a positive number of seconds, not {self.timeout_s}"
            )
        if self.keep < 1:
            raise UsageError(f"--keep must be at least 1 (the run just recorded), not {self.keep}")
        if self.attach_timeout_s <= 0:
            raise UsageError(f"--attach-timeout must be positive, not {self.attach_timeout_s}")
        if not self.output_dir.is_absolute():
            raise UsageError(
                f"--output-dir must be an absolute path (the unit has no cwd): {self.output_dir}"
            )
        return self
