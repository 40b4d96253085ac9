"""The executor of the code location: chosen in the sync file or by $KIZEN_SYNC_EXECUTOR."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster_world import Project

from dagster_project.build import build_definitions
from dagster_project.executors import build_executor
from kizen_sync.config import ExecutorConfig, load_config
from kizen_sync.demo import write_sync_file
from kizen_sync.errors import ConfigError


def sync_file(tmp_path: Path, executor: dict[str, Any] | None) -> Path:
    path = write_sync_file(tmp_path, tmp_path / "warehouse.db")
    if executor is not None:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["executor"] = executor
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def executor_of(defs: dg.Definitions, job: str = "contacts_sync") -> dg.ExecutorDefinition:
    executor = defs.resolve_job_def(job).executor_def
    assert executor is not None
    return executor


def configured(executor: dg.ExecutorDefinition) -> dict[str, Any]:
    """The executor config a run gets (file values plus the executor's defaults)."""
    return executor.config_schema.resolve_config({}).value["config"]


def test_in_process_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIZEN_SYNC_EXECUTOR", raising=False)
    defs = build_definitions(sync_file(tmp_path, None))
    assert executor_of(defs).name == "in_process"
    assert executor_of(defs, "contacts_retry_failed").name == "in_process"


def test_the_environment_chooses_when_the_file_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIZEN_SYNC_EXECUTOR", "multiprocess")
    assert executor_of(build_definitions(sync_file(tmp_path, None))).name == "multiprocess"
    file = sync_file(tmp_path, {"type": "in_process"})
    assert executor_of(build_definitions(file)).name == "in_process"


def test_multiprocess_takes_max_concurrent(tmp_path: Path) -> None:
    file = sync_file(tmp_path, {"type": "multiprocess", "max_concurrent": 2})
    executor = executor_of(build_definitions(file))
    assert executor.name == "multiprocess"
    # What the run will be configured with: the file's value, nothing to type in the launchpad.
    assert configured(executor)["max_concurrent"] == 2


def test_celery_takes_broker_and_backend_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "pyamqp://guest:secret@127.0.0.1:5672//")
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/0")
    file = sync_file(tmp_path, {"type": "celery", "config": {"include": ["my_tasks"]}})
    executor = executor_of(build_definitions(file))
    assert executor.name == "celery"
    # Read from the environment when the run starts, not baked into the definitions when the
    # code location loads: a password in the URL is in no definition.
    monkeypatch.setenv("CELERY_BROKER_URL", "pyamqp://guest:rotated@127.0.0.1:5672//")
    config = configured(executor)
    assert config["broker"] == "pyamqp://guest:rotated@127.0.0.1:5672//"
    assert config["backend"] == "redis://127.0.0.1:6379/0"
    assert config["include"] == ["my_tasks"]


def test_k8s_loads_dagster_k8s(tmp_path: Path) -> None:
    file = sync_file(
        tmp_path, {"type": "k8s", "max_concurrent": 4, "config": {"job_namespace": "x"}}
    )
    assert executor_of(build_definitions(file)).name == "k8s"


@pytest.mark.parametrize(
    ("executor", "key", "words"),
    [
        ({"type": "warp"}, "executor.type", "'in_process', 'multiprocess', 'celery' or 'k8s'"),
        ({"type": "celery", "max_concurrent": 2}, "executor", "start more workers"),
        (
            {"type": "multiprocess", "config": {"max_concurent": 2}},
            "executor.config",
            "max_concurent",
        ),
        ({"type": "celery", "config": {"broker": 5}}, "executor.config", "broker"),
        ({"kind": "celery"}, "executor.kind", "Extra inputs are not permitted"),
    ],
)
def test_bad_executor_settings_name_the_key(
    tmp_path: Path, executor: dict[str, Any], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build_definitions(sync_file(tmp_path, executor))
    problems = {p.key: p.message for p in caught.value.problems}
    assert key in problems, problems
    assert words in problems[key]


def test_an_unknown_executor_in_the_environment_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIZEN_SYNC_EXECUTOR", "celery-ish")
    with pytest.raises(ConfigError) as caught:
        build_executor(ExecutorConfig())
    (problem,) = caught.value.problems
    assert problem.key == "KIZEN_SYNC_EXECUTOR"
    assert "celery-ish" in problem.message
    assert "in_process" in problem.message


def test_the_cli_ignores_the_executor_section(tmp_path: Path) -> None:
    config = load_config(sync_file(tmp_path, {"type": "celery"}))
    assert config.executor.type == "celery"


def _execute(project: Project, home: Path, executor: str) -> dg.DagsterRun:
    """``dagster job execute`` as a person would type it; the run as the instance holds it."""
    job = ["job", "execute", "-m", "dagster_project.definitions", "-j", "contacts_sync"]
    project.dagster(home, *job, KIZEN_SYNC_EXECUTOR=executor)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (record,) = instance.get_run_records()
        return record.dagster_run


def _messages(home: Path, run_id: str) -> list[str]:
    """The run's log as the UI shows it."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return [e.message or "" for e in instance.all_logs(run_id)]


@pytest.mark.parametrize("executor", ["in_process", "multiprocess"])
def test_a_run_uses_the_chosen_executor(project: Project, tmp_path: Path, executor: str) -> None:
    home = tmp_path / f"home-{executor}"
    home.mkdir()
    run = _execute(project, home, executor)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert len(project.emulator.records("client_client")) == 25
    messages = _messages(home, run.run_id)
    in_one_process = any(m.startswith("Executing steps in process") for m in messages)
    per_step = [m for m in messages if m.startswith("Launching subprocess for")]
    if executor == "in_process":
        assert in_one_process
        assert not per_step
    else:
        assert not in_one_process
        assert len(per_step) >= 2
