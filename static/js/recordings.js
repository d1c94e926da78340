// "Listen": an HTML audio player on the recording's checked, range-capable URL.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-listen]");
    if (!button) return;
    var cell = button.parentElement;
    var box = cell.querySelector(".recording-player");
    if (!box) return;
    if (!box.firstChild) {
      var audio = document.createElement("audio");
      audio.controls = true;
      audio.preload = "auto";
      audio.src = button.getAttribute("data-listen");
      box.appendChild(audio);
    }
    box.hidden = false;
    box.firstChild.play().catch(function () { /* autoplay may be refused; controls remain */ });
  });
})();
