"""Tracking: open pixel and click redirect throughput, a signed 10,000-event webhook batch, and
that no hit is lost between the request and the database.

Kindling runs under gunicorn (2 workers, like the baseline) on a database of its own with real
sends (and their stored links, also put in Redis as the send step does at commit), so every
token is a real, signed one. wrk rotates over the
tokens of BENCH_TRACKING_SENDS sends (1,000) with a browser user agent.

* pixel `GET /t/o/<token>.gif` and click `GET /t/c/<token>` (302 to the stored URL): ratio of
  the bare Flask route returning the same GIF (`/pixel.gif` on the baseline app), same run;
  target ≥ 0.70 each.
* `POST /webhooks/sendgrid` with BENCH_WEBHOOK_EVENTS (10,000) events, ECDSA P-256 signed over
  timestamp + body exactly as SendGrid does; target: answered in under 2 s.
* After the load (server stopped), the real batch writer (`nurture.tracking.writer.flush`) runs
  until the Redis buffer is empty; the `email_opened` / `email_clicked` rows written from hits
  (dedupe key `t:<hit id>`) must be at least the requests wrk counted (a few more are fine:
  requests in flight when wrk stops are served but not counted by wrk).
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request

from bench.lib import Context, Row, gunicorn_server
from bench.scratch import Scratch, env_int, insert_select, load_leads, scratch_db

# Overridable so two runs on one machine (or another tool flushing Redis db 13) do not collide.
DB_NAME = os.environ.get("BENCH_TRACKING_DB", "kindling_bench_tracking")
REDIS_DB = env_int("BENCH_TRACKING_REDIS_DB", 13)

PIXEL_TARGET = 0.70
CLICK_TARGET = 0.70
WEBHOOK_TARGET_S = 2.0
BROWSER_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/126.0.0.0 Safari/537.36")
LINK_URL = "https://example.com/guide"


def _data(scratch: Scratch, sends: int) -> None:
    from bench.bench_nurture import _sequence
    from nurture.models import Enrollment, Send
    from nurture.tracking.models import SendLink

    load_leads(scratch, sends)
    _sequence(scratch, 1, "bench tracking")
    series = f"generate_series(1, {sends}) AS g"
    insert_select(scratch, Enrollment, {
        "id": "g", "lead_id": "g", "sequence_id": "1", "step_id": "NULL", "status": "'finished'",
        "source": "'bench'", "ended_at": "now()"}, series)
    insert_select(scratch, Send, {
        "id": "g", "enrollment_id": "g", "step_id": "1", "lead_id": "g", "status": "'sent'",
        "subject": "'Your guide'", "attempts": "1", "provider_message_id": "'bench' || g",
        "claimed_at": "now() - interval '1 day'", "sent_at": "now() - interval '1 day'"},
        series)
    insert_select(scratch, SendLink, {"send_id": "g", "index": "1", "url": f"'{LINK_URL}'"},
                  series, reset_id=False)


def _publish_links(app, sends: int) -> None:
    """What the send step does when a send's transaction commits (`links` puts each stored
    target in Redis for the click's hot path); these sends were inserted in SQL, so the bench
    does it itself. Without it every first click of a link reads the database once."""
    from nurture.tracking import links

    with app.app_context():
        for start in range(1, sends + 1, 1000):
            links.publish((i, 1, LINK_URL) for i in range(start, min(start + 1000, sends + 1)))


def _tokens(app, sends: int) -> tuple[list[str], list[str]]:
    from nurture.tracking import tokens

    with app.app_context():
        pixels = [f"/t/o/{tokens.open_token(i)}.gif" for i in range(1, sends + 1)]
        clicks = [f"/t/c/{tokens.click_token(i, 1)}" for i in range(1, sends + 1)]
    return pixels, clicks


def _rotating_script(paths: list[str]) -> str:
    table = ",\n".join(json.dumps(p) for p in paths)
    return f"""
local paths = {{
{table}
}}
local n = #paths
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % n) + 1], {{["User-Agent"] = "{BROWSER_UA}",
                                                 ["Accept"] = "image/*,*/*"}})
end
"""


class _Signer:
    """A key pair standing in for SendGrid's; the public half goes to the server's config."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self.private = ec.generate_private_key(ec.SECP256R1())
        der = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.public_key = base64.b64encode(der).decode()

    def headers(self, body: bytes) -> dict[str, str]:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        ts = str(int(time.time()))
        signature = self.private.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
                "X-Twilio-Email-Event-Webhook-Timestamp": ts,
                "Content-Type": "application/json"}


