// Every state-changing htmx request carries the CSRF token (double submit: the
// gateway compares this header with its signed cookie; see services/gateway/security.py).
(function () {
  "use strict";
  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)afinador_csrf=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }
  document.addEventListener("htmx:configRequest", function (event) {
    const token = csrfToken();
    if (token) event.detail.headers["X-CSRF-Token"] = token;
  });
})();
