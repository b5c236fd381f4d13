// "Scan now" progress on the server page: polls the small JSON view named in
// #scan-progress[data-status-url] until a scan newer than the one shown is stored, then
// reloads the page with ?scanned=<its id> instead of ?scanning, so the page says what the
// scan changed. One mechanism only: polling.
(function () {
  "use strict";
  var box = document.getElementById("scan-progress");
  if (!box) return;
  var text = box.querySelector(".progress-text");
  var started = Date.now();
  var EVERY_MS = 1500;
  // After this long, say that no worker seems to be taking the job, but keep waiting.
  var SLOW_MS = 60000;
  var GIVE_UP_MS = 600000;

  function seconds() {
    return Math.round((Date.now() - started) / 1000);
  }

  function say(message) {
    text.textContent = message;
  }

  function finished(result) {
    var run = result.run;
    var verdict = run.error ? "the scan crashed" :
      run.compliant === true ? "compliant" : run.compliant === false ? "non-compliant" : "unknown";
    box.classList.add("done");
    say("Scan finished: " + verdict + ". Loading the result…");
    // The page then says what this scan changed (?scanned=<run id>).
    window.location.replace(box.dataset.doneUrl + "?scanned=" + encodeURIComponent(run.id) + "#scan-result");
  }

  function poll() {
    fetch(box.dataset.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (result) {
        if (result.done) return finished(result);
        var elapsed = Date.now() - started;
        if (elapsed > GIVE_UP_MS) {
          box.classList.add("done");
          return say("No result after " + seconds() + " s. Is a worker running? Reload to check again.");
        }
        say(elapsed > SLOW_MS ?
          "Still waiting after " + seconds() + " s: is a worker running? (see Background processes on the overview)" :
          "Scanning… " + seconds() + " s");
        window.setTimeout(poll, EVERY_MS);
      })
      .catch(function () {
        say("Lost contact with the dashboard; retrying… " + seconds() + " s");
        window.setTimeout(poll, EVERY_MS * 2);
      });
  }

  say("Scan queued… 0 s");
  window.setTimeout(poll, 500);
})();
