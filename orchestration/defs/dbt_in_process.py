"""dbt in the pass's own process: dagster-dbt's invocation, fed by dbt's Python API.

dagster-dbt runs every dbt command as a subprocess and reads its JSON log lines. On PostgreSQL a
pass needs neither the second interpreter nor the log's JSON: the subprocess costs a Python start,
dbt's imports (most of which the pass process already holds) and the encoding and decoding of
every event, about 2 s of CPU of a small pass's ~15 (`make bench` shows the split). Here dbt runs
through `dbtRunner` in a thread of this process; each event of info level or above (what dbt's
stdout would carry) reaches dagster-dbt's `DbtCliInvocation` as the same dict its JSON line
parses to, so the assets, asset checks and their metadata are dagster-dbt's own, unchanged.

What the subprocess gave that this keeps:
- dbt's settings come as flags, never through this process's environment (dagster-dbt sets
  `DBT_TARGET_PATH` and the like in the subprocess's environment);
- one dbt at a time per process (dbt's event manager, flags and adapters are process-global):
  a second in-process invocation waits for the first;
- an interrupted run: the step stops reading and fails; the dbt thread is a daemon, so it ends
  with the process (`costwatch run` and the runs `dagster dev` launches each have their own), and
  PostgreSQL rolls back the statement it was running.
"""

import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation

# dbt's console carries these levels at its default (info); dagster-dbt reads nothing else.
FORWARDED_LEVELS = frozenset({"info", "warn", "error"})
_ONE_DBT = threading.Lock()
_DONE = object()


@dataclass
class InProcessDbt:
    """What DbtCliInvocation uses of its `subprocess.Popen`, for dbt running in a thread:
    `args`, `wait()`, `returncode` (0 success, 1 a node failed, 2 dbt itself failed: dbt's own
    exit codes), `send_signal` (not forwarded) and `stdout` (None: events come from `events`)."""

    args: list[str]
    events: "queue.SimpleQueue[Any]" = field(default_factory=queue.SimpleQueue)
    returncode: int | None = None
    stdout: None = None
    exception: BaseException | None = None
    drained: bool = False
    _thread: threading.Thread | None = None

    def start(self, dbt_args: Sequence[str]) -> None:
        self._thread = threading.Thread(
            target=self._invoke, args=(list(dbt_args),), name="dbt", daemon=True
        )
        self._thread.start()

    def _invoke(self, dbt_args: list[str]) -> None:
        # dbt's command line (~1 s of imports beyond what dagster-dbt holds): only when it runs,
        # never for loading the definitions (`dagster dev`, a Spark pass).
        from dbt.cli.main import dbtRunner
        from dbt_common.events.functions import msg_to_dict

        def forward(msg) -> None:
            if msg.info.level in FORWARDED_LEVELS:
                self.events.put(msg_to_dict(msg))

        try:
            with _ONE_DBT:
                result = dbtRunner(callbacks=[forward]).invoke(dbt_args)
            if result.exception is not None:
                self.exception = result.exception
                self.returncode = 2
            else:
                self.returncode = 0 if result.success else 1
        except BaseException as err:  # dbt's own failures come back in the result; this is ours
            self.exception = err
            self.returncode = 2
        finally:
            self.events.put(_DONE)

    def wait(self, timeout: float | None = None) -> int:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.returncode if self.returncode is not None else 2

    def send_signal(self, signum: int) -> None:
        """dbt in a thread cannot be signalled; the run's interruption stops the step instead."""


@dataclass
class InProcessDbtInvocation(DbtCliInvocation):
    """A DbtCliInvocation whose dbt runs in this process (`InProcessDbt` as its process)."""

    @classmethod
    def start(
        cls,
        args: Sequence[str],
        *,
        project_dir: Path,
        target_path: Path,
        manifest: Mapping[str, Any],
        **fields: Any,
    ) -> "InProcessDbtInvocation":
        # The flags the subprocess got through its environment (dagster-dbt's cli()).
        dbt_args = [
            *args,
            "--project-dir", str(project_dir),
            "--target-path", str(target_path),
            "--log-path", str(target_path),
            "--log-level", "none",  # the events reach the callback at every level
            "--no-send-anonymous-usage-stats",
        ]  # fmt: skip
        process = InProcessDbt(args=["dbt", *dbt_args])
        invocation = cls(
            process=process,  # type: ignore[arg-type]
            manifest=manifest,
            project_dir=project_dir,
            target_path=target_path,
            **fields,
        )
        process.start(dbt_args)
        return invocation

    def _stream_stdout(self) -> Iterator[str | dict[str, Any]]:
        process: InProcessDbt = self.process  # type: ignore[assignment]
        # dagster-dbt reads the stream again after it ended (is_successful): a closed pipe then.
        if process.drained:
            return
        while True:
            event = process.events.get()
            if event is _DONE:
                break
            if event["info"]["level"] == "error":
                self._error_messages.append(event["info"]["msg"])
            yield event
        process.drained = True
        process.wait()
        # dbt fires an error event for what fails once it has started; a usage error (or one of
        # this module's) comes back only as the exception.
        if process.exception is not None and not self._error_messages:
            self._error_messages.append(f"dbt: {process.exception}")