def _webhook_events(count: int, sends: int) -> list[dict]:
    now = int(time.time())
    kinds = ("delivered", "delivered", "delivered", "delivered", "open", "open", "open",
             "click", "click", "processed")
    events = []
    for i in range(count):
        send_id = i % sends + 1
        name = kinds[i % len(kinds)]
        event = {"email": f"lead{send_id}@example.com", "timestamp": now - 3600 + i % 3000,
                 "event": name, "sg_event_id": f"bench-{i:07d}",
                 "sg_message_id": f"bench{send_id}.filter0001.16648.5515E0B88.0",
                 "send_id": str(send_id), "enrollment_id": str(send_id),
                 "category": ["nurture"]}
        if name in ("open", "click"):
            event.update(useragent=BROWSER_UA, ip="203.0.113.7")
        if name == "click":
            event["url"] = LINK_URL
        events.append(event)
    return events


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float = 60) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _drain(app, scratch: Scratch, timeout: float = 300) -> tuple[int, float]:
    from nurture.tracking import buffer, writer

    conn = scratch.redis()
    handled = 0
    started = time.monotonic()
    with app.app_context():
        while conn.llen(buffer.KEY):
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"batch writer left {conn.llen(buffer.KEY)} hits after "
                                   f"{timeout:.0f} s")
            handled += writer.flush()
    return handled, time.monotonic() - started


def run(ctx: Context) -> list[Row]:
    sends = env_int("BENCH_TRACKING_SENDS", 1000)
    n_events = env_int("BENCH_WEBHOOK_EVENTS", 10_000)
    base = ctx.baseline_for("/pixel.gif")
    signer = _Signer()
    rows: list[Row] = []
    with scratch_db(ctx.tmp, DB_NAME, REDIS_DB,
                    {"SENDGRID_WEBHOOK_PUBLIC_KEY": signer.public_key}) as scratch:
        _data(scratch, sends)
        app = scratch.app()
        _publish_links(app, sends)
        pixels, clicks = _tokens(app, sends)
        events = _webhook_events(n_events, sends)
        body = json.dumps(events).encode()

        with gunicorn_server("wsgi:app", scratch.env, workers=2, ready_path="/t/v.js",
                             log_dir=ctx.tmp) as url:
            pixel = ctx.wrk(url + "/", script=_rotating_script(pixels))
            click = ctx.wrk(url + "/", script=_rotating_script(clicks))
            started = time.monotonic()
            status, answer = _post(url + "/webhooks/sendgrid", body, signer.headers(body))
            webhook_s = time.monotonic() - started

        ratio = pixel.requests_per_s / base.requests_per_s
        rows.append(Row("open pixel GET /t/o/<token>.gif (gunicorn 2 workers, PostgreSQL)",
                        f"≥ {PIXEL_TARGET:.2f}×", pixel.summary(), ratio,
                        ratio >= PIXEL_TARGET and not pixel.non_2xx_3xx
                        and not pixel.socket_errors))
        ratio = click.requests_per_s / base.requests_per_s
        rows.append(Row("tracked click GET /t/c/<token> → 302 (gunicorn 2 workers, PostgreSQL)",
                        f"≥ {CLICK_TARGET:.2f}×", click.summary(), ratio,
                        ratio >= CLICK_TARGET and not click.non_2xx_3xx
                        and not click.socket_errors))

        try:
            result = json.loads(answer)
        except ValueError:
            result = {}
        recorded = result.get("recorded", "?")
        ok = status == 200 and webhook_s < WEBHOOK_TARGET_S and result.get("received") == n_events
        rows.append(Row(f"SendGrid webhook: {n_events:,} signed events in one POST "
                        f"({len(body) / 1e6:.1f} MB)",
                        f"< {WEBHOOK_TARGET_S:.0f} s",
                        f"{webhook_s:.2f} s, HTTP {status}, {recorded} rows recorded "
                        f"({n_events / webhook_s:,.0f} events/s)",
                        webhook_s / WEBHOOK_TARGET_S, ok))

        handled, drain_s = _drain(app, scratch)
        from app.leads.event_types import code_of

        # The batch writer's own rows (the pixel's and the links'; not the webhook's, not the
        # opens a click implies).
        opened, clicked = (scratch.scalar(
            f"SELECT count(*) FROM events WHERE type = {code_of(name)} "
            f"AND data->>'source' = '{source}'")
            for name, source in (("email_opened", "pixel"), ("email_clicked", "link")))
        slack = ctx.connections  # requests in flight when wrk stopped
        ok = (pixel.requests <= opened <= pixel.requests + slack
              and click.requests <= clicked <= click.requests + slack)
        rows.append(Row("no hit lost: events stored after the batch writer drains Redis",
                        "= wrk requests (+ in flight)",
                        f"opens {opened:,} / {pixel.requests:,} requests, clicks {clicked:,} / "
                        f"{click.requests:,} requests",
                        (opened + clicked) / max(pixel.requests + click.requests, 1), ok))
        rows.append(Row("  batch writer: Redis buffer → classified events (in-process)", "—",
                        f"{handled:,} hits in {drain_s:.1f} s ({handled / max(drain_s, 1e-9):,.0f}"
                        " hits/s)", None, None))
    return rows
