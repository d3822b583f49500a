/* Kindling site tracking: records page views for the marketer's own website.
   No dependencies. Honours Global Privacy Control and Do Not Track when the workspace does.
   Keeps a random visitor id in this site's localStorage, because cookies of the tracking
   domain are third-party here and browsers may block them. */
(function (w, d) {
  "use strict";
  var base = {{ base_url|tojson }};
  var n = w.navigator || {};
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
