"""The `livecart` command line: serve, demo, token. Every option has a LIVECART_* twin."""
from __future__ import annotations

import asyncio
import signal
import sys
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import click
from aiohttp import web

from ..crdt import Limits
from ..crdt.schema import MAX_LINES
from . import auth, logs, tokens, webhooks
from .config import Config
from .lock import data_dir_lock
from .store import is_embedded
from .store.sqlite import FSYNC_MODES

DEFAULTS = Config()


def _env(name: str) -> dict:
    return {"envvar": f"LIVECART_{name}", "show_envvar": True}


def server_options(fn):
    """The options `serve` and `demo` share."""
    options = [
        click.option("--host", default=DEFAULTS.host, show_default=True, help="Address to listen on.", **_env("HOST")),
        click.option("--port", default=DEFAULTS.port, show_default=True, type=int, help="Port to listen on.", **_env("PORT")),
        click.option("--data-dir", default=str(DEFAULTS.data_dir), show_default=True, type=click.Path(file_okay=False),
                     help="Where the embedded store and the generated JWT secret live.", **_env("DATA_DIR")),
        click.option("--jwt-secret", default="", help="HS256 secret for tokens [default: generated once, kept in the data dir].",
                     **_env("JWT_SECRET")),
        click.option("--jwt-public-key", default=None, type=click.Path(exists=True, dir_okay=False),
                     help="An identity provider's PEM public key (RSA, EC P-256, Ed25519): its RS256/ES256/EdDSA "
                          "tokens are accepted beside the server's own HS256 ones [default: off].",
                     **_env("JWT_PUBLIC_KEY")),
        click.option("--jwt-jwks-url", default="",
                     help="An identity provider's JWKS URL: keys fetched, cached, fetched again on an unknown kid "
                          "(at most every 30 s) [default: off].", **_env("JWT_JWKS_URL")),
        click.option("--jwt-issuer", default="", help="The provider's tokens must carry this `iss` [default: not checked].",
                     **_env("JWT_ISSUER")),
        click.option("--jwt-audience", default="", help="The provider's tokens must carry this `aud` [default: not checked].",
                     **_env("JWT_AUDIENCE")),
        click.option("--jwt-role-claim", default=DEFAULTS.jwt_role_claim, show_default=True,
                     help="The provider's claim naming the livecart role (a dotted path into objects works; "
                          "a list claim gives its first livecart role).", **_env("JWT_ROLE_CLAIM")),
        click.option("--store", default=DEFAULTS.store, show_default=True,
                     help="'sqlite' (a file in the data dir), sqlite:///path, redis://host:port/db or "
                          "redis+cluster://host:port,host:port (many processes share carts and stock).",
                     **_env("STORE")),
        click.option("--fsync", default=DEFAULTS.fsync, show_default=True, type=click.Choice(FSYNC_MODES),
                     help="SQLite store: 'everysec' fsyncs the log every second (a server crash loses "
                          "nothing, a power cut at most 1 s); 'always' fsyncs every commit (slower).",
                     **_env("FSYNC")),
        click.option("--bus", default=DEFAULTS.bus, show_default=True,
                     help="'memory' (one process), redis://host:port/db or redis+cluster://host:port,… "
                          "(processes relay to each other).",
                     **_env("BUS")),
        click.option("--hold-ttl", default=DEFAULTS.hold_ttl_seconds, show_default=True, type=float,
                     help="Seconds an unpaid hold keeps stock before it returns.", **_env("HOLD_TTL")),
        click.option("--kiosk-idle", default=DEFAULTS.kiosk_idle_seconds, show_default=True, type=float,
                     help="Seconds without edits or pings before a kiosk signs its customer out.",
                     **_env("KIOSK_IDLE")),
        click.option("--max-message-bytes", default=DEFAULTS.max_message_bytes, show_default=True, type=int,
                     help="Largest websocket frame; bigger ones close with 4413.", **_env("MAX_MESSAGE_BYTES")),
        click.option("--max-messages-per-second", default=DEFAULTS.max_messages_per_second, show_default=True,
                     type=int, help="Per connection; more closes with 4429.", **_env("MAX_MESSAGES_PER_SECOND")),
        click.option("--max-inbox-bytes", default=DEFAULTS.max_inbox_bytes, show_default=True,
                     type=click.IntRange(1024), help="Per cart socket: bytes it may have sent that its room has "
                     "not taken yet (waiting updates merge); past it the socket is not read until the room "
                     "catches up.", **_env("MAX_INBOX_BYTES")),
        click.option("--max-edits-in-flight", default=DEFAULTS.max_edits_in_flight, show_default=True,
                     type=click.IntRange(1), help="Per process: cart socket messages inside rooms at once; "
                     "more wait, merged per socket, so what is accepted keeps a bounded latency.",
                     **_env("MAX_EDITS_IN_FLIGHT")),
        click.option("--max-lines", default=Limits.max_lines, show_default=True, type=click.IntRange(1, MAX_LINES),
                     help="Lines per cart.", **_env("MAX_LINES")),
        click.option("--max-doc-bytes", default=Limits.max_doc_bytes, show_default=True, type=int,
                     help="Encoded size of one cart document.", **_env("MAX_DOC_BYTES")),
        click.option("--room-grace", default=DEFAULTS.room_grace_seconds, show_default=True, type=float,
                     help="Seconds a cart stays in memory after its last client leaves.", **_env("ROOM_GRACE")),
        click.option("--webhook-url", default="", help="POST order and cart events here [default: off].",
                     **_env("WEBHOOK_URL")),
        click.option("--webhook-secret", default="",
                     help="HMAC-SHA256 key for X-Livecart-Signature [default: generated once, kept in the data dir].",
                     **_env("WEBHOOK_SECRET")),
        click.option("--webhook-retry-base", default=DEFAULTS.webhook_retry_base, show_default=True, type=float,
                     help="Seconds before a failed webhook is retried; doubles each time, at most 5 min.",
                     **_env("WEBHOOK_RETRY_BASE")),
        click.option("--webhook-max-age", default=DEFAULTS.webhook_max_age, show_default=True, type=float,
                     help="Seconds a webhook is retried before it is dropped (0: forever).",
                     **_env("WEBHOOK_MAX_AGE")),
        click.option("--abandoned-after", default=DEFAULTS.abandoned_after, show_default=True, type=float,
                     help="Seconds without edits before a cart with holds sends cart.abandoned.",
                     **_env("ABANDONED_AFTER")),
        click.option("--smtp-url", default="", help="smtp://[user:pass@]host:port or smtps://… for order mail "
                     "and mailings [default: off, mail waits in the outbox; `demo` catches it locally].",
                     **_env("SMTP_URL")),
        click.option("--mail-from", default=DEFAULTS.mail_from, show_default=True, help="From: of every mail.",
                     **_env("MAIL_FROM")),
        click.option("--public-url", default="", help="Base of links in mail [default: http://HOST:PORT].",
                     **_env("PUBLIC_URL")),
        click.option("--smtp-timeout", default=DEFAULTS.smtp_timeout, show_default=True, type=float,
                     help="Seconds one mail may take (connect to the answer after DATA) before it is retried.",
                     **_env("SMTP_TIMEOUT")),
        click.option("--mail-retry-base", default=DEFAULTS.mail_retry_base, show_default=True, type=float,
                     help="Seconds before a failed mail is retried; doubles each time, at most 5 min.",
                     **_env("MAIL_RETRY_BASE")),
        click.option("--mailing-rate", default=DEFAULTS.mailing_rate, show_default=True, type=float,
                     help="Mailing mails sent per second at most (0: no limit).", **_env("MAILING_RATE")),
        click.option("--log-level", default="info", show_default=True,
                     type=click.Choice(["debug", "info", "warning", "error"]), **_env("LOG_LEVEL")),
        click.option("--log-format", default="text", show_default=True, type=click.Choice(logs.FORMATS),
                     help="'json': one JSON object per line (with the event's fields).", **_env("LOG_FORMAT")),
        click.option("--log-file", default=None, type=click.Path(dir_okay=False),
                     help="Append the log here; SIGHUP reopens it (for logrotate) [default: stderr].",
                     **_env("LOG_FILE")),
        click.option("--shutdown-timeout", default=DEFAULTS.shutdown_timeout, show_default=True, type=float,
                     help="SIGTERM: seconds open requests and sockets get to finish (sockets close with 1012).",
                     **_env("SHUTDOWN_TIMEOUT")),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def build_config(host: str, port: int, data_dir: str, jwt_secret: str, store: str, bus: str,
                 max_message_bytes: int, max_messages_per_second: int, max_lines: int,
                 max_doc_bytes: int, room_grace: float, hold_ttl: float, kiosk_idle: float,
                 webhook_url: str = "", webhook_secret: str = "",
                 webhook_retry_base: float = DEFAULTS.webhook_retry_base,
                 webhook_max_age: float = DEFAULTS.webhook_max_age,
                 abandoned_after: float = DEFAULTS.abandoned_after, fsync: str = DEFAULTS.fsync,
                 jwt_public_key: str | None = None, jwt_jwks_url: str = "", jwt_issuer: str = "", jwt_audience: str = "",
                 jwt_role_claim: str = DEFAULTS.jwt_role_claim,
                 shutdown_timeout: float = DEFAULTS.shutdown_timeout,
                 smtp_url: str = "", mail_from: str = DEFAULTS.mail_from, public_url: str = "",
                 mailing_rate: float = DEFAULTS.mailing_rate, smtp_timeout: float = DEFAULTS.smtp_timeout,
                 mail_retry_base: float = DEFAULTS.mail_retry_base, max_inbox_bytes: int = DEFAULTS.max_inbox_bytes,
                 max_edits_in_flight: int = DEFAULTS.max_edits_in_flight, **_: object) -> Config:
    directory = Path(data_dir)
    if bus.startswith("redis") and is_embedded(store):
        raise click.BadParameter(
            "a Redis bus joins processes that share carts: give them a shared --store redis://… too",
            param_hint="--bus")
    if webhook_url and not webhook_url.startswith(("http://", "https://")):
        raise click.BadParameter("an http:// or https:// URL", param_hint="--webhook-url")
    check_mail_options(smtp_url, mail_from, public_url, mailing_rate, smtp_timeout)
    if webhook_url and not webhook_secret:
        webhook_secret, path = webhooks.load_or_create_secret(directory)
        click.echo(f"webhooks are signed with the secret in {path}", err=True)
    public_key = Path(jwt_public_key).read_text() if jwt_public_key else ""
    if public_key:
        try:
            tokens.load_pem(public_key)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--jwt-public-key") from None
    if jwt_jwks_url and not jwt_jwks_url.startswith(("http://", "https://")):
        raise click.BadParameter("an http:// or https:// URL", param_hint="--jwt-jwks-url")
    return Config(
        host=host, port=port, data_dir=directory, jwt_public_key=public_key, jwt_jwks_url=jwt_jwks_url,
        jwt_issuer=jwt_issuer, jwt_audience=jwt_audience, jwt_role_claim=jwt_role_claim,
        shutdown_timeout=shutdown_timeout,
        jwt_secret=jwt_secret or auth.load_or_create_secret(directory),
        store=store, fsync=fsync, bus=bus, max_message_bytes=max_message_bytes,
        max_messages_per_second=max_messages_per_second, max_inbox_bytes=max_inbox_bytes,
        max_edits_in_flight=max_edits_in_flight,
        limits=replace(Limits(), max_lines=max_lines, max_doc_bytes=max_doc_bytes),
        room_grace_seconds=room_grace, hold_ttl_seconds=hold_ttl, kiosk_idle_seconds=kiosk_idle,
        webhook_url=webhook_url, webhook_secret=webhook_secret, webhook_retry_base=webhook_retry_base,
        webhook_max_age=webhook_max_age, abandoned_after=abandoned_after,
        smtp_url=smtp_url, mail_from=mail_from, public_url=public_url.rstrip("/"), mailing_rate=mailing_rate,
        smtp_timeout=smtp_timeout, mail_retry_base=mail_retry_base,
    )


def check_mail_options(smtp_url: str, mail_from: str, public_url: str, mailing_rate: float,
                       smtp_timeout: float = DEFAULTS.smtp_timeout) -> None:
    from email.utils import parseaddr

    from .mail.compose import valid_email
    from .mail.smtp import SmtpTarget

    if smtp_url:
        try:
            SmtpTarget.parse(smtp_url)
        except ValueError:
            raise click.BadParameter("smtp://host:port or smtps://host:port", param_hint="--smtp-url") from None
    if not valid_email(parseaddr(mail_from)[1]) and not parseaddr(mail_from)[1].endswith("@localhost"):
        raise click.BadParameter("an address, e.g. 'Shop <shop@example.com>'", param_hint="--mail-from")
    if public_url and not public_url.startswith(("http://", "https://")):
        raise click.BadParameter("an http:// or https:// URL", param_hint="--public-url")
    if mailing_rate < 0 or smtp_timeout <= 0:
        raise click.BadParameter("--mailing-rate is 0 or more, --smtp-timeout more than 0")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="livecart")
