// The picture, kept up to date while it is open: the node sends an event (server-sent events,
// /beeld/live) when a record on the picture arrives, changes or is retracted; this script then
// fetches the page again and swaps the live part (#beeld-live) for the fresh one, and says so
// in a status line for screen readers. While the page is hidden (another tab) the stream is
// closed, since a browser keeps few connections to one site; when it shows again the stream
// reopens from what the page shows, and a change meanwhile comes at once. The script is loaded
// from this site, as the page's Content-Security-Policy demands, and adds nothing the page
// needs: without it, reloading the page shows the same.
(function () {
  "use strict";
  var box = document.getElementById("beeld-live");
  var status = document.getElementById("beeld-status");
  if (!box || !status || !box.getAttribute("data-live") || !window.EventSource || !window.fetch || !window.DOMParser) {
    return;
  }
  var fetching = false;
  var again = false;
  var refreshed = Date.now();
  var updates = 0;
  var source = null;
  var ended = false;

  function refresh() {
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    refreshed = Date.now();
    fetch(window.location.pathname + window.location.search, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) {
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (!html) {
          return;
        }
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("beeld-live");
        if (!fresh) {
          return;
        }
        box.replaceChildren.apply(box, Array.prototype.slice.call(document.adoptNode(fresh).childNodes));
        // The classification printed in the page margins follows what the picture now shows.
        var marking = doc.documentElement.getAttribute("data-marking");
        if (marking) {
          document.documentElement.setAttribute("data-marking", marking);
        } else {
          document.documentElement.removeAttribute("data-marking");
        }
        box.setAttribute("data-digest", fresh.getAttribute("data-digest") || "");
        updates++;
        box.setAttribute("data-updates", String(updates));
        // The time in the page's language (nl: 08:33:30), not the browser's.
        status.textContent = status.getAttribute("data-text") + " " + new Date().toLocaleTimeString(document.documentElement.lang || undefined);
      })
      .catch(function () {})
      .then(function () {
        fetching = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  function gone() {
    ended = true;
    close();
    status.textContent = status.getAttribute("data-gone");
    status.classList.add("kp-live-status--gone");
  }

  // Ages (7 min geleden) and which partners answer change by the clock, not by a commit: the
  // page is fetched again every data-refresh seconds while it shows, also when nothing on it
  // changed, so that a picture left open on a wall screen does not go on saying what was true
  // when it was opened. Each look asks the partners as a reload does.
  window.setInterval(function () {
    var every = Number(box.getAttribute("data-refresh")) || 0;
    if (!ended && every > 0 && document.visibilityState !== "hidden" && Date.now() - refreshed >= every * 1000) {
      refresh();
    }
  }, 1000);

  function open() {
    if (source || ended) {
      return;
    }
    source = new EventSource(box.getAttribute("data-live") + "&sinds=" + encodeURIComponent(box.getAttribute("data-digest") || ""));
    source.addEventListener("beeld", function (e) {
      if (e.data !== box.getAttribute("data-digest")) {
        refresh();
      }
    });
    source.addEventListener("afgemeld", gone);
    source.addEventListener("fout", gone);
  }

  function close() {
    if (source) {
      source.close();
      source = null;
    }
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") {
      close();
    } else {
      open();
    }
  });
  if (document.visibilityState !== "hidden") {
    open();
  }
})();
