// The picture, kept up to date while it is open: the node sends an event (server-sent events,
// /beeld/live) when a record on the picture arrives, changes or is retracted; this script then
// fetches the page again and swaps the live part (#beeld-live) for the fresh one, and says so
// in a status line for screen readers. While the page is hidden (another tab) the stream is
// closed, since a browser keeps few connections to one site; when it shows again the stream
// reopens from what the page shows, and a change meanwhile comes at once. The script is loaded
// from this site, as the page's Content-Security-Policy demands, and adds nothing the page
// needs: without it, reloading the page shows the same. When the node stops answering (it
// stopped, hangs, or the network went), the line above the picture says since when it could not
// be updated, as a warning, and the picture is greyed out, until a fetch succeeds again: a
// picture on a wall screen must not go on looking current.
//
// The swap changes only what differs (morph), so that a link or table cell that keyboard focus or
// a screen reader's cursor is on stays where it is, also when a block above it comes or goes, and
// an alert that is still the same is not announced again. The line above the picture shows when it
// was last updated; what screen readers hear is a status line of its own (role=status, out of
// sight), which says that the picture was updated at most once every 30 seconds, and at once a
// warning: that the node does not answer, that the picture is incomplete (#onvolledig came) or
// complete again (it went), that a shared assessment is out of date or that a new alert is in
// force (an element with data-say came). A button pauses the updates (WCAG 2.2.2) and resumes them.
(function () {
  "use strict";
  var box = document.getElementById("beeld-live");
  var status = document.getElementById("beeld-status");
  if (!box || !status || !box.getAttribute("data-live") || !window.EventSource || !window.fetch || !window.DOMParser) {
    return;
  }
  var pause = document.getElementById("beeld-pauze");
  var paused = false;
  // Resumed after a pause: the next update says so, changed or not.
  var resumed = false;
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

  // The line people see: the status line's role=status speaks at every change of its text, so
  // the line that shows the time of each update is another one, which screen readers skip (they
  // have the status line); the status line itself is out of sight.
  var shown = document.createElement("p");
  shown.className = "kp-live-status";
  shown.id = "beeld-bijgewerkt";
  shown.setAttribute("aria-hidden", "true");
  status.parentNode.insertBefore(shown, status);
  status.classList.add("kp-visually-hidden");
  // The status line says that the picture was updated at most once every quietMs: a picture
  // whose figures change every few seconds would otherwise talk all the time.
  var quietMs = 30000;
  var spokenAt = 0;
  var pending = null;
  var pendingTimer = 0;

  // show puts text in the line people see, as a warning or not.
  function show(text, warning) {
    if (shown.textContent !== text) {
      shown.textContent = text;
    }
    shown.classList.toggle("kp-live-status--gone", !!warning);
  }

  // speak puts text in the status line, unless it says that already: a live region speaks at
  // every change, and the same warning every few seconds is noise. What is urgent (a warning, or
  // that one went) is said at once; the rest waits until quietMs after the status line last
  // spoke, and then only the last of it is said.
  function speak(text, urgent) {
    if (!urgent && Date.now() - spokenAt < quietMs) {
      pending = text;
      if (!pendingTimer) {
        pendingTimer = window.setTimeout(function () {
          pendingTimer = 0;
          if (pending !== null) {
            speak(pending, false);
          }
        }, spokenAt + quietMs - Date.now());
      }
      return;
    }
    window.clearTimeout(pendingTimer);
    pendingTimer = 0;
    pending = null;
    if (status.textContent !== text) {
      status.textContent = text;
      spokenAt = Date.now();
    }
  }

  // say shows text and speaks it at once.
  function say(text, warning) {
    show(text, warning);
    speak(text, true);
  }

  // sentences joins texts into what the status line says at once, each a sentence of its own.
  function sentences(texts) {
    texts = texts.filter(function (t) { return t; });
    return texts.map(function (t, i) {
      return i === texts.length - 1 || /[.!?]$/.test(t) ? t : t + ".";
    }).join(" ");
  }

  // told is what the status line is to say of the blocks in the picture that come or go, which a
  // screen reader would not say by itself (a live region that comes with its text says nothing):
  // the partial warning, its text when it comes and that the picture is complete again when it
  // goes; an element with data-say (a shared assessment that is out of date, an alert in force:
  // its title and region, review AB, AB3), that when it comes.
  // A block that was there when the page loaded is not said: it is read with the page.
  function watched() {
    var ids = {};
    Array.prototype.forEach.call(box.querySelectorAll("#onvolledig, [data-say][id]"), function (e) {
      ids[e.id] = e;
    });
    return ids;
  }

  function told(before, after) {
    var said = [];
    Object.keys(after).forEach(function (id) {
      if (!before[id]) {
        said.push(after[id].getAttribute("data-say") || after[id].textContent.replace(/\s+/g, " ").trim());
      }
    });
    if (before.onvolledig && !after.onvolledig) {
      said.push(status.getAttribute("data-complete") || updated());
    }
    return said;
  }

  // updated is the news that the picture was updated, with the time.
  function updated() {
    return status.getAttribute("data-text") + " " + clock(lastGood);
  }

  // stale says that the picture could not be updated since lastGood, as a warning, and greys it
  // out.
  function stale() {
    if (ended) {
      return;
    }
    say((status.getAttribute("data-stale") || "").replace("%s", clock(lastGood)), true);
    box.classList.add("kp-live--stale");
  }

  // changedCells are the figures of the sums' table whose text the last morph changed, with
  // what they said before: markChanged marks them until the next update, the earlier figure in
  // their title, so that a coordinator sees at a glance what just moved (review T, T6), and in
  // text out of sight after the figure, which a screen reader reads with it ("gewijzigd, eerder
  // 20"): the colour and the title alone do not reach it (review AB, AB4). The next morph takes
  // that text away with the rest of the mark, as the fresh page has none.
  var changedCells = [];

  function markChanged() {
    changedCells.forEach(function (c) {
      var table = c.cell.closest("table");
      var was = (table && table.getAttribute("data-was")) || "%s";
      var changed = (table && table.getAttribute("data-changed")) || was;
      c.cell.classList.add("kp-changed");
      c.cell.setAttribute("title", was.replace("%s", c.was));
      var said = document.createElement("span");
      said.className = "kp-visually-hidden";
      said.textContent = " " + changed.replace("%s", c.was);
      c.cell.insertBefore(said, c.cell.firstChild.nextSibling);
    });
    changedCells = [];
  }

  // morph makes the children of old what those of fresh are, keeping every node that is the
  // same: only the text that changed (an age, a count) and the parts that changed are replaced.
  // An element with an id is matched by it, one without by its place among those of its kind
  // (a block that came in between is new, and takes the place of nothing after it); a text node
  // by its place among the text after the same element, so that the white space of a block that
  // comes or goes shifts nothing. The kept stay where they are: only what is out of its order
  // moves, as few as can be, so that the focus and a screen reader's place inside the rest stay
  // too (moving an element takes the focus from it).
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
    var pair = now.map(function (b) {
      if (b.nodeType !== 1) {
        return null;
      }
      var a = null;
      if (b.id) {
        a = byId[b.id] && byId[b.id].tagName === b.tagName ? byId[b.id] : null;
      } else {
        var j = find(was, used, 0, function (c) {
          return c.nodeType === 1 && !c.id && kind(c) === kind(b);
        });
        a = j >= 0 ? was[j] : null;
      }
      if (!a || used.indexOf(a) >= 0) {
        return null;
      }
      used.push(a);
      return a;
    });
    // The text (and comments) after an element that is kept is matched with what followed that
    // element, in order; that after a new element is new.
    var from = 0;
    now.forEach(function (b, i) {
      if (b.nodeType === 1) {
        from = pair[i] ? was.indexOf(pair[i]) + 1 : -1;
        return;
      }
      if (from < 0) {
        return;
      }
      var j = find(was, used, from, function (c) {
        return c.nodeType === b.nodeType;
      }, true);
      if (j >= 0) {
        used.push(was[j]);
        pair[i] = was[j];
      }
    });
    var result = now.map(function (b, i) {
      var a = pair[i];
      if (!a) {
        return b;
      }
      if (a.isEqualNode(b)) {
        return a;
      }
      if (a.nodeType !== 1) {
        var cell = a.parentNode;
        if (a.nodeType === 3 && cell.matches && cell.matches(".kp-figures-table td") && cell.firstChild === a) {
          changedCells.push({ cell: cell, was: a.nodeValue.trim() });
        }
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
    // The longest run of kept nodes that is still in its order stays; the rest, and the new, go
    // each before the node that is to follow it, from the last: a node already there is left.
    var stay = inOrder(result.map(function (n) {
      return n.parentNode === old ? was.indexOf(n) : -1;
    }));
    var next = null;
    for (var k = result.length - 1; k >= 0; k--) {
      if (!stay[k] && (result[k].parentNode !== old || result[k].nextSibling !== next)) {
        old.insertBefore(result[k], next);
      }
      next = result[k];
    }
  }

  // inOrder marks (true) the longest run of the places (those of -1 aside) that increase: the
  // nodes that are already in the order they are to be in.
  function inOrder(places) {
    var tails = [];
    var before = [];
    var marks = places.map(function () { return false; });
    for (var i = 0; i < places.length; i++) {
      if (places[i] < 0) {
        continue;
      }
      var lo = 0;
      var hi = tails.length;
      while (lo < hi) {
        var mid = (lo + hi) >> 1;
        if (places[tails[mid]] < places[i]) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      before[i] = lo > 0 ? tails[lo - 1] : -1;
      tails[lo] = i;
    }
    for (var k = tails.length ? tails[tails.length - 1] : -1; k >= 0; k = before[k]) {
      marks[k] = true;
    }
    return marks;
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

  // find is the index of the first node of nodes from from on, not used yet, that ok takes; -1
  // when there is none. With toElement it looks no further than the next element.
  function find(nodes, used, from, ok, toElement) {
    for (var j = from; j < nodes.length; j++) {
      if (toElement && nodes[j].nodeType === 1) {
        break;
      }
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
        var before = watched();
        changedCells = [];
        morph(box, document.adoptNode(fresh));
        markChanged();
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
        var news = told(before, watched());
        var back = wasStale || resumed;
        resumed = false;
        if (!ended && (changed || back || news.length)) {
          // Shown when what the picture shows changed, or when it updates again: not every
          // minute that only the ages moved. Said at once when it updates again or a block came
          // or went that the status line tells of; else at most once every quietMs.
          show(updated(), false);
          if (back || news.length) {
            speak(sentences((back ? [updated()] : []).concat(news)), true);
          } else {
            speak(updated(), false);
          }
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
    say(status.getAttribute("data-gone"), true);
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
        say(status.getAttribute("data-paused"), false);
      } else {
        resumed = true;
        open();
        refresh();
      }
    });
  }
})();
