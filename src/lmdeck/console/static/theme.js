// Applies the theme chosen with the toggle (kept in localStorage) before the page paints;
// without a choice the page follows prefers-color-scheme.
(function () {
  try {
    var theme = localStorage.getItem("lmdeck-theme");
    if (theme === "dark" || theme === "light") document.documentElement.dataset.theme = theme;
  } catch (e) { /* storage disabled: follow the system theme */ }
})();
