// Behaviour every page shares, kept out of the markup so the Content-Security-Policy can
// refuse inline code and style attributes (settings.CONTENT_SECURITY_POLICY):
//   <form data-confirm="Question?">  asks before submitting; Cancel keeps the page as it is;
//   <select data-autosubmit>         submits its form when the choice changes;
//   <div data-percent="42">          a progress bar's width (live.js moves it afterwards).
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field.hasAttribute && field.hasAttribute("data-autosubmit") && field.form) field.form.submit();
  });
  document.querySelectorAll("[data-percent]").forEach(function (bar) {
    var percent = parseInt(bar.getAttribute("data-percent"), 10);
    if (!isNaN(percent)) bar.style.width = Math.max(0, Math.min(100, percent)) + "%";
  });
})();
