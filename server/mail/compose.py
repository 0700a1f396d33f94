"""Mail as it is sent: Jinja2 templates (a text and an HTML part) into an EmailMessage with a stable Message-ID."""
from __future__ import annotations

import hashlib
import re
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).parent / "templates"


@lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, trim_blocks=True,
                       lstrip_blocks=True, autoescape=select_autoescape(["html"]), auto_reload=False)


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


def _address(value: str) -> str:
    name, address = parseaddr(value)
    return formataddr((str(Header(name, "utf-8")) if not name.isascii() else name, address)) if name else address


def build(mail: dict[str, Any], mail_from: str) -> Message:
    """An outbox mail (`to`, `subject`, `text`, `html`, `messageId`, `date`, `headers`) as a
    multipart/alternative message (text, then HTML). Built with the classic `email.mime` classes:
    the modern EmailMessage API spends several times longer folding headers, which a mailing of
    thousands feels."""
    message = MIMEMultipart("alternative")
    message["From"] = _address(mail_from)
    message["To"] = _address(mail["to"])
    message["Subject"] = Header(mail["subject"], "utf-8") if not mail["subject"].isascii() else mail["subject"]
    message["Message-ID"] = mail["messageId"]
    message["Date"] = formatdate(mail["date"] / 1000, localtime=False)
    for header, value in (mail.get("headers") or {}).items():
        message[header] = value
    message.attach(MIMEText(mail["text"], "plain", "utf-8"))
    message.attach(MIMEText(mail["html"], "html", "utf-8"))
    return message


EMAIL = re.compile(r"^[^@\s<>\"]{1,64}@[^@\s<>\"]{1,253}\.[A-Za-z0-9-]{2,63}$")


def valid_email(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 254 and bool(EMAIL.match(value))
