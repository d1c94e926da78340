// Opens the tab a link or a redirect names in the URL's fragment: "#settings" shows the
// pane "#settings-tab" (so a saved form comes back to the tab it was saved from).
(function () {
  "use strict";
  function show(hash) {
    if (!hash || hash.length < 2 || !window.bootstrap) return;
    var name = hash.slice(1).replace(/[^A-Za-z0-9_-]/g, "");
    var button = document.querySelector('[data-bs-toggle="tab"][data-bs-target="#' + name + '-tab"]');
    if (button) window.bootstrap.Tab.getOrCreateInstance(button).show();
  }
  document.addEventListener("DOMContentLoaded", function () { show(window.location.hash); });
  window.addEventListener("hashchange", function () { show(window.location.hash); });
  document.addEventListener("shown.bs.tab", function (event) {
    var target = event.target.getAttribute("data-bs-target") || "";
    if (/-tab$/.test(target) && window.history.replaceState) {
      window.history.replaceState(null, "", "#" + target.slice(1, -4));
    }
  });
})();
