"""SSRF (issue 15, finding 4): outgoing requests to user-given URLs never reach loopback,
link-local, private, multicast, reserved or unspecified addresses — checked when the URL is
saved and again, after DNS, when the connection is made; no redirect is followed and no
response body is shown. `OUTBOUND_ALLOWED_NETWORKS` lets an operator allow ranges."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from app import netguard
from app.db import db
from app.webhooks import delivery, listeners
from app.webhooks.models import EndpointDelivery, WebhookEndpoint
from app.webhooks.signing import new_secret
from tests.app.sales.helpers import make_lead, make_mql
from tests.helpers import csrf_from
from tests.security.support import SECRET_BODY, Recorder

PUBLIC_V4, PUBLIC_V6 = "93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"

SSRF_TARGETS = [
    "http://127.0.0.1/", "http://127.8.9.1:8080/admin", "http://localhost:6379/",
    "http://[::1]/", "http://0.0.0.0/", "http://[::]/",
    "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/",
    "http://10.0.0.5/", "http://172.16.3.4/", "http://192.168.1.1/", "http://100.64.0.1/",
    "http://[fc00::1]/", "http://[fd12:3456::1]/", "http://[fec0::1]/",
    "http://224.0.0.1/", "http://[ff02::1]/", "http://240.0.0.1/", "http://255.255.255.255/",
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:a9fe:a9fe]/", "http://[::ffff:10.0.0.1]/",
    "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::]/", "http://[2001::80ff:fffe]/",
    "http://2130706433/", "http://0x7f000001/", "http://127.1/", "http://0177.0.0.1/",
    "https://internal.acme.example/hook", "https://mixed.acme.example/hook",
]


@pytest.fixture
def named(dns):
    dns["internal.acme.example"] = ["10.1.2.3"]
    dns["mixed.acme.example"] = [PUBLIC_V4, "127.0.0.1"]  # one bad answer spoils the name
    dns["crm.acme.example"] = [PUBLIC_V4, PUBLIC_V6]
    return dns


@pytest.mark.parametrize("url", SSRF_TARGETS)
def test_private_targets_are_refused_at_save_time(app, named, url):
    with pytest.raises(netguard.BlockedURL) as refused:
        netguard.check_url(url)
    assert "not allowed" in str(refused.value) or "not a public" in str(refused.value)


@pytest.mark.parametrize("url", ["https://crm.acme.example/hook", f"http://{PUBLIC_V4}:8080/x",
                                 f"https://[{PUBLIC_V6}]/hook"])
def test_public_targets_pass(app, named, url):
    netguard.check_url(url)


@pytest.mark.parametrize("url, words", [
    ("ftp://crm.acme.example/hook", "http"), ("javascript:alert(1)", "http"),
    ("http:///nohost", "host"), ("https://nobody.acme.example/hook", "could not be found"),
    (f"https://user:pw@{PUBLIC_V4}/hook", "credentials"), ("https://crm.acme.example:99999/", "port"),
])
def test_malformed_urls_get_a_clear_error(app, named, url, words):
    with pytest.raises(netguard.BlockedURL, match=words):
        netguard.check_url(url)


def test_operator_allow_list(app, named):
    app.config["OUTBOUND_ALLOWED_NETWORKS"] = "10.0.0.0/8, fd00::/8"
    netguard.check_url("https://internal.acme.example/hook")
    netguard.check_url("http://[fd12:3456::1]/")
    with pytest.raises(netguard.BlockedURL):
        netguard.check_url("http://127.0.0.1/")


def test_a_bad_allow_list_stops_the_app(make_app, app_config):
    from app.config import ConfigError

    with pytest.raises(ConfigError, match="OUTBOUND_ALLOWED_NETWORKS"):
        make_app({**app_config, "OUTBOUND_ALLOWED_NETWORKS": "10.0.0.0/8,not-a-net"})


def test_connect_time_refuses_loopback(app, recorder):
    with pytest.raises(netguard.BlockedURL):
        netguard.post(recorder.url, b"{}", {"Content-Type": "application/json"}, timeout=2)
    assert recorder.hits == []


def test_dns_rebinding_is_caught_at_connect_time(app, dns, recorder):
    name = "crm.acme.example"
    dns[name] = [PUBLIC_V4]
    url = f"http://{name}:{recorder.port}/hook"
    netguard.check_url(url)  # fine when saved
    dns[name] = ["127.0.0.1"]  # then the name points inside
    with pytest.raises(netguard.BlockedURL):
        netguard.post(url, b"{}", {}, timeout=2)
    assert recorder.hits == []


def test_the_checked_address_is_the_one_connected_to(app, dns, recorder):
    """With loopback allowed, a made-up name reaches the recorder only because the vetted
    address is pinned (there is no DNS here), and the Host header keeps the name."""
    app.config["OUTBOUND_ALLOWED_NETWORKS"] = "127.0.0.0/8"
    dns["crm.acme.example"] = ["127.0.0.1"]
    reply = netguard.post(f"http://crm.acme.example:{recorder.port}/hook", b'{"a":1}',
                          {"Content-Type": "application/json"}, timeout=2)
    assert reply.status == 200
    ((method, path, headers),) = recorder.hits
    assert (method, path, headers["Host"]) == ("POST", "/hook",
                                                f"crm.acme.example:{recorder.port}")
    assert SECRET_BODY not in repr(reply)


def test_redirects_are_not_followed(app, recorder):
    app.config["OUTBOUND_ALLOWED_NETWORKS"] = "127.0.0.0/8"
    bouncer = Recorder(status=307, location=recorder.url)
    try:
        reply = netguard.post(bouncer.url, b"{}", {}, timeout=2)
    finally:
        bouncer.stop()
    assert reply.status == 307 and len(bouncer.hits) == 1
    assert recorder.hits == []


def test_a_receiver_answering_a_byte_at_a_time_is_cut_off_at_the_timeout(app):
    """Each byte comes well within the read timeout, so only a deadline for the whole answer
    keeps a slow receiver from holding the worker (and every job queued behind it)."""
    app.config["OUTBOUND_ALLOWED_NETWORKS"] = "127.0.0.0/8"
    dripper = Recorder(drip=0.2)
    started = time.monotonic()
    try:
        with pytest.raises(netguard.OutboundError, match="no answer within 1 s"):
            netguard.post(dripper.url, b"{}", {}, timeout=1)
    finally:
        dripper.stop()
    assert time.monotonic() - started < 2
    assert len(dripper.hits) == 1


# Webhook subscriptions (the CRM's included), end to end ------------------------------------

def _save_url(client, url: str):
    token = csrf_from(client.get("/admin/webhooks/").get_data(as_text=True))
    return client.post("/admin/webhooks/", data={
        "csrf_token": token, "url": url, "event_types": ["lead.stage_changed"], "active": "y"})


def _subscribe(url: str) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(url=url, description="CRM", event_types=["lead.stage_changed"],
                               secret=new_secret(), active=True)  # stored before the check
    db.session.add(endpoint)
    db.session.commit()
    return endpoint


def _deliver_stage_change(lead_email: str = "ann@acme.example.com") -> EndpointDelivery:
    change = make_mql(make_lead(lead_email))
    listeners.on_stage_change(change.id)
    row = db.session.scalars(sa.select(EndpointDelivery).order_by(EndpointDelivery.id.desc())
                             ).first()
    assert row is not None
    delivery.deliver(row.id)
    db.session.refresh(row)
    return row


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/",
                                 "http://127.0.0.1:6379/", "https://internal.acme.example/hook"])
def test_the_webhooks_page_refuses_a_private_url(app, client, auth, named, url):
    auth.login_as("admin")
    response = _save_url(client, url)
    assert response.status_code == 400
    assert "not allowed" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookEndpoint)) == 0


def test_the_webhooks_page_takes_a_public_url(app, client, auth, named):
    auth.login_as("admin")
    assert _save_url(client, "https://crm.acme.example/hook").status_code == 302
    assert db.session.scalar(sa.select(WebhookEndpoint.url)) == "https://crm.acme.example/hook"


def test_a_stored_loopback_url_is_never_posted_to(app, recorder, client, auth):
    _subscribe(recorder.url)
    row = _deliver_stage_change()
    assert recorder.hits == []
    assert row.status == "retrying" and "not allowed" in (row.last_error or "")


def test_no_response_body_or_redirect_reaches_the_webhooks_page(app, recorder, client, auth):
    app.config["OUTBOUND_ALLOWED_NETWORKS"] = "127.0.0.1/32"
    bouncer = Recorder(status=302, location=recorder.url)
    failing = Recorder(status=500)
    try:
        for target in (bouncer, failing):
            endpoint = _subscribe(target.url)
            row = _deliver_stage_change(f"lead{target.port}@acme.example.com")
            assert row.status == "retrying"
            endpoint.active = False
            db.session.commit()
    finally:
        bouncer.stop()
        failing.stop()
    assert recorder.hits == []  # the redirect was not followed
    auth.login_as("admin")
    pages = "".join(client.get(f"/admin/webhooks/{e}").get_data(as_text=True)
                    for e in db.session.scalars(sa.select(WebhookEndpoint.id)))
    assert "302" in pages and "500" in pages
    assert SECRET_BODY not in pages


def _serve_tls(server: Recorder, tmp_path) -> Path:
    """Make `server` answer over TLS with a new self-signed certificate for crm.acme.example;
    returns the certificate's file."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=crm.acme.example", "-addext",
                    "subjectAltName=DNS:crm.acme.example", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.server.socket = context.wrap_socket(server.server.socket, server_side=True)
    return cert


