// Keyboard shortcuts and the slice sliders of the review page. No data is sent except by the form.
(function () {
  "use strict";
  var form = document.getElementById("answer");
  if (!form) return;
  var base = form.getAttribute("data-base");
  function pick(name, value) {
    var el = form.querySelector('input[name="' + name + '"][value="' + value + '"]');
    if (el) el.checked = true;
  }
  document.querySelectorAll(".slider").forEach(function (s) {
    s.addEventListener("input", function () {
      var axis = s.getAttribute("data-axis");
      document.getElementById("view" + axis).src = base + "/" + axis + "/" + s.value;
    });
  });
  form.addEventListener("submit", function () {
    document.getElementById("next").disabled = true;  // one answer per click
  });
  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if (t && t.tagName === "TEXTAREA") {
      if (e.key === "Escape") t.blur();
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var k = e.key.toLowerCase();
    if (k === "r") pick("says", "real");
    else if (k === "s") pick("says", "synthetic");
    else if (k >= "1" && k <= "5" && k.length === 1) pick("quality", k);
    else if (k === "/") { form.querySelector("textarea").focus(); }
    else if (k === "enter") { if (form.reportValidity()) form.requestSubmit(); }
    else if (k.length === 1) {
      var el = form.querySelector('input[name="label"][data-key="' + k + '"]');
      if (el) el.checked = true; else return;
    } else return;
    e.preventDefault();
  });
})();
