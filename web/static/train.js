// Shared by every page: clear the alert area before a request. The /train rating page itself lives in rating.js.
(function () {
  "use strict";

  document.addEventListener("htmx:beforeRequest", function () {
    const flash = document.getElementById("flash");
    if (flash) flash.innerHTML = "";
  });
})();
