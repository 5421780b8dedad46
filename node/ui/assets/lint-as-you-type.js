// Lint as you type, on the propose form: a moment after the officer stops typing, the draft goes
// to the node's linter (POST /beleid/controle, with the form's CSRF token) and its messages are
// shown under the field: the one-line summary in a live region, which a screen reader speaks when
// it changes, and the problems themselves beside it, which it does not read out at every pause in
// the typing (WCAG 4.1.3). It only helps: the form works without it, and the
// node lints again on every submit. It is loaded from this site, as the page's
// Content-Security-Policy demands; it writes text only, never markup.
(function () {
  "use strict";
  var field = document.getElementById("bron");
  var live = document.getElementById("bron-live");
  var summary = document.getElementById("bron-samenvatting");
  var details = document.getElementById("bron-lijst");
  var form = field && field.form;
  if (!field || !live || !summary || !details || !form || !window.fetch || !window.URLSearchParams) {
    return;
  }
  var csrf = form.elements.namedItem("csrf");
  var timer = null;
  var asked = 0;

  function el(name, className, text) {
    var e = document.createElement(name);
    if (className) {
      e.className = className;
    }
    if (text) {
      e.textContent = text;
    }
    return e;
  }

  function show(result) {
    summary.className = result.clean ? "kp-live__clean" : "kp-live__problems";
    if (summary.textContent !== result.summary) {
      summary.textContent = result.summary;
    }
    while (details.firstChild) {
      details.removeChild(details.firstChild);
    }
    list(result.problems);
    if (result.doubts && result.doubts.length > 0) {
      // Warnings: what the linter cannot call wrong, but the officer should check.
      details.appendChild(el("p", "kp-doubts__title", live.getAttribute("data-doubts")));
      list(result.doubts);
    }
  }

  function list(problems) {
    if (!problems || problems.length === 0) {
      return;
    }
    var ul = el("ul", "kp-problems");
    problems.forEach(function (p) {
      var item = el("li");
      if (p.where) {
        item.appendChild(el("span", "kp-problems__where", p.where));
        item.appendChild(document.createTextNode(" "));
      }
      if (p.field) {
        item.appendChild(el("code", "", p.field));
        item.appendChild(document.createTextNode(": "));
      }
      if (p.english) {
        // The node's English, when the page's language has no text for its code (review AB, AB5).
        var en = el("span", "kp-tech", p.message);
        en.setAttribute("lang", "en");
        item.appendChild(en);
      } else {
        item.appendChild(document.createTextNode(p.message));
      }
      ul.appendChild(item);
    });
    details.appendChild(ul);
  }

  function check() {
    var mine = ++asked;
    var body = new URLSearchParams();
    body.set("csrf", csrf ? csrf.value : "");
    body.set("bron", field.value);
    fetch("/beleid/controle", { method: "POST", body: body, credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        return r.ok ? r.json() : null;
      })
      .then(function (result) {
        // Only the answer to the latest draft counts.
        if (result && mine === asked) {
          show(result);
        }
      })
      .catch(function () {});
  }

  field.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(check, 600);
  });
})();
