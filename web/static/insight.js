// Status, history and rater-quality pages: local times, the browser's time zone for
// the history filters, and enlarged images. No inline script (the CSP forbids it).
(function () {
  "use strict";
  var lang = document.documentElement.lang || "es";

  function localiseTimes(root) {
    var full = new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" });
    var short = new Intl.DateTimeFormat(lang, { timeStyle: "short" });
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when.getTime())) { return; }
      var text = el.textContent.length <= 6 ? short.format(when) : full.format(when);
      el.textContent = text;
      el.title = when.toISOString();
    });
  }

  function browserZone(root) {
    var zone;
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { zone = ""; }
    root.querySelectorAll("input[data-browser-tz]").forEach(function (el) {
      if (!el.value && zone) { el.value = zone; }
    });
  }

  function zoom(root) {
    var dialog = document.getElementById("zoom-dialog");
    var image = document.getElementById("zoom-image");
    if (!dialog || !image || typeof dialog.showModal !== "function") { return; }
    root.querySelectorAll("a.zoom").forEach(function (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        var thumb = link.querySelector("img");
        image.src = link.href;
        image.alt = thumb ? thumb.alt : "";
        dialog.showModal();
      });
    });
    dialog.addEventListener("click", function (event) {
      if (event.target === dialog) { dialog.close(); }
    });
  }

  function init(root) {
    localiseTimes(root);
    browserZone(root);
  }

  document.addEventListener("DOMContentLoaded", function () {
    init(document);
    zoom(document);
  });
  document.addEventListener("htmx:afterSwap", function (event) { init(event.target); });
})();
