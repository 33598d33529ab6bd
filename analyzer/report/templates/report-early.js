(function () {
  "use strict";
  // Collect script errors and CSP violations from the very start of parsing; the main script
  // shows them in the page (and a headless browser test reads them from the DOM).
  var errors = [];
  window.__reportErrors = errors;
  window.addEventListener("error", function (ev) {
    errors.push("error: " + String(ev.message || ev.type));
  });
  document.addEventListener("securitypolicyviolation", function (ev) {
    errors.push("csp: " + String(ev.violatedDirective) + " " + String(ev.blockedURI || ""));
  });
})();
