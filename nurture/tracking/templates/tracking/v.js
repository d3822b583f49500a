/* Kindling site tracking: records page views for the marketer's own website and for our
   landing pages (the script tag's data-page names the page: a `page_viewed`, not a visit).
   No dependencies. Honours Global Privacy Control and Do Not Track when the workspace does.
   Keeps a random visitor id in this site's localStorage, because cookies of the tracking
   domain are third-party here and browsers may block them.
   It also fills the hidden fields of Kindling lead forms (form[data-kindling-capture]): the
   browser's time zone (send windows use it), the referrer, the landing address and values
   from the query string (UTM and the form's own hidden fields). Pages stay the same bytes for
   every visitor; these values come from the visitor's own browser. */
(function (w, d) {
  "use strict";
  var base = {{ base_url|tojson }};
  var n = w.navigator || {};
  var me = d.currentScript;
  var page = me && /^[0-9]{1,12}$/.test(me.getAttribute("data-page") || "") ?
    me.getAttribute("data-page") : "";

  function fillForms() {
    var params = {}, zone = "";
    try { new URLSearchParams(w.location.search).forEach(function (v, k) { params[k] = v; }); }
    catch (e) { /* very old browser: the server reads the query from the Referer */ }
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
    var known = {tz: zone, referrer: d.referrer || "", landing_url: w.location.href};
    var forms = d.querySelectorAll("form[data-kindling-capture]");
    Array.prototype.forEach.call(forms, function (form) {
      Array.prototype.forEach.call(form.querySelectorAll("input[type=hidden]"), function (input) {
        if (!input.name || input.value) { return; }
        var value = Object.prototype.hasOwnProperty.call(known, input.name) ?
          known[input.name] : params[input.name];
        if (value) { input.value = String(value).slice(0, 2000); }
      });
    });
  }
  if (d.readyState === "loading") { d.addEventListener("DOMContentLoaded", fillForms); }
  else { fillForms(); }

  if ({{ 'true' if honour_gpc else 'false' }} &&
      (n.globalPrivacyControl === true || n.doNotTrack === "1" || w.doNotTrack === "1")) {
    return;
  }
  var KEY = "kindling_vid";
  var valid = /^[A-Za-z0-9_-]{16,64}$/;

  function newId() {
    var bytes = new Uint8Array(18), out = "", i;
    var abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (w.crypto || w.msCrypto).getRandomValues(bytes);
    for (i = 0; i < bytes.length; i++) { out += abc.charAt(bytes[i] & 63); }
    return out;
  }

  var vid = "";
  try {
    vid = w.localStorage.getItem(KEY) || "";
    if (!valid.test(vid)) { vid = newId(); w.localStorage.setItem(KEY, vid); }
  } catch (e) { vid = ""; }

  var last = "";
  function send() {
    var here = w.location.href;
    if (here === last) { return; }
    last = here;
    var img = new Image(1, 1);
    img.src = base + "/t/v.gif?u=" + encodeURIComponent(here) +
      "&r=" + encodeURIComponent(d.referrer || "") + (vid ? "&vid=" + vid : "") +
      (page ? "&lp=" + page : "") +
      "&_=" + new Date().getTime();
  }

  send();
  /* Single-page sites: count history navigations too. */
  var h = w.history;
  if (h && h.pushState) {
    var push = h.pushState;
    h.pushState = function () { var r = push.apply(h, arguments); send(); return r; };
    w.addEventListener("popstate", send);
  }
})(window, document);
