"""The dbt resource's start-up shortcuts stay true to what dagster-dbt would have computed."""

import inspect
import os
import re
import subprocess
import time

from dagster_dbt import DbtCliResource

from orchestration.core.config import Config
from orchestration.defs.dbt import prune_target_dirs
from orchestration.defs.project import DBT_EXECUTABLE, dbt_project
from orchestration.defs.resources import PassLockedDbtCliResource


def resource() -> PassLockedDbtCliResource:
    return PassLockedDbtCliResource(
        project_dir=dbt_project,
        dbt_executable=DBT_EXECUTABLE,
        settings=Config.load(database_url="postgresql://x@h/d"),
    )


def test_overrides_still_override_dagster_dbt():
    # An upgrade that renames these would silently bring back a `dbt --version` and an in-process
    # dbt import on every pass.
    for name in ("_cli_version", "_initialize_dbt_core_adapter"):
        assert hasattr(DbtCliResource, name), name
        assert name in vars(PassLockedDbtCliResource), name


def test_the_stdout_stream_the_pass_times_is_dagster_dbts():
    # orchestration/defs/dbt.py: record_startup wraps it to note dbt's start-up for make bench;
    # renamed, the wrapper would never be read and bench's dbt start-up lines would go missing.
    from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation

    assert callable(getattr(DbtCliInvocation, "_stream_stdout", None))
    assert "_stream_stdout" in inspect.getsource(DbtCliInvocation.stream_raw_events)


def test_cli_version_is_the_version_dbt_reports():
    reported = subprocess.run(
        [DBT_EXECUTABLE, "--version"], capture_output=True, text=True, check=True
    ).stdout
    core = re.search(r"installed:\s*(\d+\.\d+\.\d+)", reported) or re.search(
        r"(\d+\.\d+\.\d+)", reported
    )
    assert str(resource()._cli_version) == core.group(1)


def test_no_adapter_is_opened_in_process():
    assert resource()._initialize_dbt_core_adapter(["build"]) is None


def test_prune_target_dirs_keeps_the_newest_and_the_recent(tmp_path):

    now = time.time()
    for age_hours in range(30):
        folder = tmp_path / f"costwatch_dbt_assets-run{age_hours:02d}"
        folder.mkdir()
        (folder / "manifest.json").write_text("{}")
        os.utime(folder, (now - age_hours * 3600 - 60, now - age_hours * 3600 - 60))
    (tmp_path / "partial_parse.msgpack").write_text("x")  # not an invocation folder
    (tmp_path / "other-folder").mkdir()

    removed = prune_target_dirs(tmp_path, "costwatch_dbt_assets-", keep=5)

    left = sorted(p.name for p in tmp_path.iterdir())
    assert sorted(p.name for p in removed) == [
        f"costwatch_dbt_assets-run{h:02d}" for h in range(5, 30)
    ]
    kept = [f"costwatch_dbt_assets-run{h:02d}" for h in range(5)]
    assert left == sorted([*kept, "other-folder", "partial_parse.msgpack"])
    # A folder touched in the last hour is never removed, however many are newer.
    recent = tmp_path / "costwatch_dbt_assets-busy"
    recent.mkdir()
    removed_again = prune_target_dirs(tmp_path, "costwatch_dbt_assets-", keep=0)
    assert sorted(p.name for p in removed_again) == [
        f"costwatch_dbt_assets-run{h:02d}" for h in range(1, 5)
    ]
    assert recent.exists() and (tmp_path / "costwatch_dbt_assets-run00").exists()


def test_the_in_process_dbt_gives_what_dagster_dbt_reads_of_a_process():
    # dagster-dbt's invocation reads these of its subprocess; InProcessDbt stands in for it. An
    # upgrade that reads anything else would fail on the first pass: say so here instead.
    from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation

    from orchestration.defs.dbt_in_process import InProcessDbt

    used = set(re.findall(r"self\.process\.(\w+)", inspect.getsource(DbtCliInvocation)))
    assert used, "dagster-dbt no longer reads self.process: look again at dbt_in_process"
    missing = {name for name in used if not hasattr(InProcessDbt(args=["dbt"]), name)}
    assert not missing, missing


def test_dbt_runs_in_process_on_postgres_and_its_failure_is_dbts_exit_code(tmp_path):
    from orchestration.defs.dbt_in_process import InProcessDbtInvocation

    invocation = resource().cli(
        ["build", "--no-such-flag"],
        manifest=dbt_project.manifest_path,
        raise_on_error=False,
        target_path=tmp_path / "target",
    )
    assert isinstance(invocation, InProcessDbtInvocation)
    assert not invocation.is_successful()
    # dbt's own exit code for a usage error (2), one message naming it, and the stream, read
    # again as dagster-dbt does, ends at once.
    assert invocation.process.returncode == 2
    assert len(invocation._error_messages) == 1
    assert "no-such-flag" in invocation._error_messages[0]
    assert list(invocation._stream_stdout()) == []
    assert "--no-such-flag" in invocation.dbt_command


def test_dbt_stays_a_subprocess_on_spark(tmp_path):
    # dbt-spark's session target starts a JVM in dbt's process: it must end with the command.
    from orchestration.defs.dbt_in_process import InProcessDbtInvocation

    spark = PassLockedDbtCliResource(
        project_dir=dbt_project,
        dbt_executable=DBT_EXECUTABLE,
        settings=Config.load(
            {"COSTWATCH_ENGINE": "spark", "COSTWATCH_SPARK_RAW": "raw"},
            database_url="postgresql://x@h/d",
        ),
    )
    invocation = spark.cli(
        ["--version"], manifest=dbt_project.manifest_path, raise_on_error=False,
        target_path=tmp_path / "target",
    )  # fmt: skip
    assert not isinstance(invocation, InProcessDbtInvocation)
    assert invocation.process.wait() == 0
    # its stderr (on Spark the JVM's log) apart from the JSON lines dagster-dbt parses
    assert (tmp_path / "target" / "stderr.log").is_file()
