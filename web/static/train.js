// Keyboard rating, issue tags and upload progress for the /train page.
// Keys 1–5 rate the focused option (or the first unrated one); focus then moves on,
// so a trainer can rate both options and submit with: 4, 5, Enter.
(function () {
  "use strict";

  function readyCards() {
    return Array.from(document.querySelectorAll(".variant[data-ready]"));
  }

  function isRated(card) {
    return !!card.querySelector(".stars input:checked");
  }

  function setRating(card, value) {
    const input = card.querySelector('.stars input[value="' + value + '"]');
    if (!input) return;
    input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    const cards = readyCards();
    const next = cards.slice(cards.indexOf(card) + 1).find((c) => !isRated(c));
    if (next) {
      (next.querySelector(".stars input:checked") || next.querySelector(".stars input")).focus();
    } else {
      const submit = document.getElementById("submit-ratings");
      if (submit) submit.focus();
    }
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if (!/^[1-5]$/.test(event.key)) return;
    const active = document.activeElement;
    if (active && (active.tagName === "TEXTAREA" || (active.tagName === "INPUT" && active.type !== "radio"))) return;
    const cards = readyCards();
    if (!cards.length) return;
    let card = active && active.closest ? active.closest(".variant[data-ready]") : null;
    if (!card) card = cards.find((c) => !isRated(c)) || cards[0];
    event.preventDefault();
    setRating(card, event.key);
  });

  document.addEventListener("click", function (event) {
    const tag = event.target.closest && event.target.closest("button.tag");
    if (!tag) return;
    const box = document.getElementById(tag.dataset.target);
    if (!box) return;
    const text = tag.dataset.text;
    if (!box.value.includes(text)) box.value = box.value ? box.value.replace(/\s*$/, "") + ", " + text : text;
  });

  // Refuse to submit without any rating, with a clear message instead of a server round trip.
  document.addEventListener("htmx:confirm", function (event) {
    const form = event.target;
    if (form.id !== "rating-form") return;
    if (!form.querySelector(".stars input:checked")) {
      event.preventDefault();
      document.getElementById("flash").innerHTML =
        '<div class="error-box">' + document.body.dataset.needOne + "</div>";
    }
  });

  // Live progress: server-sent events update the progress bars at once and fetch a
  // card when its variant finishes. Cards also poll every 2 s, so nothing depends on SSE.
  let events = null;
  function followExperiment() {
    const form = document.getElementById("rating-form");
    if (!form || !window.EventSource) return;
    if (events) events.close();
    const labels = JSON.parse((document.getElementById("stage-labels") || {}).textContent || "{}");
    events = new EventSource(form.dataset.eventsUrl);
    events.addEventListener("experiment", function (message) {
      const experiment = JSON.parse(message.data);
      experiment.options.forEach(function (option) {
        const card = document.querySelector('.variant[data-variant-id="' + option.variant_id + '"]');
        if (!card) return;
        const busy = option.status === "queued" || option.status === "running";
        if (busy) {
          const bar = card.querySelector("progress");
          if (bar) bar.value = Math.round(option.progress * 100);
          const label = card.querySelector(".stage-label");
          if (label && labels[option.stage]) label.textContent = labels[option.stage];
        } else if (card.dataset.status !== option.status) {
          card.dataset.status = option.status;
          htmx.trigger(card, "refresh");
        }
      });
    });
    events.addEventListener("done", function () { events.close(); events = null; });
    events.onerror = function () { if (events) { events.close(); events = null; } };
  }
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.target.id === "workspace") followExperiment();
  });

  // Elapsed seconds tick locally between updates.
  setInterval(function () {
    document.querySelectorAll(".elapsed[data-started]").forEach(function (el) {
      const seconds = parseInt(el.dataset.started, 10) + 1;
      el.dataset.started = String(seconds);
      el.textContent = "· " + seconds + " s";
    });
  }, 1000);

  document.addEventListener("htmx:xhr:progress", function (event) {
    const bar = document.getElementById("upload-progress");
    if (!bar || event.target.id !== "upload-form" || !event.detail.lengthComputable) return;
    bar.hidden = false;
    bar.value = Math.round((event.detail.loaded / event.detail.total) * 100);
  });

  document.addEventListener("htmx:beforeRequest", function () {
    const flash = document.getElementById("flash");
    if (flash) flash.innerHTML = "";
  });
})();
