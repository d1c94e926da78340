// Live counts and progress bars: poll a JSON URL, update marked elements, refresh a
// region of the page when new attempts arrive. No dependencies.
(function () {
  "use strict";

  // A region the user is working in (the pointer over it, focus inside it, a recording
  // player open in it) is not replaced under them: a notice offers the new rows instead.
  function busy(region) {
    return region.matches(":hover") || region.contains(document.activeElement) ||
      region.querySelector("audio") !== null;
  }

  function offer(region, name) {
    var notice = document.querySelector('[data-new-rows-for="' + name + '"]');
    if (notice) { notice.hidden = false; return; }
    notice = document.createElement("div");
    notice.className = "alert alert-info py-1 px-2 small";
    notice.setAttribute("role", "status");
    notice.setAttribute("data-new-rows-for", name);
    notice.setAttribute("data-testid", "new-rows");
    var text = document.createElement("span");
    text.textContent = region.getAttribute("data-new-text") || "New rows arrived.";
    var button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn-sm btn-outline-primary ms-2";
    button.textContent = region.getAttribute("data-show-text") || "Show them";
    button.addEventListener("click", function () {
      notice.hidden = true;
      refreshRegions([name]);
    });
    notice.appendChild(text);
    notice.appendChild(button);
    region.parentNode.insertBefore(notice, region);
  }

  function newRows(names) {
    var now = [];
    names.forEach(function (name) {
      var region = document.querySelector('[data-refresh="' + name + '"]');
      if (region && busy(region)) offer(region, name);
      else now.push(name);
    });
    if (now.length) refreshRegions(now);
  }

  // Counts with the reader's thousands separator, as the pages print them (|grouped).
  var numbers = new Intl.NumberFormat(document.documentElement.lang || undefined);
  function grouped(value) {
    return typeof value === "number" ? numbers.format(value) : value;
  }

  function refreshRegions(names) {
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        names.forEach(function (name) {
          var fresh = doc.querySelector('[data-refresh="' + name + '"]');
          var current = document.querySelector('[data-refresh="' + name + '"]');
          if (fresh && current) current.innerHTML = fresh.innerHTML;
          var notice = document.querySelector('[data-new-rows-for="' + name + '"]');
          if (notice) notice.hidden = true;
        });
      });
  }

  document.querySelectorAll("[data-poll-url]").forEach(function (box) {
    var url = box.getAttribute("data-poll-url");
    var seconds = parseInt(box.getAttribute("data-poll-seconds") || "3", 10);
    // The newest attempt the page shows; new ones make it refresh its attempts region.
    var shown = box.getAttribute("data-latest");
    var latest = shown ? parseInt(shown, 10) : null;
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) return;
          Object.keys(data.counts || {}).forEach(function (key) {
            var el = box.querySelector('[data-count="' + key + '"]');
            if (el) el.textContent = grouped(data.counts[key]);
          });
          if (data.latest_attempt !== undefined && data.latest_attempt !== latest) {
            latest = data.latest_attempt;
            newRows(["attempts"]);
          }
          var bar = box.querySelector("[data-progress-bar]");
          if (bar && data.percent !== undefined) {
            bar.style.width = data.percent + "%";
            var meter = bar.closest("[role=progressbar]") || bar;
            meter.setAttribute("aria-valuenow", data.percent);
            bar.textContent = data.percent + "%";
          }
          Object.keys(data).forEach(function (key) {
            var el = box.querySelector('[data-field="' + key + '"]');
            if (el) el.textContent = typeof data[key] === "number" ? grouped(data[key]) : data[key];
          });
          if (data.status === "ready" || data.status === "done" || data.status === "failed") {
            if (box.hasAttribute("data-reload-when-done")) window.location.reload();
            return;
          }
          window.setTimeout(tick, seconds * 1000);
        })
        .catch(function () { window.setTimeout(tick, seconds * 2000); });
    }
    window.setTimeout(tick, seconds * 1000);
  });
})();
