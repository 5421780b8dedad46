// The message a page comes back with after a step: an error summary after a refused submit
// (the record form, the phase form, the policy proposal), or the box that says a step was done.
// Such a box is in the page when it loads, and a live region that comes with its text is not
// reliably spoken; so the box (data-focus, tabindex=-1) takes the focus, which has a screen
// reader read it and puts the keyboard where its links to the fields are, rather than at the top
// of the page (review AB, AB1). A page opened at one of its parts (#...) keeps it. Loaded from
// this site, as the page's Content-Security-Policy demands; without it the box is read with
// the page.
(function () {
  "use strict";
  function opensAtAPart() {
    try {
      return window.location.hash.length > 1 && !!document.getElementById(decodeURIComponent(window.location.hash.slice(1)));
    } catch (e) {
      return false;
    }
  }
  var box = document.querySelector("[data-focus]");
  if (box && !opensAtAPart()) {
    box.focus();
  }
})();