def main() -> None:
    """livecart: real-time collaborative shopping carts (Yjs over websockets)."""


@main.command()
@server_options
def serve(log_level: str, log_format: str, log_file: str | None, **options: object) -> None:
    """Run the server (embedded SQLite store under --data-dir by default)."""
    _run(build_config(**options), log_level, log_format, log_file)  # type: ignore[arg-type]


@main.command()
@server_options
def demo(log_level: str, log_format: str, log_file: str | None, **options: object) -> None:
    """Run the server with the demo catalog loaded."""
    config = build_config(**options)  # type: ignore[arg-type]
    config.demo = True
    config.mail_catcher = not config.smtp_url  # a local catcher: /admin shows the mail
    _run(config, log_level, log_format, log_file)


def _run(config: Config, log_level: str, log_format: str = "text", log_file: str | None = None) -> None:
    from .app import create_app

    logs.configure(log_level, log_format, log_file)
    with data_dir_lock(config.data_dir, "serve") if is_embedded(config.store) else nullcontext():
        click.echo(startup_message(config))
        app = create_app(config)
        app.on_startup.append(_reopen_logs_on_sighup)
        # SIGTERM/SIGINT: aiohttp stops accepting, runs on_shutdown (sockets close with 1012), gives
        # open handlers --shutdown-timeout, then the cleanup contexts commit and compact every room,
        # hand back leased webhooks and close the store; run_app then returns and the process exits 0.
        web.run_app(app, host=config.host, port=config.port, print=None, shutdown_timeout=config.shutdown_timeout,
                    access_log_class=logs.AccessLogger, access_log=logs.access)
        logs.event("server.stopped")


