// The operator view's live updates: server-sent events whose data is HTML
// the console rendered (and escaped) on the server. Without JavaScript the
// page still shows the reading of when it was loaded.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource) { return; }
  var es = new EventSource(live.getAttribute("data-stream"));
  es.addEventListener("metrics", function (e) { live.innerHTML = e.data; });
  es.addEventListener("load", function (e) {
    var load = document.getElementById("load");
    if (!load) { return; }
    load.innerHTML = e.data;
    var log = document.getElementById("load-log");
    if (log) { log.scrollTop = log.scrollHeight; }
  });
})();
