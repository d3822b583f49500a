/* Kindling embedded form {{ key }}: renders into div[data-kindling-form="{{ key }}"].
   No dependencies; talks to {{ api }} with CORS and no cookies. */
(function () {
  "use strict";
  var KEY = {{ key|tojson }};
  var API = {{ api|tojson }};
  var ORIGIN = {{ base|tojson }};
  var TRACKING = ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "gclid"];
  var count = 0;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) { return; }
      node.setAttribute(name, value === true ? "" : String(value));
    });
    if (text) { node.textContent = text; }
    return node;
  }

  function query() {
    var out = {};
    try { new URLSearchParams(window.location.search).forEach(function (v, k) { out[k] = v; }); }
    catch (e) { /* very old browser: no tracking values */ }
    return out;
  }

  function hidden(form, name, value) {
    form.appendChild(el("input", {type: "hidden", name: name, value: (value || "").slice(0, 2000)}));
  }

  function control(field, id) {
    var common = {id: id, name: field.name, "aria-required": field.required ? "true" : null,
                  autocomplete: field.autocomplete || null};
    if (field.type === "select" || field.type === "country") {
      var select = el("select", common);
      (field.choices || []).forEach(function (c) { select.appendChild(el("option", {value: c.value}, c.label)); });
      return select;
    }
    if (field.type === "textarea") {
      common.maxlength = field.max_length; common.rows = 4;
      return el("textarea", common);
    }
    if (field.type === "checkbox") { common.type = "checkbox"; common.value = "y"; return el("input", common); }
    common.type = {email: "email", phone: "tel"}[field.type] || "text";
    common.maxlength = field.max_length;
    return el("input", common);
  }

  function addField(form, field, prefix, params, controls) {
    if (field.type === "hidden") { hidden(form, field.name, params[field.name]); return; }
    var id = prefix + field.name;
    var wrap = el("div", {"class": "kindling-field kindling-field-" + field.type});
    var label = el("label", {"for": id}, field.label);
    if (field.required) { label.appendChild(el("span", {"class": "kindling-required", "aria-hidden": "true"}, " *")); }
    var input = control(field, id);
    if (field.type === "checkbox") { wrap.appendChild(input); wrap.appendChild(label); }
    else { wrap.appendChild(label); wrap.appendChild(input); }
    var describedBy = [];
    if (field.help_text) {
      wrap.appendChild(el("p", {"class": "kindling-hint", id: id + "-hint"}, field.help_text));
      describedBy.push(id + "-hint");
    }
    var error = el("p", {"class": "kindling-error", id: id + "-error", hidden: true});
    wrap.appendChild(error);
    if (describedBy.length) { input.setAttribute("aria-describedby", describedBy.join(" ")); }
    controls[field.name] = {input: input, error: error, describedBy: describedBy};
    form.appendChild(wrap);
  }

  function showErrors(form, summary, controls, errors) {
    var first = null;
    Object.keys(controls).forEach(function (name) {
      var c = controls[name], messages = errors[name];
      c.error.hidden = !messages;
      c.error.textContent = messages ? messages.join(" ") : "";
      var ids = c.describedBy.slice();
      if (messages) {
        ids.push(c.error.id);
        c.input.setAttribute("aria-invalid", "true");
        first = first || c.input;
      } else {
        c.input.removeAttribute("aria-invalid");
      }
      if (ids.length) { c.input.setAttribute("aria-describedby", ids.join(" ")); }
      else { c.input.removeAttribute("aria-describedby"); }
    });
    var other = Object.keys(errors).filter(function (name) { return !controls[name]; });
    summary.textContent = "Please correct the fields marked below." +
      (other.length ? " " + other.map(function (n) { return errors[n].join(" "); }).join(" ") : "");
    summary.hidden = false;
    (first || summary).focus();
  }

  function collect(form) {
    var data = {};
    Array.prototype.forEach.call(form.elements, function (input) {
      if (!input.name) { return; }
      if (input.type === "checkbox") { if (input.checked) { data[input.name] = true; } return; }
      data[input.name] = input.value;
    });
    return data;
  }

  function render(root, def) {
    var prefix = "kindling-" + KEY.slice(0, 8) + "-" + (++count) + "-";
    var params = query();
    var controls = {};
    var form = el("form", {"class": "kindling-form", novalidate: true});
    var summary = el("div", {"class": "kindling-form-errors", role: "alert", tabindex: "-1", hidden: true});
    form.appendChild(summary);
    def.fields.forEach(function (field) { addField(form, field, prefix, params, controls); });
    if (def.consent) {
      addField(form, {name: def.consent.name, label: def.consent.text, type: "checkbox",
                      required: def.consent.required}, prefix, params, controls);
    }
    (def.consents || []).forEach(function (c) {
      addField(form, {name: c.name, label: c.text, type: "checkbox", required: c.required},
               prefix, params, controls);
    });
    TRACKING.forEach(function (name) { hidden(form, name, params[name]); });
    hidden(form, "referrer", document.referrer);
    hidden(form, "landing_url", window.location.href);
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
    hidden(form, "tz", zone);
    hidden(form, def.token_field, def.token);
    var trap = el("div", {"aria-hidden": "true", style: "position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden"});
    trap.appendChild(el("label", {"for": prefix + def.honeypot}, "Leave this field empty"));
    trap.appendChild(el("input", {type: "text", id: prefix + def.honeypot, name: def.honeypot, tabindex: "-1", autocomplete: "off"}));
    form.appendChild(trap);
    var button = el("button", {type: "submit"}, def.submit_label || "Submit");
    form.appendChild(button);

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      button.disabled = true;
      fetch(ORIGIN + def.action, {method: "POST", credentials: "omit", mode: "cors",
        headers: {"Content-Type": "application/json", "Accept": "application/json"},
        body: JSON.stringify(collect(form))})
        .then(function (response) {
          return response.json().catch(function () { return {}; }).then(function (body) {
            if (response.status === 202 || response.status === 201) {
              var done = el("div", {"class": "kindling-form-done", role: "status", tabindex: "-1"}, body.message || "Thank you!");
              root.replaceChildren(done);
              done.focus();
              return;
            }
            button.disabled = false;
            if (response.status === 422 && body.errors) { showErrors(form, summary, controls, body.errors); return; }
            summary.textContent = body.error || "Something went wrong. Please try again.";
            summary.hidden = false;
            summary.focus();
          });
        })
        .catch(function () {
          button.disabled = false;
          summary.textContent = "We could not reach the server. Please check your connection and try again.";
          summary.hidden = false;
          summary.focus();
        });
    });
    root.replaceChildren(form);
  }

  function start() {
    var roots = document.querySelectorAll('div[data-kindling-form="' + KEY + '"]');
    if (!roots.length) { return; }
    fetch(API, {credentials: "omit", mode: "cors", headers: {"Accept": "application/json"}})
      .then(function (response) { if (!response.ok) { throw new Error(String(response.status)); } return response.json(); })
      .then(function (def) { Array.prototype.forEach.call(roots, function (root) { render(root, def); }); })
      .catch(function () {
        Array.prototype.forEach.call(roots, function (root) {
          root.replaceChildren(el("p", {role: "alert"}, "This form could not be loaded."));
        });
      });
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); }
  else { start(); }
})();