async def _reopen_logs_on_sighup(app: web.Application) -> None:
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, logs.reopen)


def startup_message(config: Config) -> str:
    """What a person starting the server needs next: where it listens, its pages, a staff token."""
    base = f"http://{config.host}:{config.port}"
    command = sys.argv[0] if Path(sys.argv[0]).name == "livecart" else "livecart"
    data_dir = "" if config.data_dir == DEFAULTS.data_dir else f" --data-dir {config.data_dir}"
    lines = [f"livecart listening on {base} (data in {config.data_dir})"]
    if config.demo:
        lines.append(f"  shop: {base}/   cart: {base}/cart")
        lines.append(f"  staff pages (add ?token=…): {base}/assistant  {base}/call-centre  "
                     f"{base}/kiosk/front-door  {base}/admin")
    lines.append(f"  API docs: {base}/api/docs   metrics: {base}/metrics   health: {base}/healthz")
    lines.append(f"  a staff token: {command} token --sub root --role admin{data_dir}")
    return "\n".join(lines)


@main.command()
@click.option("--sub", required=True, help="Subject: the customer or staff id.", **_env("TOKEN_SUB"))
@click.option("--role", required=True, type=click.Choice(auth.ROLES), **_env("TOKEN_ROLE"))
@click.option("--ttl", default=3600, show_default=True, type=int, help="Seconds until it expires.", **_env("TOKEN_TTL"))
@click.option("--data-dir", default=str(DEFAULTS.data_dir), show_default=True, type=click.Path(file_okay=False),
              help="Where the generated secret lives (same as `serve`).", **_env("DATA_DIR"))
