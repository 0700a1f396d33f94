"""Server settings: one dataclass, filled by the CLI from flags and `LIVECART_*` variables."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..crdt import Limits


@dataclass
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    jwt_secret: str = ""
    jwt_public_key: str = ""  # an identity provider's PEM public key (the CLI reads --jwt-public-key FILE)
    jwt_jwks_url: str = ""  # or its JWKS URL: keys fetched, cached, fetched again on an unknown kid
    jwt_issuer: str = ""  # checked on the provider's tokens when set
    jwt_audience: str = ""  # checked on the provider's tokens when set
    jwt_role_claim: str = "role"  # the provider's claim (or dotted path) that names the livecart role
    jwks_min_interval: float = 30.0  # at most one JWKS fetch per this many seconds
    jwks_timeout: float = 5.0  # a JWKS fetch taking longer fails (the cached keys stay)
    store: str = "sqlite"
    fsync: str = "everysec"  # the SQLite log: fsynced every second, or at every commit ("always")
    bus: str = "memory"
    limits: Limits = field(default_factory=Limits)
    max_message_bytes: int = 1024 * 1024
    max_messages_per_second: int = 100
    room_grace_seconds: float = 10.0  # a room stays loaded this long after its last client leaves
    compact_every: int = 500  # updates appended before the room folds them into a snapshot
    send_buffer_bytes: int = 4 << 20  # unsent bytes one slow cart reader may have before it is cut off
    max_inbox_bytes: int = 64 << 10  # what one cart socket may have sent and its room not taken, before it is not read
    max_edits_in_flight: int = 64  # cart socket frames inside rooms at once, per process; more wait (merged)
    hold_ttl_seconds: float = 15 * 60
    kiosk_idle_seconds: float = 120.0
    demo: bool = False
    shutdown_timeout: float = 10.0  # SIGTERM: seconds for open requests and sockets to finish before exit
    webhook_url: str = ""  # where events are POSTed; empty: webhooks off
    webhook_secret: str = ""  # HMAC key for X-Livecart-Signature (CLI: generated once in the data dir)
    webhook_retry_base: float = 0.5  # seconds before the first retry; doubles each time, at most 5 min
    webhook_max_age: float = 3 * 24 * 3600  # an event failing this long after it was made is dropped; 0: never
    abandoned_after: float = 30 * 60  # seconds without edits before a cart with holds is cart.abandoned
    smtp_url: str = ""  # smtp://host:port or smtps://…; empty: mail waits in the outbox
    mail_from: str = "livecart <shop@localhost>"
    public_url: str = ""  # base of links in mail; empty: http://host:port
    smtp_timeout: float = 30.0  # seconds for one message, connect to the answer after DATA
    mail_retry_base: float = 2.0  # seconds before a failed mail is retried; doubles each time, at most 5 min
    mail_max_age: float = 3 * 24 * 3600  # a mail failing this long after it was made is dropped; 0: never
    mailing_rate: float = 50.0  # mailing mails per second at most (0: as fast as the server takes them)
    mail_catcher: bool = False  # `livecart demo` without --smtp-url: a local SMTP catcher, shown on /admin
