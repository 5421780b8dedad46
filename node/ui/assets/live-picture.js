// The picture, kept up to date while it is open: the node sends an event (server-sent events,
// /beeld/live) when a record on the picture arrives, changes or is retracted; this script then
// fetches the page again and swaps the live part (#beeld-live) for the fresh one, and says so
// in a status line for screen readers. While the page is hidden (another tab) the stream is
// closed, since a browser keeps few connections to one site; when it shows again the stream
// reopens from what the page shows, and a change meanwhile comes at once. The script is loaded
// from this site, as the page's Content-Security-Policy demands, and adds nothing the page
// needs: without it, reloading the page shows the same. When the node stops answering (it
// stopped, hangs, or the network went), the status line says since when the picture could not
// be updated, as a warning, and the picture is greyed out, until a fetch succeeds again: a
// picture on a wall screen must not go on looking current.
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
  // When the page last showed what the node answered: at load, and at each fetch that succeeded.
  var lastGood = new Date();
  // A fetch the node does not answer within this long counts as failed (a hung node).
  var timeoutMs = 15000;

  function clock(d) {
    // The time in the page's language (nl: 08:33:30), not the browser's, and in the zone the
    // page's other times are in (ui.time_zone), not the browser's.
    var opts = {};
    if (status.getAttribute("data-tz")) {
      opts.timeZone = status.getAttribute("data-tz");
    }
    try {
      return d.toLocaleTimeString(document.documentElement.lang || undefined, opts);
    } catch (e) {
      return d.toLocaleTimeString(document.documentElement.lang || undefined);
    }
  }

  // stale says that the picture could not be updated since lastGood, and greys it out.
  function stale() {
    if (ended) {
      return;
    }
    status.textContent = (status.getAttribute("data-stale") || "").replace("%s", clock(lastGood));
    status.classList.add("kp-live-status--gone");
    box.classList.add("kp-live--stale");
  }

  function refresh() {
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    refreshed = Date.now();
    var abort = window.AbortController ? new AbortController() : null;
    var timer = abort ? window.setTimeout(function () { abort.abort(); }, timeoutMs) : 0;
    fetch(window.location.pathname + window.location.search, {
      credentials: "same-origin", headers: { Accept: "text/html" }, redirect: "manual", signal: abort ? abort.signal : undefined
    })
      .then(function (r) {
        if (r.type === "opaqueredirect") {
          // To the sign-in: the session ended (a restart of the node ends them all).
          gone();
          return null;
        }
        if (!r.ok) {
          throw new Error("status " + r.status);
        }
        return r.text();
      })
      .then(function (html) {
        if (html === null) {
          return;
        }
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("beeld-live");
        if (!fresh) {
          throw new Error("no picture in the answer");
        }
        var nodes = Array.prototype.slice.call(document.adoptNode(fresh).childNodes);
        if (box.replaceChildren) {
          box.replaceChildren.apply(box, nodes);
        } else {
          // Browsers before 2020 (iOS 13): the same, by hand.
          while (box.firstChild) {
            box.removeChild(box.firstChild);
          }
          nodes.forEach(function (n) {
            box.appendChild(n);
          });
        }
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
        lastGood = new Date();
        box.classList.remove("kp-live--stale");
        if (!ended) {
          status.classList.remove("kp-live-status--gone");
          status.textContent = status.getAttribute("data-text") + " " + clock(lastGood);
        }
      })
      .catch(function () {
        try {
          stale();
        } catch (e) {
          // Never let the warning stop the refreshes.
        }
      })
      .then(function () {
        window.clearTimeout(timer);
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
    source.addEventListener("fout", function (e) {
      // The role was taken away: only a reload can say more.
      if (e.data === "rol") {
        gone();
        return;
      }
      // The node stops, hangs or is cut off: the picture says so once a fetch fails, and
      // updates again after.
      close();
      refresh();
      window.setTimeout(open, 3000);
    });
    // The stream broke (the browser tries again by itself): whether the node still answers, a
    // fetch says.
    source.addEventListener("error", function () {
      refresh();
    });
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
