"""Mail as it is sent: Jinja2 templates (a text and an HTML part) into an EmailMessage with a stable Message-ID."""
from __future__ import annotations

import hashlib
import re
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).parent / "templates"


@lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, trim_blocks=True,
                       lstrip_blocks=True, autoescape=select_autoescape(["html"]))


def render(template: str, /, **context: Any) -> tuple[str, str]:
    """The text and HTML parts of `template` (`template.txt` and `template.html`)."""
    env = environment()
    return env.get_template(f"{template}.txt").render(**context), env.get_template(f"{template}.html").render(**context)


def domain_of(mail_from: str) -> str:
    address = parseaddr(mail_from)[1]
    return address.rpartition("@")[2] or "livecart.invalid"


def message_id(job_id: str, mail_from: str) -> str:
    """One Message-ID per mail, the same at every attempt (derived from the outbox job id), so a
    receiver can recognise the copy that a crash right after the server's answer makes possible."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "-", job_id)[:80]
    digest = hashlib.sha256(job_id.encode()).hexdigest()[:12]
    return f"<{safe}.{digest}@{domain_of(mail_from)}>"


def build(mail: dict[str, Any], mail_from: str) -> EmailMessage:
    """An outbox mail (`to`, `subject`, `text`, `html`, `messageId`, `date`, `headers`) as a message."""
    message = EmailMessage()
    message["From"] = mail_from
    name, address = parseaddr(mail["to"])
    message["To"] = Address(display_name=name, addr_spec=address) if name else address
    message["Subject"] = mail["subject"]
    message["Message-ID"] = mail["messageId"]
    message["Date"] = formatdate(mail["date"] / 1000, localtime=False)
    for header, value in (mail.get("headers") or {}).items():
        message[header] = value
    message.set_content(mail["text"])
    message.add_alternative(mail["html"], subtype="html")
    return message


EMAIL = re.compile(r"^[^@\s<>\"]{1,64}@[^@\s<>\"]{1,253}\.[A-Za-z0-9-]{2,63}$")


def valid_email(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 254 and bool(EMAIL.match(value))
