// The print button of the picture: hidden without this script, shown with it, and it opens the
// browser's print dialog. The page's print style leaves out the menu and the forms and marks the
// printout with the picture's highest classification and its time (see knooppunt.css).
(function () {
  "use strict";
  document.querySelectorAll("button[data-print]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      window.print();
    });
  });
})();
