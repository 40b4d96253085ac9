"""``kizen-sync emulator``: serve the local Kizen API until Ctrl-C."""

from __future__ import annotations

import time
from pathlib import Path

import click

from kizen_sync.emulator.app import NO_ACCESS_KEY
from kizen_sync.emulator.emulator import DEMO_BUSINESS_PATH, Emulator
from kizen_sync.emulator.knobs import Knobs

__all__ = ["emulator"]


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8765, show_default=True, type=int, help="0 picks a free port.")
@click.option(
    "--business",
    "business_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Business JSON (default: the demo business).",
)
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite file that keeps records across restarts.",
)
@click.option("--latency-ms", type=float, default=0.0, show_default=True)
@click.option("--rate-limit", type=float, default=None, help="Requests per second (429 beyond).")
@click.option("--error-rate", type=float, default=0.0, show_default=True)
@click.option("--drop-rate", type=float, default=0.0, show_default=True)
@click.option("--seed", type=int, default=None, help="Seed of the fault generator.")
@click.option(
    "--strict",
    is_flag=True,
    help="Refuse every request shape the evidence does not confirm or document.",
)
@click.option(
    "--ignore-field",
    "ignored_fields",
    multiple=True,
    metavar="API_NAME",
    help="Accept writes to this field and drop them (repeatable): what `verify:` catches.",
)
@click.option("--api-key", default=None, help="Accepted API key (else $KIZEN_API_KEY, else demo).")
@click.option("--user-id", default=None, help="Accepted user id (else $KIZEN_USER_ID, else demo).")
@click.option(
    "--business-id",
    default=None,
    help="Accepted business id (else $KIZEN_BUSINESS_ID, else the file's).",
)
def emulator(
    host: str,
    port: int,
    business_file: Path | None,
    state_file: Path | None,
    latency_ms: float,
    rate_limit: float | None,
    error_rate: float,
    drop_rate: float,
    seed: int | None,
    strict: bool,
    ignored_fields: tuple[str, ...],
    api_key: str | None,
    user_id: str | None,
    business_id: str | None,
) -> None:
    """Run the local Kizen API emulator (prints the base URL and the credentials)."""
    try:
        knobs = Knobs().updated(
            {
                "latency_ms": latency_ms,
                "rate_limit_rps": rate_limit,
                "error_rate": error_rate,
                "drop_rate": drop_rate,
                "seed": seed,
                "strict": strict,
                "ignored_fields": ignored_fields,
            }
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    emu = Emulator.from_file(
        business_file or DEMO_BUSINESS_PATH,
        state_path=state_file,
        api_key=api_key,
        user_id=user_id,
        business_id=business_id,
        knobs=knobs,
    )
    key, user, business = emu.credentials
    shown_key = {"env": "from $KIZEN_API_KEY", "option": "as given by --api-key"}.get(
        emu.api_key_source, key
    )
    with emu.serve(host=host, port=port) as base_url:
        click.echo(f"Kizen emulator serving {base_url}")
        click.echo(
            f"  X-API-KEY:     {shown_key} (read-only key: {emu.readonly_key}; "
            f"valid but 403 everywhere: {NO_ACCESS_KEY})"
        )
        click.echo(f"  X-USER-ID:     {user}")
        click.echo(f"  X-BUSINESS-ID: {business}")
        click.echo(f"  knobs: {knobs.as_dict()}  (PATCH {base_url}/_emulator/knobs)")
        click.echo("Press Ctrl-C to stop.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            click.echo("stopping")
    emu.close()
