// Live policy preview for the self-service wizard. The page works without this file: every
// button posts the form; this only shows the policy as you type, and swaps the fields when
// another template is chosen.
(function () {
  "use strict";
  var form = document.getElementById("wizard");
  if (!form) return;
  var preview = document.getElementById("preview");
  var select = document.getElementById("template");
  var token = form.querySelector("input[name=csrf_token]").value;
  var timer = null;

  function pending() {
    var values = {};
    var any = false;
    form.querySelectorAll("[name^='v_']").forEach(function (el) {
      if (el.value.trim() !== "") {
        values[el.name.slice(2)] = el.value.trim();
        any = true;
      }
    });
    return any ? { template: select.value, values: values } : null;
  }

  function refresh() {
    var body = {
      permissions: JSON.parse(document.getElementById("permissions").value || "[]"),
      pending: pending()
    };
    if (body.permissions.length === 0 && !body.pending) return;
    fetch("/api/v2/selfservice/preview", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": token },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().then(function (j) { return { ok: r.ok, body: j }; });
    }).then(function (res) {
      if (res.ok) {
        preview.textContent = JSON.stringify(res.body.policy_document, null, 2);
        preview.classList.remove("stale");
      } else {
        var errs = (res.body.errors || []).map(function (e) { return e.field + ": " + e.message; });
        preview.textContent = "Not valid yet:\n" + (errs.join("\n") || res.body.message || "");
        preview.classList.add("stale");
      }
    }).catch(function () {});
  }

  // Bucket, queue and topic fields suggest synced resources (ConsoleMe's typeahead API).
  var suggestTimer = null;
  function suggest(input) {
    var kind = input.getAttribute("data-typeahead");
    var list = document.getElementById(input.getAttribute("list"));
    if (!kind || !list) return;
    var url = "/api/v2/typeahead/self_service_resources?limit=20&resource_type=" +
      encodeURIComponent(kind) + "&typeahead=" + encodeURIComponent(input.value.trim());
    fetch(url, { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.json() : [];
    }).then(function (arns) {
      list.textContent = "";
      arns.forEach(function (arn) {
        var opt = document.createElement("option");
        // The bucket field takes a name; the queue and topic fields take the ARN.
        opt.value = kind === "s3" ? arn.replace(/^arn:aws:s3:::/, "") : arn;
        list.appendChild(opt);
      });
    }).catch(function () {});
  }

  form.addEventListener("input", function (e) {
    if (e.target.name && e.target.name.indexOf("v_") === 0) {
      clearTimeout(timer);
      timer = setTimeout(refresh, 250);
      if (e.target.hasAttribute("data-typeahead")) {
        var input = e.target;
        clearTimeout(suggestTimer);
        suggestTimer = setTimeout(function () { suggest(input); }, 150);
      }
    }
  });
  // Choosing another template shows its fields (a round trip, as without JavaScript).
  select.addEventListener("change", function () {
    var btn = form.querySelector("button[value=choose]");
    if (btn) btn.click();
  });
  form.querySelectorAll(".nojs").forEach(function (el) { el.hidden = true; });
})();
