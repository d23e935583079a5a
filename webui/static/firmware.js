// Firmware upload with a progress bar: the form is sent as the browser would send it, but by
// XMLHttpRequest so that the bar follows the upload; the unit's answer (the dashboard with what happened)
// then replaces the page. Without JavaScript the form posts normally, without a bar.
(function () {
  "use strict";
  var form = document.getElementById("firmware-form");
  var bar = document.getElementById("firmware-progress");
  if (!form || !bar || !window.FormData) return;
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.upload.addEventListener("progress", function (p) {
      if (p.lengthComputable) bar.value = p.loaded / p.total;
    });
    xhr.addEventListener("load", function () {
      document.open();
      document.write(xhr.responseText); // the unit's page, rendered and escaped by its templates
      document.close();
    });
    xhr.addEventListener("error", function () {
      bar.hidden = true;
      form.querySelector("button").disabled = false;
    });
    var data = new FormData(form);
    bar.hidden = false;
    form.querySelector("button").disabled = true;
    xhr.send(data);
  });
})();
