"""HTTP for mail: the order tracking page, one-click unsubscribe, mailings, the outboxes and the demo's caught mail."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import ApiError, json_body
from ..guard import ADMINS_ONLY, caller
from ..mail import segments
from ..mail.compose import environment
from ..mail.mailings import MAX_SUBJECT, MAX_TEXT, NoRecipients
from ..mail.orders import id_of, money, product_name, status_of
from ..mail.tokens import tracking_ok, unsubscriber
from ..openapi import COUNT, STRING, api, obj, param, string
from ..services import SERVICES

HTML = "text/html"
TRACKED = obj(("orderId", "status", "lines", "total", "history"), orderId=STRING, status=STRING,
              lines={"type": "array"}, total=STRING, history={"type": "array"},
              tracking={"type": ["object", "null"]})
PROGRESS = obj(("mailingId", "status", "total", "sent", "failed"), mailingId=STRING,
               status={"enum": ["sending", "done"]}, total=COUNT, sent=COUNT, failed=COUNT, queued=COUNT,
               subject=STRING, createdAt=COUNT)
SEGMENT = obj((), q=string(0, 200), category=string(0, 100),
              bought={"anyOf": [{"type": "array", "maxItems": 100, "items": string(1, 200)}, string(0, 199)],
                      "description": "SKUs, as a list or one comma-separated text"},
              since={"anyOf": [COUNT, string(format="date")], "description": "a date, or ms since 1970"})
SEGMENT["additionalProperties"] = False  # any other field: 400 bad_segment
LINE = "^[^\r\n]*\\S[^\r\n]*$"  # one line with something on it
TOKEN = {"t": param("the signed token from the mail", required=True)}


async def _tracked(request: web.Request) -> dict[str, Any]:
    """The order a tracking link is for, as the page shows it; 404 for any other token."""
    services = request.app[SERVICES]
    order_id = request.match_info["orderId"]
    if not tracking_ok(services.config.jwt_secret, order_id, request.query.get("t", "")):
        raise ApiError(404, "no_order", "no such order")
    order = await services.store.get_record("order", order_id)
    if order is None:
        raise ApiError(404, "no_order", "no such order")
    currency = str(order.get("currency") or "")
    return {"orderId": id_of(order), "status": status_of(order), "total": money(order.get("total"), currency),
            "lines": [{"sku": line.get("sku"), "name": product_name(services.catalog, line), "qty": line.get("qty"),
                       "total": money(line.get("total"), currency)} for line in order.get("lines", [])],
            "tracking": order.get("tracking") or None,
            "history": [{"status": h.get("status") or h.get("state"), "at": h.get("at")}
                        for h in order.get("history", [])]}


@api.add("GET", "/orders/{orderId}", "The order tracking page (live status, no sign-in; the link in order mail)",
         auth=None, query=TOKEN, errors=(404,), media=HTML, result=STRING)
async def tracking_page(request: web.Request) -> web.Response:
    order = await _tracked(request)
    view = {**order, "id": order["orderId"]}
    page = _env_page("tracking.html", order=view,
                     json_url=f"/api/orders/{order['orderId']}/tracking?t={request.query['t']}")
    return web.Response(text=page, content_type=HTML,
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def _env_page(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)


@api.add("GET", "/api/orders/{orderId}/tracking", "What the tracking page shows, as JSON (?t= from the mail)",
         auth=None, query=TOKEN, errors=(404,), result=TRACKED)
async def tracking(request: web.Request) -> web.Response:
    return web.json_response(await _tracked(request), headers={"Cache-Control": "no-store"})


def _unsubscriber(request: web.Request) -> str:
    customer_id = unsubscriber(request.app[SERVICES].config.jwt_secret, request.query.get("t", ""))
    if customer_id is None:
        raise ApiError(404, "bad_token", "this unsubscribe link is not valid")
    return customer_id


@api.add("GET", "/unsubscribe", "The unsubscribe page of a mailing's link: a button that POSTs", auth=None,
         query=TOKEN, errors=(404,), media=HTML, result=STRING)
async def unsubscribe_page(request: web.Request) -> web.Response:
    _unsubscriber(request)  # nothing changes on GET: mail scanners follow links
    text = ("<!doctype html><meta charset=utf-8><title>Unsubscribe</title>"
            "<form method=post><p>Stop marketing mail from livecart?</p>"
            "<button name=List-Unsubscribe value=One-Click>Unsubscribe</button></form>")
    return web.Response(text=text, content_type=HTML)


@api.add("POST", "/unsubscribe", "One-click unsubscribe (RFC 8058): ends the customer's marketing consent",
         auth=None, query=TOKEN, errors=(404,), media=HTML, result=STRING)
async def unsubscribe(request: web.Request) -> web.Response:
    customer_id = _unsubscriber(request)
    await segments.unsubscribe(request.app[SERVICES].index, customer_id)
    return web.Response(text="<!doctype html><meta charset=utf-8><title>Unsubscribed</title>"
                             "<p>You are unsubscribed: no more marketing mail.</p>", content_type=HTML)


@api.add("POST", "/api/mailings", "Mail a customer segment (those with marketing consent and an email)",
         auth=ADMINS_ONLY, ok=202, errors=(400,),
         body=obj(("subject", "text"), subject=string(1, MAX_SUBJECT, pattern=LINE), text=string(1, MAX_TEXT, pattern="\\S"),
                  segment=SEGMENT),
         result=obj(("mailingId", "recipients"), mailingId=STRING, recipients=COUNT))
async def create_mailing(request: web.Request) -> web.Response:
    who = caller(request)
    body = await json_body(request)
    subject, text = body.get("subject"), body.get("text")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > MAX_SUBJECT or {"\r", "\n"} & set(subject):
        raise ApiError(400, "bad_subject", f"subject is one line of 1..{MAX_SUBJECT} characters")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        raise ApiError(400, "bad_text", f"text is 1..{MAX_TEXT} characters")
    try:
        segment = segments.parse(body.get("segment"))
    except segments.BadSegment as exc:
        raise ApiError(400, "bad_segment", str(exc)) from None
    services = request.app[SERVICES]
    recipients = await segments.select(services.index, segment)
    try:
        mailing = await services.mailings.create(subject.strip(), text, segment, recipients, who.sub)
    except NoRecipients as exc:
        raise ApiError(400, "no_recipients", str(exc)) from None
    return web.json_response({"mailingId": mailing["id"], "recipients": mailing["total"]}, status=202)


@api.add("GET", "/api/mailings", "Mailings, newest first", auth=ADMINS_ONLY,
         result=obj(("mailings",), mailings={"type": "array"}))
async def list_mailings(request: web.Request) -> web.Response:
    return web.json_response({"mailings": await request.app[SERVICES].mailings.list()})


@api.add("GET", "/api/mailings/{mailingId}", "A mailing's progress", auth=ADMINS_ONLY, errors=(404,),
         result=PROGRESS)
async def mailing_progress(request: web.Request) -> web.Response:
    progress = await request.app[SERVICES].mailings.progress(request.match_info["mailingId"])
    if progress is None:
        raise ApiError(404, "no_mailing", "no such mailing")
    return web.json_response(progress)


@api.add("GET", "/api/mail/outbox", "Mail waiting to be sent and mail given up on, per outbox", auth=ADMINS_ONLY,
         result=obj(("orders", "mailings"), orders={"type": "object"}, mailings={"type": "object"}))
async def mail_outbox(request: web.Request) -> web.Response:
    return web.json_response(await request.app[SERVICES].mail.outboxes())


@api.add("GET", "/api/mail/caught", "Mail the demo's local mail catcher caught, newest first", auth=ADMINS_ONLY,
         result=obj(("catcher", "mails"), catcher={"type": "boolean"}, mails={"type": "array"}))
async def caught_mail(request: web.Request) -> web.Response:
    catcher = request.app[SERVICES].mail.catcher
    mails = list(reversed(catcher.mails)) if catcher is not None else []
    return web.json_response({"catcher": catcher is not None, "mails": mails})