@click.option("--jwt-secret", default="", help="HS256 secret [default: the one in the data dir].", **_env("JWT_SECRET"))
def token(sub: str, role: str, ttl: int, data_dir: str, jwt_secret: str) -> None:
    """Mint a development token (the host platform mints real ones)."""
    secret = jwt_secret or auth.load_or_create_secret(Path(data_dir))
    click.echo(auth.mint(secret, sub, role, ttl_seconds=ttl))


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data-dir", default=str(DEFAULTS.data_dir), show_default=True, type=click.Path(file_okay=False),
              help="The data dir of the (stopped) server to import into.", **_env("DATA_DIR"))
@click.option("--store", default=DEFAULTS.store, show_default=True, help="As for `serve`.", **_env("STORE"))
def import_(file: Path, data_dir: str, store: str) -> None:
    """Import a catalog and stock file (.csv or .jsonl): all rows or none.

    Columns / keys: sku, name, price (minor units), currency, maxQty, onHand,
    personalisation (JSON object of field specs).
    """
    # SIGTERM while the file is read stops cleanly with nothing imported; during the write (one transaction,
    # short) it waits for the write to finish: the import is then whole, never half.
    with _sigterm_noted() as stopped:
        _import_file(file, data_dir, store, stopped)


@contextmanager
def _sigterm_noted() -> Iterator[list[int]]:
    """SIGTERM is noted in the list instead of killing the process (the previous handler comes back after)."""
    stopped: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stopped.append(signum))
    try:
        yield stopped
    finally:
        signal.signal(signal.SIGTERM, previous)


