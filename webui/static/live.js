// Live sections: the unit sends the dashboard section (or the part data-part names), rendered, whenever it
// changes (server-sent events).
// Without JavaScript the page still shows everything as of its loading.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource) return;
  var es = new EventSource("/api/v1/events" + (live.dataset.part ? "?part=" + encodeURIComponent(live.dataset.part) : ""));
  es.addEventListener("live", function (e) {
    live.innerHTML = JSON.parse(e.data); // HTML rendered and escaped by the unit's templates
    live.classList.remove("stale");
    live.dataset.updated = new Date().toISOString();
  });
  es.addEventListener("end", function () {
    es.close();
    window.location.reload(); // the session ended: the unit answers with the login page
  });
  es.addEventListener("error", function () {
    live.classList.add("stale"); // the browser reconnects by itself ...
    if (es.readyState === EventSource.CLOSED) window.setTimeout(function () { window.location.reload(); }, 5000); // ... unless refused
  });
})();
