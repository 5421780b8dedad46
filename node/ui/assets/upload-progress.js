// The upload of a file of records, with its progress: the form is sent with XMLHttpRequest so
// that the bar (<progress id="voortgang">) follows the bytes sent, then says the node is
// storing the rows; once the node answers, the browser goes to the report it redirected to. It
// is loaded from this site, as the page's Content-Security-Policy demands; without it the form
// posts the same file and shows the same report.
(function () {
  "use strict";
  var form = document.getElementById("laden");
  var box = document.getElementById("voortgang-vak");
  var bar = document.getElementById("voortgang");
  var text = document.getElementById("voortgang-tekst");
  var button = document.getElementById("laden-knop");
  if (!form || !box || !bar || !text || !window.FormData || !window.XMLHttpRequest) {
    return;
  }
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    box.hidden = false;
    button.disabled = true;
    bar.value = 0;
    text.textContent = text.getAttribute("data-sending");
    xhr.upload.addEventListener("progress", function (p) {
      if (p.lengthComputable) {
        bar.value = Math.round((p.loaded / p.total) * 100);
      }
    });
    xhr.upload.addEventListener("load", function () {
      // Sent: the node reads and stores the rows now; the bar shows no amount for that.
      bar.removeAttribute("value");
      text.textContent = text.getAttribute("data-processing");
    });
    xhr.addEventListener("load", function () {
      if (xhr.status === 200 && xhr.responseURL && xhr.responseURL.indexOf("/records/importeren/verslag") >= 0) {
        window.location.assign(xhr.responseURL);
        return;
      }
      // A refusal (too large, not a file of records): the node's page says why.
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      var main = doc.getElementById("inhoud");
      var here = document.getElementById("inhoud");
      if (main && here) {
        here.replaceChildren.apply(here, Array.prototype.slice.call(document.adoptNode(main).childNodes));
        // The window says what the page says (Fout: …), and the focus, which was on the button
        // now gone, goes to the page's first heading, which a screen reader reads from.
        document.title = doc.title;
        var heading = here.querySelector("h1");
        if (heading) {
          heading.setAttribute("tabindex", "-1");
          heading.focus();
        }
        return;
      }
      button.disabled = false;
      text.textContent = text.getAttribute("data-failed");
    });
    xhr.addEventListener("error", function () {
      button.disabled = false;
      text.textContent = text.getAttribute("data-failed");
    });
    xhr.send(new FormData(form));
  });
})();