def _import_file(file: Path, data_dir: str, store: str, stopped: list[int]) -> None:
    from tqdm import tqdm

    from .importer import BadRow, parse_row, read_rows, to_store

    total = sum(1 for _ in file.open(encoding="utf-8", errors="replace")) - (file.suffix.lower() == ".csv")
    rows, errors = [], []
    try:
        for number, data in tqdm(read_rows(file), total=max(total, 0), unit=" rows", desc="checking"):
            if stopped:
                raise click.ClickException("stopped by SIGTERM while checking the file; nothing was imported")
            try:
                rows.append(parse_row(number, data))
            except BadRow as bad:
                errors.append(bad)
    except BadRow as bad:
        errors.append(bad)
    if errors:
        for bad in errors[:50]:
            click.echo(f"{file}:{bad}", err=True)
        more = " (first 50 shown)" if len(errors) > 50 else ""
        raise click.ClickException(f"{len(errors)} bad row(s){more}; nothing was imported")
    products, on_hand = to_store(rows)
    if stopped:
        raise click.ClickException("stopped by SIGTERM; nothing was imported")
    asyncio.run(_import(Path(data_dir), store, products, on_hand))
    click.echo(f"imported {len(products)} products, stock for {len(on_hand)}"
               + (" (SIGTERM came during the write, which finished first)" if stopped else ""))


