// Starts Swagger UI on /api/v1/docs over the document named in data-spec-url.
(function () {
  "use strict";
  var target = document.getElementById("swagger-ui");
  if (!target || typeof window.SwaggerUIBundle !== "function") { return; }
  window.SwaggerUIBundle({
    url: target.getAttribute("data-spec-url"),
    domNode: target,
    deepLinking: true,
    persistAuthorization: false,
    tryItOutEnabled: false
  });
}());
