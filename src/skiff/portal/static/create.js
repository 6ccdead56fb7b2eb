// The create page's YAML tab: a chosen file is read into the text box (the form posts
// the text; nothing leaves the browser before Create).
"use strict";

(function () {
  const chooser = document.getElementById("yaml-file");
  if (!chooser) return;
  const into = document.getElementById(chooser.dataset.into);
  chooser.addEventListener("change", async function () {
    const file = chooser.files && chooser.files[0];
    if (file) into.value = await file.text();
  });
})();
