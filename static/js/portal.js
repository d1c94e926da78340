// Behaviour every page shares, kept out of the markup so the Content-Security-Policy can
// refuse inline code and style attributes (settings.CONTENT_SECURITY_POLICY):
//   <form data-confirm="Question?">  asks before submitting; Cancel keeps the page as it is;
//   <select data-autosubmit>         submits its form when the choice changes: at once with
//                                    the mouse; from the keyboard on Enter or on leaving it
//                                    (arrow keys move through the choices, they do not choose);
//   <div data-percent="42">          a progress bar's width (live.js moves it afterwards);
//   <div data-channels="voice sms">  shown only while the form's channel select
//                                    (<select data-channel-select>) has one of these values.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
  var keyed = null; // the autosubmit select whose choice the keyboard is moving through
  function autosubmit(field) {
    return field && field.hasAttribute && field.hasAttribute("data-autosubmit") && field.form;
  }
  document.addEventListener("keydown", function (event) {
    var field = event.target;
    if (!autosubmit(field)) return;
    if (event.key === "Enter") {
      event.preventDefault();
      keyed = null;
      field.form.submit();
    } else if (event.key !== "Tab") {
      keyed = field;
    }
  });
  document.addEventListener("change", function (event) {
    var field = event.target;
    if (autosubmit(field) && keyed !== field) field.form.submit();
  });
  document.addEventListener("focusout", function (event) {
    var field = event.target;
    if (autosubmit(field) && keyed === field) {
      keyed = null;
      if (field.value !== field.getAttribute("data-initial")) field.form.submit();
    }
  });
  document.querySelectorAll("select[data-autosubmit]").forEach(function (field) {
    field.setAttribute("data-initial", field.value);
  });
  function showChannelFields(select) {
    var form = select.form || document;
    form.querySelectorAll("[data-channels]").forEach(function (part) {
      var wanted = part.getAttribute("data-channels").split(" ");
      part.hidden = wanted.indexOf(select.value) === -1;
    });
  }
  document.querySelectorAll("select[data-channel-select]").forEach(showChannelFields);
  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field.hasAttribute && field.hasAttribute("data-channel-select")) showChannelFields(field);
  });
  document.querySelectorAll("[data-percent]").forEach(function (bar) {
    var percent = parseInt(bar.getAttribute("data-percent"), 10);
    if (!isNaN(percent)) bar.style.width = Math.max(0, Math.min(100, percent)) + "%";
  });
})();
