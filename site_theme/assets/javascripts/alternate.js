// Material's instant navigation replaces the page content but keeps the header, so the language
// switcher would still point at the first page's translation. Each page carries its own links in a
// hidden list inside the content; copy them into the header after every navigation.
(function () {
  function refreshLanguageLinks() {
    var source = document.querySelector("[data-lesson-alternates]");
    if (!source) return;
    source.querySelectorAll("a[data-lang]").forEach(function (link) {
      var target = document.querySelector('[data-lesson-alternate="' + link.dataset.lang + '"]');
      if (target) target.setAttribute("href", link.getAttribute("href"));
    });
  }
  if (window.document$ && typeof window.document$.subscribe === "function") {
    window.document$.subscribe(refreshLanguageLinks);
  } else {
    document.addEventListener("DOMContentLoaded", refreshLanguageLinks);
  }
})();
