"""The Dagster executor of the code location, chosen by configuration.

A sync run is two small steps (plan, then apply) whose work happens in the warehouse and in
Kizen, so a process per step costs more than the steps themselves: ``in_process`` is the
default. Isolation or more machines are one line away, and use Dagster's own executors:

=============  ========================================================================
``in_process``  every step of a run in the run's own process (Dagster's ``in_process_executor``)
``multiprocess``  a process per step (``multiprocess_executor``; ``max_concurrent``)
``celery``      steps as tasks on Celery workers (``dagster_celery.celery_executor``, extra
                ``celery``, which also logs pool waits: :mod:`.celery_executor`); broker and
                result backend from ``CELERY_BROKER_URL`` / ``CELERY_RESULT_BACKEND`` unless
                the file names them
``k8s``         a Kubernetes Job per step (``dagster_k8s.k8s_job_executor``, extra ``k8s``)
=============  ========================================================================

The choice is the sync file's ``executor.type``, else ``$KIZEN_SYNC_EXECUTOR``, else
``in_process`` (file, then environment, then default: the precedence of every other setting).
``executor.config`` is handed to the Dagster executor as is, so each executor's own options
stay available without kizen-sync mirroring them.
"""

import importlib
import os
from typing import Any

import dagster as dg

from kizen_sync.config import EXECUTOR_TYPES, ExecutorConfig
from kizen_sync.errors import ConfigError, ConfigProblem

__all__ = ["CELERY_BACKEND_ENV", "CELERY_BROKER_ENV", "EXECUTOR_ENV", "build_executor"]

EXECUTOR_ENV = "KIZEN_SYNC_EXECUTOR"
#: Celery's own names for the broker and the result backend, read by the run (which submits
#: the steps) and by the workers' ``deploy/dagster_celery_config.py`` alike.
CELERY_BROKER_ENV = "CELERY_BROKER_URL"
CELERY_BACKEND_ENV = "CELERY_RESULT_BACKEND"

#: executor type -> (module, attribute, extra that installs the module)
_EXECUTORS: dict[str, tuple[str, str, str | None]] = {
    "in_process": ("dagster", "in_process_executor", None),
    "multiprocess": ("dagster", "multiprocess_executor", None),
    "celery": ("dagster_project.celery_executor", "celery_executor", "celery"),
    "k8s": ("dagster_k8s", "k8s_job_executor", "k8s"),
}


def _executor_type(settings: ExecutorConfig) -> str:
    if settings.type is not None:
        return settings.type
    named = os.environ.get(EXECUTOR_ENV, "").strip()
    if not named:
        return "in_process"
    if named not in EXECUTOR_TYPES:
        raise ConfigError(
            [
                ConfigProblem(
                    EXECUTOR_ENV,
                    f"unknown executor {named!r} (use one of: {', '.join(EXECUTOR_TYPES)})",
                )
            ]
        )
    return named


def _load(kind: str) -> dg.ExecutorDefinition:
    module_name, attribute, extra = _EXECUTORS[kind]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        if extra is None or not (error.name or "").startswith(("dagster_celery", "dagster_k8s")):
            raise
        raise ConfigError(
            [
                ConfigProblem(
                    "executor.type",
                    f'executor {kind!r} needs the {extra} extra: pip install "kizen-sync[{extra}]"',
                )
            ]
        ) from None
    definition: dg.ExecutorDefinition = getattr(module, attribute)
    return definition


def _config(kind: str, settings: ExecutorConfig) -> dict[str, Any]:
    config = dict(settings.config)
    if settings.max_concurrent is not None:
        config["max_concurrent"] = settings.max_concurrent
    if kind == "celery":
        # From the environment at run time, so a password in the URL never enters the file
        # or the code location's definitions.
        for key, env in (("broker", CELERY_BROKER_ENV), ("backend", CELERY_BACKEND_ENV)):
            if key not in config and os.environ.get(env):
                config[key] = {"env": env}
    return config


def build_executor(settings: ExecutorConfig) -> dg.ExecutorDefinition:
    """The Dagster executor the sync file (or ``$KIZEN_SYNC_EXECUTOR``) chooses.

    Raises:
        ConfigError: an unknown executor name, an executor whose extra is not installed, or
            ``executor.config`` that the Dagster executor does not accept (naming the key).
    """
    kind = _executor_type(settings)
    definition = _load(kind)
    config = _config(kind, settings)
    if not config:
        return definition
    _validate(kind, definition, config)
    return definition.configured(config, name=definition.name)


@dg.op
def _noop() -> None:
    """The one op of the probe job that validates executor config."""


def _validate(kind: str, definition: dg.ExecutorDefinition, config: dict[str, Any]) -> None:
    """Check ``config`` against the executor's schema now, not when the first run launches.

    ``configured`` validates lazily, and Dagster's public validator works on a job: a one-op
    probe job carries the executor.
    """
    probe = dg.GraphDefinition(name="kizen_sync_executor_probe", node_defs=[_noop]).to_job(
        executor_def=definition
    )
    try:
        dg.validate_run_config(probe, {"execution": {"config": config}})
    except dg.DagsterInvalidConfigError as error:
        messages = [
            e.message.replace("root:execution:config", "executor.config") for e in error.errors
        ]
        raise ConfigError(
            [
                ConfigProblem("executor.config", f"not accepted by Dagster's {kind} executor: " + m)
                for m in messages
            ]
        ) from None
