/* Kindling admin: small enhancements; every page works without them.
   Loaded from app/templates/admin/base.html (no inline scripts: the admin runs under a strict
   Content-Security-Policy).
   - Pickers (app/pickers.py): a search box with data-pick-url gets suggestions in its
     <datalist> as you type.
   - Slugs: an input with data-slug-from="<id of the name input>" follows the name, made into
     a slug, until someone edits the slug by hand. */
(function () {
  "use strict";

  function wirePicker(input) {
    var list = document.getElementById(input.getAttribute("list"));
    if (!list) { return; }
    var url = input.getAttribute("data-pick-url");
    var timer = null;
    var asked = null;

    function fill(query, options) {
      if (input.value.trim() !== query) { return; }  // an older answer: the box moved on
      var items = options.map(function (option) {
        var item = document.createElement("option");
        item.value = option.value;  // text only: never parsed as HTML
        return item;
      });
      list.replaceChildren.apply(list, items);
    }

    function ask() {
      var query = input.value.trim();
      if (query === asked) { return; }
      asked = query;
      fetch(url + "?q=" + encodeURIComponent(query), {
        credentials: "same-origin", headers: { "Accept": "application/json" }
      }).then(function (response) {
        return response.ok ? response.json() : { options: [] };
      }).then(function (data) {
        fill(query, data.options || []);
      }).catch(function () { /* no suggestions: typing an id or a name still works */ });
    }

    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(ask, 150);
    });
    input.addEventListener("focus", ask);
  }

  function slugify(text) {
    return text.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase()
      .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 80).replace(/-+$/, "");
  }

  function wireSlug(slug) {
    var source = document.getElementById(slug.getAttribute("data-slug-from"));
    if (!source) { return; }
    // Follow the name while the slug is empty or was filled in for you.
    var following = slug.value === "" || slug.getAttribute("data-slug-auto") === "true";
    slug.addEventListener("input", function () { following = slug.value === ""; });
    source.addEventListener("input", function () {
      if (following) { slug.value = slugify(source.value); }
    });
  }

  document.querySelectorAll("input[data-pick-url]").forEach(wirePicker);
  document.querySelectorAll("input[data-slug-from]").forEach(wireSlug);
}());
