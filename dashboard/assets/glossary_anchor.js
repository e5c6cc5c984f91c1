// Dash draws a page after the document has loaded, so the browser's own jump to an
// anchor ("/glossary#funnel") finds nothing yet: scroll to it once it has been drawn.
(function () {
  function jump() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    if (!id) {
      return;
    }
    var tries = 0;
    var timer = setInterval(function () {
      var target = document.getElementById(id);
      tries += 1;
      if (target || tries > 100) {
        clearInterval(timer);
        if (target) {
          target.scrollIntoView();
        }
      }
    }, 100);
  }
  window.addEventListener("load", jump);
  window.addEventListener("hashchange", jump);
})();