async def _import(data_dir: Path, store_url: str, products: dict, on_hand: dict) -> None:
    from .store import open_store

    with data_dir_lock(data_dir, "import") if is_embedded(store_url) else nullcontext():
        store = open_store(store_url, data_dir)
        await store.open()
        try:
            await store.import_catalog(products, on_hand)
        except ValueError as exc:
            raise click.ClickException(f"{exc}; nothing was imported") from None
        finally:
            await store.close()


if __name__ == "__main__":  # pragma: no cover
    main()


@main.command()
@click.option("--url", default=f"http://127.0.0.1:{DEFAULTS.port}", show_default=True,
              help="The running livecart to send through.", **_env("URL"))
@click.option("--subject", help="One line.", **_env("MAILING_SUBJECT"))
@click.option("--text", "text_file", type=click.File("r", encoding="utf-8"),
              help="File with the mail's text ('-': standard input).", **_env("MAILING_TEXT"))
@click.option("--bought", default="", help="Customers who bought any of these SKUs (comma-separated).",
              **_env("MAILING_BOUGHT"))
@click.option("--category", default="", help="… any SKU of this catalog category.", **_env("MAILING_CATEGORY"))
@click.option("--since", default="", help="… in a paid order since this date (2026-06-01).", **_env("MAILING_SINCE"))
@click.option("--q", default="", help="… whose name, e-mail or phone contains this.", **_env("MAILING_Q"))
@click.option("--watch", "watch_id", default="", help="Only follow the progress of this mailing id.",
              **_env("MAILING_WATCH"))
@click.option("--data-dir", default=str(DEFAULTS.data_dir), show_default=True, type=click.Path(file_okay=False),
              help="Where the generated secret lives (an admin token is minted from it).", **_env("DATA_DIR"))
@click.option("--jwt-secret", default="", help="HS256 secret [default: the one in the data dir].", **_env("JWT_SECRET"))
def mailing(url: str, subject: str | None, text_file, bought: str, category: str, since: str, q: str,  # noqa: ANN001
            watch_id: str, data_dir: str, jwt_secret: str) -> None:
    """Send a mailing to a customer segment (past buyers with marketing consent) and show its progress."""
    import json
    import time
    import urllib.error
    import urllib.request

    from tqdm import tqdm

    token = auth.mint(jwt_secret or auth.load_or_create_secret(Path(data_dir)), "livecart-cli", "admin",
                      ttl_seconds=24 * 3600)

    def call(method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(url.rstrip("/") + path, method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Authorization": f"Bearer {token}",
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read())["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = exc.reason
            raise click.ClickException(f"{exc.code}: {message}") from None
        except OSError as exc:
            raise click.ClickException(f"{url} is not reachable: {exc}") from None

    if not watch_id:
        if not subject or text_file is None:
            raise click.UsageError("--subject and --text are needed (or --watch ID)")
        segment = {k: v for k, v in {"bought": [s.strip() for s in bought.split(",") if s.strip()],
                                     "category": category, "since": since, "q": q}.items() if v}
        answer = call("POST", "/api/mailings", {"subject": subject, "text": text_file.read(), "segment": segment})
        watch_id = answer["mailingId"]
        click.echo(f"mailing {watch_id} to {answer['recipients']} customers")
    progress = call("GET", f"/api/mailings/{watch_id}")
    with tqdm(total=progress["total"], unit=" mails", desc="sending") as bar:
        while True:
            bar.update(progress["sent"] + progress["failed"] - bar.n)
            bar.set_postfix(failed=progress["failed"])
            if progress["status"] == "done":
                break
            time.sleep(0.5)
            progress = call("GET", f"/api/mailings/{watch_id}")
    click.echo(f"done: {progress['sent']} sent, {progress['failed']} failed")
