"""The script a marketer pastes on another site."""


def test_the_embed_script_is_cacheable_javascript_for_that_form(client, make_form):
    form = make_form()
    response = client.get(f"/f/{form.key}/embed.js")
    script = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert "max-age" in response.headers["Cache-Control"]
    assert f'"http://kindling.test/api/forms/{form.key}"' in script
    assert 'div[data-kindling-form="\' + KEY + \'"]' in script
    assert "aria-describedby" in script and "credentials: \"omit\"" in script
    again = client.get(f"/f/{form.key}/embed.js",
                       headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_an_unknown_form_has_no_script(client):
    assert client.get("/f/unknown/embed.js").status_code == 404


def test_a_key_with_a_nul_character_has_no_script_and_no_server_error(app, client):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    assert client.get("/f/%00/embed.js").status_code == 404
