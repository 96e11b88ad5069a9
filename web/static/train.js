// Shared by every page: clear the alert area before a request and remember the
// trainer's name between renders. The /train rating page itself lives in rating.js.
(function () {
  "use strict";

  document.addEventListener("htmx:beforeRequest", function () {
    const flash = document.getElementById("flash");
    if (flash) flash.innerHTML = "";
  });

  document.addEventListener("change", function (event) {
    if (event.target.id === "rated_by") localStorage.setItem("afinador.trainer", event.target.value);
  });
  document.addEventListener("DOMContentLoaded", function () {
    const name = document.getElementById("rated_by");
    const saved = localStorage.getItem("afinador.trainer");
    if (name && saved && !name.value) name.value = saved;
  });
})();
