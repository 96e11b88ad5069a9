// The /train rating page: synchronised zoom/pan (Panzoom), before/after slider,
// flicker, full screen, keyboard rating, drafts, time per rating, upload progress
// where the trainer looks, and the SSE progress stream with polling as fallback.
(function () {
  "use strict";

  var texts = {};
  function text(key, values) {
    var s = texts[key] || key;
    Object.keys(values || {}).forEach(function (k) { s = s.split("{" + k + "}").join(values[k]); });
    return s;
  }
  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.from((root || document).querySelectorAll(sel)); }
  function form() { return document.getElementById("rating-form"); }
  function compare() { return $(".compare"); }
  function isTyping(el) {
    if (!el) return false;
    if (el.isContentEditable) return true;
    var tag = el.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    return tag === "INPUT" && !/^(radio|checkbox|button|submit|reset|range|file)$/.test(el.type);
  }

  // ---- synchronised zoom and pan -------------------------------------------------
  var zoom = { items: [], scale: 1, x: 0, y: 0, syncing: false };

  function frameOf(stage) { return stage.parentElement; }

  // Followers take the leader's values as they are: the leader already constrained them,
  // and Panzoom would constrain again against sizes its pending frame has not applied yet.
  function follow(pz) {
    pz.zoom(zoom.scale, { animate: false, silent: true, force: true, contain: false });
    pz.pan(zoom.x, zoom.y, { animate: false, silent: true, force: true, contain: false });
  }

  function applyAll(source) {
    zoom.syncing = true;
    zoom.items.forEach(function (item) {
      if (item.stage === source || !document.body.contains(item.stage)) return;
      follow(item.pz);
    });
    zoom.syncing = false;
    var level = document.getElementById("zoom-level");
    if (level) level.textContent = Math.round(zoom.scale * 100) + " %";
  }

  function initZoom() {
    if (!window.Panzoom) return;
    zoom.items = zoom.items.filter(function (item) { return document.body.contains(item.stage); });
    $all(".compare .stage").forEach(function (stage) {
      if (stage.dataset.pz) return;
      stage.dataset.pz = "1";
      var pz = window.Panzoom(stage, { maxScale: 16, minScale: 1, step: 0.3, contain: "outside",
                                       excludeClass: "panzoom-exclude", cursor: "grab" });
      var item = { stage: stage, pz: pz };
      zoom.items.push(item);
      follow(pz);
      stage.addEventListener("panzoomchange", function (event) {
        if (zoom.syncing) return;
        zoom.scale = event.detail.scale; zoom.x = event.detail.x; zoom.y = event.detail.y;
        applyAll(stage);
      });
      frameOf(stage).addEventListener("wheel", function (event) {
        pz.zoomWithWheel(event);
      }, { passive: false });
    });
  }

  function leadItem() {
    var pane = activePane();
    var stage = pane && $(".stage", pane);
    return zoom.items.find(function (i) { return i.stage === stage; }) || zoom.items[0];
  }

  function zoomTo(scale) {
    var item = leadItem();
    if (!item) return;
    item.pz.zoom(scale, { animate: false });  // fires panzoomchange, which syncs the others
    if (scale <= 1) item.pz.pan(0, 0, { animate: false });
  }

  function oneToOne() {
    var item = leadItem();
    if (!item) return;
    var img = $(".shot", item.stage);
    if (!img || !img.naturalWidth) return;
    var box = item.stage.getBoundingClientRect();
    var w = box.width / zoom.scale, h = box.height / zoom.scale;
    var shown = Math.min(w / img.naturalWidth, h / img.naturalHeight);  // object-fit: contain
    zoomTo(1 / shown);
  }

  function zoomAction(kind) {
    if (kind === "in") zoomTo(zoom.scale * 1.5);
    else if (kind === "out") zoomTo(Math.max(1, zoom.scale / 1.5));
    else if (kind === "fit") zoomTo(1);
    else if (kind === "one") oneToOne();
  }

  // ---- panes: which one is active, phone switcher, swipe, full screen ----------------
  var lastPane = null;
  function activePane() {
    var el = document.activeElement;
    var pane = el && el.closest ? el.closest(".pane") : null;
    if (pane) return pane;
    if (lastPane && document.body.contains(lastPane)) return lastPane;
    var grid = compare();
    if (grid && getComputedStyle($(".switcher") || document.body).display !== "none") {
      return document.getElementById(grid.dataset.show === "O" ? "pane-O" : "card-" + grid.dataset.show);
    }
    return document.getElementById("card-A");
  }

  function show(key) {
    var grid = compare();
    if (!grid) return;
    grid.dataset.show = key;
    $all(".switcher [role=tab]").forEach(function (tab) {
      var on = tab.dataset.show === key;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
    });
    lastPane = document.getElementById(key === "O" ? "pane-O" : "card-" + key);
  }

  function showStep(step) {
    var keys = $all(".switcher [role=tab]").map(function (t) { return t.dataset.show; });
    var grid = compare();
    if (!grid || !keys.length) return;
    var i = keys.indexOf(grid.dataset.show);
    show(keys[(i + step + keys.length) % keys.length]);
  }

  function fullScreen(pane) {
    var frame = pane && $(".frame", pane);
    if (!frame) return;
    if (document.fullscreenElement) { document.exitFullscreen(); return; }
    if (frame.requestFullscreen) frame.requestFullscreen().catch(function () {});
  }

  function toggleSlider(force) {
    var grid = compare();
    if (!grid) return;
    var on = force === undefined ? !grid.classList.contains("sliding") : force;
    grid.classList.toggle("sliding", on);
    $all(".variant .cmp").forEach(function (s) { s.hidden = !on; });
    $all("[data-slider-toggle]").forEach(function (b) { b.setAttribute("aria-pressed", on ? "true" : "false"); });
  }

  // ---- stars, "cannot judge", tags -------------------------------------------------
  function readyPanes() {
    return $all(".pane.variant").filter(function (p) { return $(".frame[data-ready]", p); });
  }
  function paneState(pane) {
    var checked = $(".stars input:checked", pane);
    var cj = $("input[type=checkbox][name^=cannot_judge_]", pane);
    return { rating: checked ? checked.value : null, cannotJudge: !!(cj && cj.checked) };
  }
  function isDone(pane) { var s = paneState(pane); return !!s.rating || s.cannotJudge; }

  function updateLevel(pane) {
    var level = $(".level", pane);
    if (!level) return;
    var checked = $(".stars input:checked", pane);
    var label = checked && $('label[for="' + checked.id + '"]', pane);
    level.textContent = label ? label.dataset.phrase : level.dataset.none;
  }

  function focusStars(pane) {
    if (!pane) return;
    var input = $(".stars input:checked", pane) || $(".stars input:not(:disabled)", pane);
    if (input) { input.focus(); lastPane = pane; }
    var grid = compare();
    if (grid && grid.dataset.show !== pane.dataset.option) show(pane.dataset.option);
  }

  function rate(pane, value) {
    var input = $('.stars input[value="' + value + '"]', pane);
    if (!input || input.disabled) return;
    input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    var panes = readyPanes();
    var next = panes.slice(panes.indexOf(pane) + 1).find(function (p) { return !isDone(p); });
    if (next) focusStars(next);
    else { var submit = document.getElementById("submit-ratings"); if (submit) submit.focus(); }
  }

  function syncCannotJudge(pane) {
    var cj = $("input[type=checkbox][name^=cannot_judge_]", pane);
    var reason = $("select[name^=cannot_judge_reason_]", pane);
    if (!cj || !reason) return;
    reason.hidden = !cj.checked;
    $all(".stars input", pane).forEach(function (i) { i.disabled = cj.checked; if (cj.checked) i.checked = false; });
    updateLevel(pane);
  }

  function tagPresent(value, tag) {
    return value.split(/[,;.\n]/).map(function (s) { return s.trim().toLowerCase(); })
      .indexOf(tag.toLowerCase()) !== -1;
  }
  function appendTag(value, tag) {
    var base = value.replace(/\s+$/, "");
    if (!base) return tag;
    if (/[,;:]$/.test(base)) return base + " " + tag;
    if (/[.!?]$/.test(base)) return base + " " + tag.charAt(0).toUpperCase() + tag.slice(1);
    return base + ", " + tag;
  }
  function removeTag(value, tag) {
    var esc = tag.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    return value.replace(new RegExp("(^|[,;]\\s*|\\.\\s+)" + esc + "(?=$|[,;.\\n])", "i"), "$1")
      .replace(/^[,;]\s*/, "").replace(/[,;]\s*$/, "").replace(/\s+,/g, ",").trim();
  }
  function syncTags(box) {
    $all('.tag[data-target="' + box.id + '"]').forEach(function (b) {
      b.setAttribute("aria-pressed", tagPresent(box.value, b.dataset.text) ? "true" : "false");
    });
  }

  // ---- drafts (localStorage, per experiment) ----------------------------------------
  function draftKey() { var f = form(); return f ? "afinador.draft." + f.dataset.experimentId : null; }
  function readDraft() {
    var key = draftKey();
    try { return key ? JSON.parse(localStorage.getItem(key) || "{}") : {}; } catch (e) { return {}; }
  }
  function saveDraft() {
    var f = form(), key = draftKey();
    if (!f || !key) return;
    var draft = { fields: {}, visibleMs: timer.total(), savedAt: Date.now() };
    $all("textarea, select, input[type=checkbox]", f).forEach(function (el) {
      if (el.disabled) return;
      draft.fields[el.name] = el.type === "checkbox" ? el.checked : el.value;
    });
    $all(".stars input:checked", f).forEach(function (el) { draft.fields[el.name] = el.value; });
    localStorage.setItem(key, JSON.stringify(draft));
  }
  function restoreDraft(root) {
    var f = form();
    if (!f || f.dataset.editing) return;
    var draft = readDraft(), fields = draft.fields || {}, restored = false;
    $all(".pane.variant", root || f).forEach(function (pane) {
      $all("textarea, select, input[type=checkbox]", pane).forEach(function (el) {
        if (el.disabled || !(el.name in fields)) return;
        if (el.type === "checkbox") { if (el.checked !== fields[el.name]) { el.checked = !!fields[el.name]; restored = true; } }
        else if (el.value !== fields[el.name] && fields[el.name]) { el.value = fields[el.name]; restored = true; }
      });
      syncCannotJudge(pane);
      $all(".stars input", pane).forEach(function (el) {
        if (!el.disabled && fields[el.name] === el.value && !el.checked) { el.checked = true; restored = true; }
      });
      updateLevel(pane);
      $all("textarea", pane).forEach(syncTags);
    });
    if (draft.visibleMs && !timer.restored) { timer.base = draft.visibleMs; timer.restored = true; }
    if (restored) status(text("draft_restored"));
  }
  function clearDraft(experimentId) { localStorage.removeItem("afinador.draft." + experimentId); }

  // ---- time per rating: both variants shown → submit, minus hidden time --------------
  var timer = {
    base: 0, since: null, restored: false, running: false,
    total: function () { return this.base + (this.since !== null ? performance.now() - this.since : 0); },
    start: function () { if (!this.running) { this.running = true; if (!document.hidden) this.since = performance.now(); } },
    pause: function () { if (this.since !== null) { this.base += performance.now() - this.since; this.since = null; } },
    resume: function () { if (this.running && this.since === null && !document.hidden) this.since = performance.now(); },
    reset: function () { this.base = 0; this.since = null; this.running = false; this.restored = false; }
  };
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) timer.pause(); else timer.resume();
  });

  // ---- state of the experiment: waiting, ready, stream fallback ----------------------
  function status(message, isError) {
    var el = document.getElementById("rate-status");
    if (!el) return;
    el.textContent = message || "";
    el.classList.toggle("error", !!isError);
  }

  function allFinal() {
    var frames = $all(".pane.variant .frame");
    return frames.length > 0 && frames.every(function (f) {
      return /^(succeeded|failed|cancelled)$/.test(f.dataset.status);
    });
  }

  var wasFinal = false;
  function checkReady() {
    var f = form();
    if (!f) return;
    var final = allFinal();
    if (final && readyPanes().length) {
      timer.start();
      if (!wasFinal) {
        status(text("ready"));
        var first = readyPanes().find(function (p) { return !isDone(p); });
        var el = document.activeElement;
        if (first && (!el || el === document.body || el.id === "exp-title")) focusStars(first);
      }
    }
    wasFinal = final;
    if (final) stopPolling();
  }

  var pollTimer = null;
  function startPolling() {
    if (pollTimer) return;
    pollTimer = window.setInterval(function () {
      $all(".pane.variant .frame[data-card-url]").forEach(function (frame) {
        if (/^(queued|running)$/.test(frame.dataset.status)) {
          window.htmx.ajax("GET", frame.dataset.cardUrl, { target: frame.closest(".pane"), swap: "innerHTML" });
        }
      });
      if (allFinal()) stopPolling();
    }, 2000);
  }
  function stopPolling() { if (pollTimer) { window.clearInterval(pollTimer); pollTimer = null; } }
  document.addEventListener("htmx:sseError", function () { if (!allFinal()) startPolling(); });
  document.addEventListener("htmx:sseOpen", stopPolling);

  // ---- a new experiment (upload, pending list, undo) or a new card -------------------
  function setUpWorkspace(focusTitle) {
    var f = form();
    if (!f) return;
    timer.reset();
    wasFinal = false;
    zoom.scale = 1; zoom.x = 0; zoom.y = 0;
    initZoom();
    restoreDraft();
    $all(".pane.variant").forEach(updateLevel);
    var url = new URL(window.location.href);
    if (url.searchParams.get("exp") !== f.dataset.experimentId) {
      url.searchParams.set("exp", f.dataset.experimentId);
      url.searchParams.delete("lang");
      window.history.replaceState({}, "", url);
    }
    if (focusTitle) {
      document.getElementById("workspace").scrollIntoView({ block: "start" });
      var title = document.getElementById("exp-title");
      if (title) title.focus({ preventScroll: true });
    }
    checkReady();
  }

  function setUpRated() {
    var rated = document.getElementById("rated");
    if (!rated) return;
    clearDraft(rated.dataset.experimentId);
    var url = new URL(window.location.href);
    url.searchParams.delete("exp");
    window.history.replaceState({}, "", url);
    document.getElementById("workspace").scrollIntoView({ block: "start" });
    var next = document.getElementById("next-render");
    if (next) next.focus({ preventScroll: true });
    var undo = document.getElementById("undo");
    if (undo) {
      var left = parseInt(undo.dataset.seconds, 10);
      var tick = window.setInterval(function () {
        left -= 1;
        if (!document.body.contains(undo) || left <= 0) { window.clearInterval(tick); undo.remove(); return; }
        undo.textContent = undo.dataset.label.replace("{s}", String(left));
      }, 1000);
    }
    document.body.dispatchEvent(new Event("pending-changed"));
  }

  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target || event.target;
    if (!target) return;
    if (target.id === "workspace") {
      if (form()) setUpWorkspace(true); else setUpRated();
    } else if (target.classList && target.classList.contains("pane")) {
      initZoom();
      restoreDraft(target);
      updateLevel(target);
      toggleSlider(compare() && compare().classList.contains("sliding"));
      checkReady();
    }
  });
  // A card already showing its final state is not replaced (the stream sends every card
  // when it connects or reconnects): nothing the trainer typed is touched.
  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    var pane = event.target;
    var message = event.detail || {};
    if (!pane || !pane.classList || !pane.classList.contains("pane") || typeof message.data !== "string") return;
    var incoming = /data-status="([a-z]+)"/.exec(message.data);
    var frame = $(".frame", pane);
    if (incoming && frame && frame.dataset.status === incoming[1] &&
        /^(succeeded|failed|cancelled)$/.test(incoming[1])) event.preventDefault();
  });
  // SSE swaps do not go through a request; they fire htmx:sseMessage after the swap.
  document.addEventListener("htmx:sseMessage", function (event) {
    var pane = event.target && event.target.closest ? event.target.closest(".pane") : null;
    if (pane && event.target === pane) {
      initZoom();
      restoreDraft(pane);
      toggleSlider(compare() && compare().classList.contains("sliding"));
      checkReady();
    }
  });

  // ---- errors where the trainer looks: next to the field, not at the top of the page ----
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (!xhr || xhr.status < 400) return;
    var elt = event.detail.requestConfig && event.detail.requestConfig.elt;
    var host = elt && elt.closest ? elt.closest("[data-error-target]") : null;
    var target = host && document.querySelector(host.dataset.errorTarget);
    if (!target) return;
    event.detail.target = target;
    event.detail.swapOverride = "innerHTML";
    event.detail.shouldSwap = true;
    if (target.id === "rate-status") target.classList.add("error");
    if (target.id === "upload-error") {
      var input = document.getElementById("image");
      if (input) input.setAttribute("aria-invalid", "true");
    }
  });

  // ---- upload: progress where the trainer looks, reset after an error ------------------
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.target.id !== "upload-form") return;
    var workspace = document.getElementById("workspace");
    var err = document.getElementById("upload-error");
    if (err) err.textContent = "";
    workspace.dataset.previous = workspace.innerHTML;
    workspace.innerHTML = '<div class="card upload-skeleton" role="status"><p id="upload-label"></p>' +
      '<progress id="upload-progress" max="100" value="0"></progress></div>';
    $("#upload-label").textContent = text("uploading", { pct: 0 });
    workspace.scrollIntoView({ block: "start" });
  });
  document.addEventListener("htmx:xhr:progress", function (event) {
    if (event.target.id !== "upload-form" || !event.detail.lengthComputable) return;
    var bar = document.getElementById("upload-progress");
    var pct = Math.round((event.detail.loaded / event.detail.total) * 100);
    if (bar) bar.value = pct;
    var label = document.getElementById("upload-label");
    if (label) label.textContent = text("uploading", { pct: pct });
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.id === "upload-form" && !event.detail.successful) {
      var workspace = document.getElementById("workspace");
      if (workspace.dataset.previous !== undefined && $(".upload-skeleton", workspace)) {
        workspace.innerHTML = workspace.dataset.previous;
        window.htmx.process(workspace);
      }
      var input = document.getElementById("image");
      if (input) { input.scrollIntoView({ block: "center" }); input.focus({ preventScroll: true }); }
    }
    if (elt && elt.id === "rating-form") {
      elt.removeAttribute("aria-busy");
      var submit = document.getElementById("submit-ratings");
      if (submit) submit.removeAttribute("aria-busy");
      if (!event.detail.successful) status(text("save_failed"), true);
    }
  });
  document.addEventListener("htmx:sendError", function (event) {
    if (event.detail.elt && event.detail.elt.id === "rating-form") status(text("offline"), true);
  });

  // ---- submit: validation next to the fields, busy state, time per rating -------------
  function validate() {
    var f = form(), ok = true, any = false, firstBad = null;
    $all(".pane.variant", f).forEach(function (pane) {
      var err = $(".field-error", pane);
      if (err) err.textContent = "";
      if (!$(".frame[data-ready]", pane)) return;
      var s = paneState(pane);
      var reason = $("select[name^=cannot_judge_reason_]", pane);
      if (s.rating) any = true;
      if (s.cannotJudge) {
        any = true;
        if (reason && !reason.value) { ok = false; if (err) err.textContent = text("need_reason"); firstBad = firstBad || reason; }
      }
    });
    if (!any) {
      var pane = readyPanes()[0];
      var err = pane && $(".field-error", pane);
      if (err) err.textContent = text("need_one");
      ok = false;
      firstBad = firstBad || (pane && $(".stars input", pane));
      status(text("need_one"), true);
    }
    if (firstBad) firstBad.focus();
    return ok;
  }
  document.addEventListener("htmx:confirm", function (event) {
    if (event.target.id !== "rating-form") return;
    if (!validate()) { event.preventDefault(); return; }
    var submit = document.getElementById("submit-ratings");
    if (submit) submit.setAttribute("aria-busy", "true");
    event.target.setAttribute("aria-busy", "true");
    status(text("saving"));
  });
  document.addEventListener("htmx:configRequest", function (event) {
    if (event.target.id !== "rating-form") return;
    event.detail.parameters.seconds_to_rate = (timer.total() / 1000).toFixed(1);
  });

  // ---- input events ---------------------------------------------------------------------
  document.addEventListener("change", function (event) {
    var el = event.target;
    var pane = el.closest && el.closest(".pane.variant");
    if (!pane) return;
    if (el.matches("input[type=checkbox][name^=cannot_judge_]")) syncCannotJudge(pane);
    if (el.matches(".stars input")) { updateLevel(pane); var err = $(".field-error", pane); if (err) err.textContent = ""; }
    if (el.matches("select")) { var e2 = $(".field-error", pane); if (e2 && el.value) e2.textContent = ""; }
    saveDraft();
  });
  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches(".pane.variant textarea")) { syncTags(event.target); saveDraft(); }
  });

  document.addEventListener("click", function (event) {
    var t = event.target.closest ? event.target : null;
    if (!t) return;
    var tag = t.closest("button.tag");
    if (tag) {
      var box = document.getElementById(tag.dataset.target);
      if (!box) return;
      box.value = tagPresent(box.value, tag.dataset.text) ? removeTag(box.value, tag.dataset.text)
                                                          : appendTag(box.value, tag.dataset.text);
      syncTags(box);
      saveDraft();
      return;
    }
    var z = t.closest("[data-zoom]");
    if (z) { zoomAction(z.dataset.zoom); return; }
    var fs = t.closest("[data-fullscreen]");
    if (fs) { fullScreen(fs.closest(".pane")); return; }
    if (t.closest("[data-slider-toggle]")) { toggleSlider(); return; }
    if (t.closest("[data-guide-open]")) { openGuide(); return; }
    var tab = t.closest(".switcher [role=tab]");
    if (tab) { show(tab.dataset.show); return; }
    var lang = t.closest("a.lang");
    if (lang && form()) {
      event.preventDefault();
      saveDraft();
      var url = new URL(window.location.href);
      url.searchParams.set("lang", lang.getAttribute("hreflang"));
      window.location.assign(url.toString());
    }
  });

  document.addEventListener("pointerover", function (event) {
    var pane = event.target.closest && event.target.closest(".pane");
    if (pane) lastPane = pane;
  });

  // Swipe between Original / A / B on a phone (only when not zoomed in).
  var touch = null;
  document.addEventListener("touchstart", function (event) {
    if (!event.target.closest || !event.target.closest(".compare .frame") || event.touches.length !== 1) return;
    touch = { x: event.touches[0].clientX, y: event.touches[0].clientY };
  }, { passive: true });
  document.addEventListener("touchend", function (event) {
    if (!touch || zoom.scale > 1.01) { touch = null; return; }
    var dx = event.changedTouches[0].clientX - touch.x, dy = event.changedTouches[0].clientY - touch.y;
    touch = null;
    if (Math.abs(dx) > 50 && Math.abs(dx) > 2 * Math.abs(dy)) showStep(dx < 0 ? 1 : -1);
  }, { passive: true });

  function openGuide() {
    var dialog = document.getElementById("guide-dialog");
    if (dialog && !dialog.open) dialog.showModal();
  }

  // ---- keyboard -----------------------------------------------------------------------
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    var f = form();
    if (!f || isTyping(document.activeElement)) return;
    var dialog = document.getElementById("guide-dialog");
    if (dialog && dialog.open) return;
    var key = event.key;
    var el = document.activeElement;
    if (/^[1-5]$/.test(key)) {
      var panes = readyPanes();
      if (!panes.length) return;
      var pane = el && el.closest ? el.closest(".pane.variant") : null;
      if (!pane || panes.indexOf(pane) === -1) pane = panes.find(function (p) { return !isDone(p); }) || panes[0];
      event.preventDefault();
      rate(pane, key);
    } else if (key === "a" || key === "b" || key === "A" || key === "B") {
      var target = document.getElementById("card-" + key.toUpperCase());
      if (target && $(".frame[data-ready]", target)) { event.preventDefault(); focusStars(target); }
    } else if (key === "Enter") {
      if (el && (el.tagName === "BUTTON" || el.tagName === "A" || el.tagName === "SUMMARY" ||
                 el.tagName === "IMG-COMPARISON-SLIDER")) return;
      event.preventDefault();
      f.requestSubmit(document.getElementById("submit-ratings"));
    } else if (key === "+" || key === "=") { event.preventDefault(); zoomAction("in"); }
    else if (key === "-" || key === "_") { event.preventDefault(); zoomAction("out"); }
    else if (key === "0") { event.preventDefault(); zoomAction("fit"); }
    else if (key === "z" || key === "Z") { event.preventDefault(); zoomAction("one"); }
    else if (key === "f" || key === "F") { event.preventDefault(); fullScreen(activePane()); }
    else if (key === "s" || key === "S") { event.preventDefault(); toggleSlider(); }
    else if (key === "?") { event.preventDefault(); openGuide(); }
    else if (key === " " || key === "Spacebar") {
      if (el && (/^(BUTTON|A|SUMMARY|IMG-COMPARISON-SLIDER)$/.test(el.tagName) ||
                 el.type === "checkbox")) return;
      event.preventDefault();
      var grid = compare();
      if (grid) grid.classList.add("flicker");
    } else if (key === "ArrowLeft" || key === "ArrowRight") {
      if (el && el.closest && el.closest(".switcher")) {
        event.preventDefault();
        showStep(key === "ArrowRight" ? 1 : -1);
        var tab = $(".switcher [aria-selected=true]");
        if (tab) tab.focus();
      }
    }
  });
  document.addEventListener("keyup", function (event) {
    if (event.key === " " || event.key === "Spacebar") {
      var grid = compare();
      if (grid) grid.classList.remove("flicker");
    }
  });
  window.addEventListener("blur", function () { var grid = compare(); if (grid) grid.classList.remove("flicker"); });

  // ---- guidelines: open on first use, then as the trainer left them ---------------------
  function setUpGuide() {
    var guide = document.getElementById("guide");
    if (!guide) return;
    var saved = localStorage.getItem("afinador.guide");
    guide.open = saved === null ? true : saved === "open";
    guide.addEventListener("toggle", function () {
      localStorage.setItem("afinador.guide", guide.open ? "open" : "closed");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var layout = document.getElementById("train-layout");
    try { texts = JSON.parse((layout && layout.dataset.texts) || "{}"); } catch (e) { texts = {}; }
    setUpGuide();
    if (form()) setUpWorkspace(true);
  });

  // For tests and debugging: the shared zoom state.
  window.afinadorZoom = zoom;
})();
