"""The OpenAPI 3.1 document and the browsable reference, served from our own files."""

from __future__ import annotations


def test_openapi_document_is_31_and_describes_the_resources(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    assert "/api/v1/leads" in doc["paths"] and "/api/v1/leads/{lead_id}/stage" in doc["paths"]
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    error = doc["components"]["responses"]["UNPROCESSABLE_ENTITY"]["content"]
    assert "application/problem+json" in error
    create = doc["paths"]["/api/v1/leads"]["post"]["requestBody"]["content"]
    body = create["application/json"]["schema"]
    ref = body["$ref"].rsplit("/", 1)[-1]
    assert doc["components"]["schemas"][ref]["additionalProperties"] is False


def test_docs_page_loads_swagger_ui_from_our_own_address(client):
    page = client.get("/api/v1/docs/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "/api/v1/openapi.json" in html
    assert "http://" not in html and "https://" not in html  # no CDN
    assert "<script>" not in html  # no inline script
    script = client.get("/api/v1/docs/files/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.get_data()) > 100_000
    script.close()
    assert client.get("/api/v1/docs/files/..%2fcore.py").status_code == 404
