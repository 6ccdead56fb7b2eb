// The create page: on the YAML tab, a chosen file is read into the text box; on the form,
// files chosen for a secret volume are added to its box as NAME=base64 lines (the form
// posts the text; nothing leaves the browser before Create).
"use strict";

(function () {
  const chooser = document.getElementById("yaml-file");
  if (chooser) {
    const into = document.getElementById(chooser.dataset.into);
    chooser.addEventListener("change", async function () {
      const file = chooser.files && chooser.files[0];
      if (file) into.value = await file.text();
    });
  }
  const secrets = document.getElementById("secret-pick");
  if (!secrets) return;
  const box = document.getElementById(secrets.dataset.secretsInto);
  function base64(bytes) {
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(text);
  }
  secrets.addEventListener("change", async function () {
    const lines = [];
    for (const file of Array.from(secrets.files || [])) {
      lines.push(file.name + "=" + base64(new Uint8Array(await file.arrayBuffer())));
    }
    if (!lines.length) return;
    box.value = (box.value && !box.value.endsWith("\n") ? box.value + "\n" : box.value) +
      lines.join("\n");
    secrets.value = "";
  });
})();