def test_tls_is_verified_for_the_urls_host_while_the_address_is_pinned(app, dns, tmp_path):
    """Connecting to the vetted IP keeps certificate checking on: a certificate no CA vouches
    for is refused before any request is sent."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    server = Recorder()
    _serve_tls(server, tmp_path)
    app.config["OUTBOUND_ALLOWED_NETWORKS"] = "127.0.0.0/8"
    dns["crm.acme.example"] = ["127.0.0.1"]
    try:
        with pytest.raises(netguard.OutboundError, match="TLS"):
            netguard.post(f"https://crm.acme.example:{server.port}/hook", b"{}", {}, timeout=5)
    finally:
        server.stop()
    assert server.hits == []


def test_a_tls_receiver_answering_a_byte_at_a_time_is_cut_off_too(app, dns, tmp_path,
                                                                   monkeypatch):
    """The deadline cuts a TLS connection as it does a plain one, and says so (not a failed
    handshake). The test's own CA is trusted through OpenSSL's SSL_CERT_FILE."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    dripper = Recorder(drip=0.2)
    monkeypatch.setenv("SSL_CERT_FILE", str(_serve_tls(dripper, tmp_path)))
    app.config["OUTBOUND_ALLOWED_NETWORKS"] = "127.0.0.0/8"
    dns["crm.acme.example"] = ["127.0.0.1"]
    started = time.monotonic()
    try:
        with pytest.raises(netguard.OutboundError, match="no answer within 2 s"):
            netguard.post(f"https://crm.acme.example:{dripper.port}/hook", b"{}", {}, timeout=2)
    finally:
        dripper.stop()
    assert time.monotonic() - started < 3.5
    assert len(dripper.hits) == 1

