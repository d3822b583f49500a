"""`Retry-After` tells a client when to come back after a refusal for now (429, 503); a
successful answer never carries one (issue 15, finding 19)."""

from __future__ import annotations


def test_only_a_refusal_for_now_says_when_to_retry(app_config, make_app):
    client = make_app({**app_config, "RATELIMIT_ENABLED": True,
                       "LOGIN_RATE_LIMIT": "2 per minute",
                       "WTF_CSRF_ENABLED": False}).test_client()
    answers = [client.post("/login", data={"email": "nobody@example.com", "password": "no"})
               for _ in range(3)]
    first, _, refused = answers
    assert first.status_code != 429
    assert "X-RateLimit-Remaining" in first.headers  # the limit is still announced
    assert "Retry-After" not in first.headers
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
