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
//
// The swap changes only what differs (morph), so that a link or table cell that keyboard focus or
// a screen reader's cursor is on stays where it is, and an alert that is still the same is not
// announced again; the status line speaks only when what it says changes. A button pauses the
// updates (WCAG 2.2.2) and resumes them.
(function () {
  "use strict";
  var box = document.getElementById("beeld-live");
  var status = document.getElementById("beeld-status");
  if (!box || !status || !box.getAttribute("data-live") || !window.EventSource || !window.fetch || !window.DOMParser) {
    return;
  }
  var pause = document.getElementById("beeld-pauze");
  var paused = false;
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

  // say puts text in the status line, unless it says that already: a live region speaks at every
  // change, and the same warning every few seconds is noise.
  function say(text) {
    if (status.textContent !== text) {
      status.textContent = text;
    }
  }

  // stale says that the picture could not be updated since lastGood, and greys it out.
  function stale() {
    if (ended) {
      return;
    }
    say((status.getAttribute("data-stale") || "").replace("%s", clock(lastGood)));
    status.classList.add("kp-live-status--gone");
    box.classList.add("kp-live--stale");
  }

  // morph makes the children of old what those of fresh are, keeping every node that is the
  // same: only the text that changed (an age, a count) and the parts that changed are replaced.
  // A child with an id is matched by it (a warning that comes or goes above the rest moves
  // nothing), one without by its place among those of its kind; the kept stay where they are,
  // so that the focus and a screen reader's place inside them stay too.
  function morph(old, fresh) {
    var was = Array.prototype.slice.call(old.childNodes);
    var now = Array.prototype.slice.call(fresh.childNodes);
    var byId = {};
    was.forEach(function (n) {
      if (n.nodeType === 1 && n.id) {
        byId[n.id] = n;
      }
    });
    var used = [];
    var result = now.map(function (b) {
      var a = null;
      if (b.nodeType === 1 && b.id) {
        a = byId[b.id] && byId[b.id].tagName === b.tagName ? byId[b.id] : null;
      } else {
        // The first of its kind not taken yet: a block that came in between is new, and
        // takes the place of nothing after it.
        var j = find(was, used, function (c) {
          return c.nodeType === b.nodeType && (c.nodeType !== 1 || (!c.id && kind(c) === kind(b)));
        });
        if (j >= 0) {
          a = was[j];
        }
      }
      if (!a || used.indexOf(a) >= 0) {
        return b;
      }
      used.push(a);
      if (a.isEqualNode(b)) {
        return a;
      }
      if (a.nodeType !== 1) {
        a.nodeValue = b.nodeValue;
        return a;
      }
      sameAttributes(a, b);
      morph(a, b);
      return a;
    });
    was.forEach(function (n) {
      if (result.indexOf(n) < 0) {
        old.removeChild(n);
      }
    });
    for (var k = 0; k < result.length; k++) {
      if (old.childNodes[k] !== result[k]) {
        old.insertBefore(result[k], old.childNodes[k] || null);
      }
    }
  }

  // kind is what tells an element without an id from others of its tag: its class, the heading
  // it is labelled by (a table's box), and its data attributes.
  function kind(e) {
    var k = e.tagName + "." + e.className + "@" + (e.getAttribute("aria-labelledby") || "");
    for (var i = 0; i < e.attributes.length; i++) {
      if (e.attributes[i].name.indexOf("data-") === 0) {
        k += " " + e.attributes[i].name + "=" + e.attributes[i].value;
      }
    }
    return k;
  }

  // find is the index of the first node of nodes, not used yet, that ok takes; -1 when there is
  // none.
  function find(nodes, used, ok) {
    for (var j = 0; j < nodes.length; j++) {
      if (used.indexOf(nodes[j]) < 0 && ok(nodes[j])) {
        return j;
      }
    }
    return -1;
  }

  // sameAttributes gives element a the attributes of b.
  function sameAttributes(a, b) {
    var i;
    for (i = a.attributes.length - 1; i >= 0; i--) {
      if (!b.hasAttribute(a.attributes[i].name)) {
        a.removeAttribute(a.attributes[i].name);
      }
    }
    for (i = 0; i < b.attributes.length; i++) {
      if (a.getAttribute(b.attributes[i].name) !== b.attributes[i].value) {
        a.setAttribute(b.attributes[i].name, b.attributes[i].value);
      }
    }
  }

  // refresh fetches the page again. why tells the node what for: "wijziging" for a change the
  // stream announced, which shows what the partners answered a moment ago without asking them
  // again (a burst of changes asks them once), "klok" for the rest, which asks them. Either way
  // the reload is not refused for the person's searches (see docs/ui.md).
  function refresh(why) {
    why = why || "klok";
    if (fetching) {
      if (again !== "klok") {
        again = why;
      }
      return;
    }
    fetching = true;
    refreshed = Date.now();
    var abort = window.AbortController ? new AbortController() : null;
    var timer = abort ? window.setTimeout(function () { abort.abort(); }, timeoutMs) : 0;
    fetch(window.location.pathname + window.location.search, {
      credentials: "same-origin", headers: { Accept: "text/html", "X-Knooppunt-Live": why }, redirect: "manual",
      signal: abort ? abort.signal : undefined
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
        if (html === null || paused) {
          return; // paused while it was fetched: the picture stays as it was
        }
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("beeld-live");
        if (!fresh) {
          throw new Error("no picture in the answer");
        }
        var changed = fresh.getAttribute("data-digest") !== box.getAttribute("data-digest");
        var wasStale = box.classList.contains("kp-live--stale");
        morph(box, document.adoptNode(fresh));
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
        if (!ended && (changed || wasStale)) {
          // Said when what the picture shows changed, or when it updates again: not every
          // minute that only the ages moved.
          status.classList.remove("kp-live-status--gone");
          say(status.getAttribute("data-text") + " " + clock(lastGood));
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
          var next = again;
          again = false;
          refresh(next);
        }
      });
  }

  function gone() {
    ended = true;
    close();
    say(status.getAttribute("data-gone"));
    status.classList.add("kp-live-status--gone");
    if (pause) {
      pause.hidden = true;
    }
  }

  // Ages (7 min geleden) and which partners answer change by the clock, not by a commit: the
  // page is fetched again every data-refresh seconds while it shows, also when nothing on it
  // changed, so that a picture left open on a wall screen does not go on saying what was true
  // when it was opened. Each look asks the partners as a reload does.
  window.setInterval(function () {
    var every = Number(box.getAttribute("data-refresh")) || 0;
    if (!ended && !paused && every > 0 && document.visibilityState !== "hidden" && Date.now() - refreshed >= every * 1000) {
      refresh();
    }
  }, 1000);

  // A stream the node refuses (it answers 429 to more than a few open at once of one person, or
  // the stream's address fails otherwise) the browser does not try again by itself: the script
  // does, after 5, 10, 20 and 40 s, and then stops; the picture still updates once a minute, and
  // a reload of the page tries again.
  var refused = 0;
  var maxRefused = 4;
  var retry = 0;

  function open() {
    if (source || ended || paused) {
      return;
    }
    window.clearTimeout(retry);
    var es = new EventSource(box.getAttribute("data-live") + "&sinds=" + encodeURIComponent(box.getAttribute("data-digest") || ""));
    source = es;
    es.addEventListener("open", function () {
      refused = 0;
    });
    es.addEventListener("beeld", function (e) {
      if (e.data !== box.getAttribute("data-digest")) {
        refresh("wijziging");
      }
    });
    es.addEventListener("afgemeld", gone);
    // The stream's time is up: a new one, from what the page shows, reloads nothing.
    es.addEventListener("opnieuw", function () {
      close();
      open();
    });
    es.addEventListener("fout", function (e) {
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
    es.addEventListener("error", function () {
      if (es.readyState !== EventSource.CLOSED) {
        refresh();
        return;
      }
      // Refused: the browser gave up. Once is enough to look whether the node still answers.
      if (source !== es) {
        return;
      }
      close();
      refused++;
      if (refused === 1) {
        refresh();
      }
      if (refused <= maxRefused) {
        retry = window.setTimeout(open, 5000 * Math.pow(2, refused - 1));
      }
    });
  }

  function close() {
    window.clearTimeout(retry);
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

  // The pause button: paused, the picture stays as it is, and the status line says so.
  if (pause) {
    pause.hidden = false;
    pause.addEventListener("click", function () {
      paused = !paused;
      pause.setAttribute("aria-pressed", paused ? "true" : "false");
      pause.textContent = pause.getAttribute(paused ? "data-resume" : "data-pause");
      if (paused) {
        close();
        status.classList.remove("kp-live-status--gone");
        say(status.getAttribute("data-paused"));
      } else {
        open();
        refresh();
      }
    });
  }
})();
