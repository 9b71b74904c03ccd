// iamdesk's page behaviour. Every page works without this file (forms post, links navigate);
// it only makes them quicker: search as you type, "/" to search, copy buttons, the role page's
// form showing the fields of the chosen change, the theme applied on choice.
(function () {
  "use strict";

  // "/" focuses the page's search box (unless typing somewhere already).
  document.addEventListener("keydown", function (e) {
    if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey) return;
    var t = e.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    var box = document.querySelector("main input[type=search]");
    if (box) {
      e.preventDefault();
      box.focus();
      box.select();
    }
  });

  // Buttons and notes only useful without JavaScript.
  document.querySelectorAll("[data-nojs]").forEach(function (el) { el.hidden = true; });

  // The footer's theme choice applies at once.
  var theme = document.getElementById("theme-choice");
  if (theme) theme.addEventListener("change", function () { theme.form.submit(); });

  // A form with problems: bring its summary into view and focus.
  var errors = document.querySelector(".form-errors[tabindex]");
  if (errors) errors.focus();

  // ---- Copy buttons: <button data-copy="text" hidden> ----------------------------------------
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    return new Promise(function (resolve, reject) {
      var ta = document.createElement("textarea");
      ta.value = text;
      ta.setAttribute("readonly", "");
      ta.className = "offscreen";
      document.body.appendChild(ta);
      ta.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (err) { ok = false; }
      document.body.removeChild(ta);
      if (ok) { resolve(); } else { reject(); }
    });
  }
  function wireCopy(root) {
    root.querySelectorAll("button[data-copy]").forEach(function (b) {
      if (b.dataset.wired) return;
      b.dataset.wired = "1";
      b.hidden = false;
      b.addEventListener("click", function () {
        var label = b.textContent;
        copyText(b.dataset.copy).then(function () {
          b.textContent = "Copied";
        }, function () {
          b.textContent = "Press Ctrl+C";
        });
        setTimeout(function () { b.textContent = label; }, 1500);
      });
    });
  }
  wireCopy(document);

  // ---- The role page's change form: only the fields of the chosen kind ------------------------
  var kind = document.getElementById("f-kind");
  if (kind) {
    var showFields = function () {
      document.querySelectorAll("[data-kinds]").forEach(function (el) {
        var kinds = el.dataset.kinds.split(" ");
        el.hidden = kinds.indexOf(kind.value) < 0;
      });
    };
    kind.addEventListener("change", showFields);
    showFields();
  }

  // ---- Search as you type ---------------------------------------------------------------------
  // <form data-live-api="/api/v2/..."> with a results region [data-live-results] holding a
  // <table> whose <tbody> is refilled from <template data-live-row>, bound by data-text,
  // data-href, data-value, data-show and data-list attributes naming fields of each item.
  function field(item, path) {
    return path.split(".").reduce(function (v, k) { return v == null ? v : v[k]; }, item);
  }
  function bind(node, item) {
    node.querySelectorAll("[data-text]").forEach(function (el) {
      var v = field(item, el.dataset.text);
      el.textContent = v == null ? "" : String(v);
    });
    node.querySelectorAll("[data-href]").forEach(function (el) {
      var v = field(item, el.dataset.href);
      if (v) { el.setAttribute("href", v); } else { el.removeAttribute("href"); }
    });
    node.querySelectorAll("[data-value]").forEach(function (el) {
      el.value = field(item, el.dataset.value) || "";
    });
    node.querySelectorAll("[data-title]").forEach(function (el) {
      el.title = field(item, el.dataset.title) || "";
    });
    node.querySelectorAll("[data-datetime]").forEach(function (el) {
      el.setAttribute("datetime", field(item, el.dataset.datetime) || "");
    });
    node.querySelectorAll("[data-copy-from]").forEach(function (el) {
      el.dataset.copy = field(item, el.dataset.copyFrom) || "";
    });
    node.querySelectorAll("[data-class]").forEach(function (el) {
      var parts = el.dataset.class.split(":");
      el.classList.add(parts[0] + (field(item, parts[1]) || ""));
    });
    node.querySelectorAll("[data-show]").forEach(function (el) {
      var v = field(item, el.dataset.show);
      el.hidden = !v || (Array.isArray(v) && v.length === 0);
    });
    node.querySelectorAll("[data-list]").forEach(function (el) {
      var v = field(item, el.dataset.list) || [];
      el.textContent = v.join("; ");
    });
  }

  function liveSearch(form) {
    var api = form.dataset.liveApi;
    var region = document.querySelector(form.dataset.liveTarget || "[data-live-results]");
    if (!region) return;
    var tpl = region.querySelector("template[data-live-row]");
    var tbody = region.querySelector("tbody");
    var table = region.querySelector("table");
    var status = document.querySelector("[data-live-status]");
    var emptyNote = region.querySelector("[data-live-empty]");
    var pager = document.querySelector("[data-live-pager]");
    var timer = null;
    var seq = 0;

    function query() {
      var params = new URLSearchParams();
      new FormData(form).forEach(function (v, k) {
        if (typeof v === "string" && v.trim() !== "") params.append(k, v.trim());
      });
      return params.toString();
    }

    function render(items, total) {
      tbody.textContent = "";
      items.forEach(function (item) {
        var row = tpl.content.firstElementChild.cloneNode(true);
        bind(row, item);
        tbody.appendChild(row);
      });
      wireCopy(tbody);
      if (table) table.parentNode.hidden = items.length === 0;
      if (emptyNote) emptyNote.hidden = items.length !== 0;
      if (status) {
        var n = typeof total === "number" ? total : items.length;
        status.textContent = n + " result" + (n === 1 ? "" : "s") +
          (n > items.length ? ", showing the first " + items.length : "") + ".";
      }
    }

    function run() {
      var qs = query();
      var mine = ++seq;
      form.setAttribute("aria-busy", "true");
      fetch(api + (qs ? "?" + qs : ""), {
        credentials: "same-origin",
        headers: { accept: "application/json" }
      }).then(function (r) {
        return r.json().then(function (j) { return { ok: r.ok, body: j }; });
      }).then(function (res) {
        if (mine !== seq) return; // a newer search is on its way
        form.removeAttribute("aria-busy");
        if (!res.ok) {
          if (status) status.textContent = res.body.message || "The search failed.";
          return;
        }
        var key = form.dataset.liveItems || "items";
        render(res.body[key] || [], res.body.total);
        if (pager) pager.hidden = true;
        var url = location.pathname + (qs ? "?" + qs : "");
        if (url !== location.pathname + location.search) history.replaceState({ live: qs }, "", url);
      }).catch(function () {
        form.removeAttribute("aria-busy");
      });
    }

    form.addEventListener("input", function (e) {
      if (!e.target.name) return;
      clearTimeout(timer);
      timer = setTimeout(run, 250);
    });
    form.addEventListener("change", function (e) {
      if (e.target.tagName === "SELECT") { clearTimeout(timer); run(); }
    });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      clearTimeout(timer);
      run();
    });
    // Back and forward between searches: the URL is the truth.
    window.addEventListener("popstate", function () {
      var params = new URLSearchParams(location.search);
      Array.prototype.forEach.call(form.elements, function (el) {
        if (el.name && el.type !== "submit" && el.type !== "hidden") el.value = params.get(el.name) || "";
      });
      run();
    });
  }
  document.querySelectorAll("form[data-live-api]").forEach(liveSearch);
})();
