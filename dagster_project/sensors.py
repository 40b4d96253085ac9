"""The run-failure sensor: says which sync failed, how many records and why, where people look.

Its message names the sync, the run, the counts (failed of planned, or the guard's numbers)
and the top failure reasons with their source keys. It goes to the sensor's log, and to an
alert channel when one is configured: the environment variable ``KIZEN_SYNC_ALERT_WEBHOOK``
holds a webhook URL (a Slack incoming webhook, or anything that accepts ``{"text": ...}`` as
JSON). The URL is a secret and is never logged. The failed run has
already recorded its outcome on the sync's asset (an observation with the open failures), so
the sensor adds no event of its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import httpx

from dagster_project.assets import SyncAssets
from kizen_sync.models import RunCounts

__all__ = ["ALERT_WEBHOOK_ENV", "build_failure_sensor", "failure_message", "send_alert"]

#: Environment variable holding the webhook URL failures are posted to (optional).
ALERT_WEBHOOK_ENV = "KIZEN_SYNC_ALERT_WEBHOOK"
_ALERT_TIMEOUT_S = 10.0


def _value(metadata: Mapping[str, Any], key: str) -> Any:
    entry = metadata.get(key)
    return getattr(entry, "value", entry)


def failure_message(sync: str, run_id: str, reason: str, metadata: Mapping[str, Any]) -> str:
    """One alert: which sync, which run, the counts or the guard's numbers, and the reasons."""
    lines = [f"kizen-sync: sync `{sync}` failed (run {run_id[:8]})."]
    failed, planned = _value(metadata, "failed"), _value(metadata, "planned")
    if failed is not None and planned is not None:
        counts = ", ".join(
            f"{name} {_value(metadata, name)}"
            for name in RunCounts.names()
            if name != "failed" and _value(metadata, name) is not None
        )
        lines.append(f"{failed} of {planned} records failed" + (f" ({counts})." if counts else "."))
    would, synced = _value(metadata, "would_archive"), _value(metadata, "synced")
    if would is not None and synced is not None:
        lines.append(f"Stopped by the mass-archive guard: {would} of {synced} would be archived.")
    lines.append(f"Why: {reason.strip()}")
    top = _value(metadata, "top_reasons")
    if top and "Top reasons" not in reason:
        lines.append(f"Top reasons:\n{top}")
    return "\n".join(lines)


def send_alert(url: str, text: str) -> None:
    """POST ``{"text": text}`` to a webhook; raises ``httpx.HTTPError`` when it refuses."""
    response = httpx.post(url, json={"text": text}, timeout=_ALERT_TIMEOUT_S)
    response.raise_for_status()


def _step_owners(all_assets: Sequence[SyncAssets]) -> dict[str, str]:
    """Step key -> sync name."""
    return {
        definition.op.name: assets.sync.name
        for assets in all_assets
        for definition in (assets.plan, assets.apply, assets.backfill)
    }


def build_failure_sensor(all_assets: Sequence[SyncAssets]) -> dg.SensorDefinition:
    """A run-failure sensor over every job of the code location (UI launches included)."""
    owners = _step_owners(all_assets)

    @dg.run_failure_sensor(
        name="kizen_sync_run_failures",
        description=(
            "Reports every failed kizen-sync run: which sync, how many records failed and "
            "why, with the top reasons, in the sensor log and, when the environment variable "
            f"{ALERT_WEBHOOK_ENV} holds a webhook URL (e.g. a Slack incoming webhook), as an "
            "alert. Running by default."
        ),
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def kizen_sync_run_failures(context: dg.RunFailureSensorContext) -> dg.SkipReason | None:
        run_id = context.dagster_run.run_id
        messages = []
        for event in context.get_step_failure_events():
            sync_name = owners.get(event.step_key or "")
            if sync_name is None:
                continue
            failure = event.step_failure_data
            user = failure.user_failure_data
            reason = (user.description if user else None) or (
                failure.error.message if failure.error else "unknown error"
            )
            messages.append(
                failure_message(sync_name, run_id, reason, user.metadata if user else {})
            )
        if not messages:
            return dg.SkipReason(f"run {run_id} failed outside any kizen-sync step")
        text = "\n\n".join(messages)
        context.log.error(text)
        url = os.environ.get(ALERT_WEBHOOK_ENV)
        if url:
            try:
                send_alert(url, text)
            except httpx.HTTPError as error:
                # The URL is a secret: name the variable, never the value.
                context.log.error(f"alert to ${ALERT_WEBHOOK_ENV} failed: {type(error).__name__}")
        return None

    return kizen_sync_run_failures
