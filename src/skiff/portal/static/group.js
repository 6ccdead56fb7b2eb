// A group page's logs: the chosen container's last lines, read through the portal's
// session (GET /portal/arm/...), again every two seconds while "Follow" is ticked.
"use strict";

(function () {
  const form = document.getElementById("logs-form");
  if (!form) return;
  const output = document.getElementById("log-output");
  const container = document.getElementById("log-container");
  const tail = document.getElementById("log-tail");
  const follow = document.getElementById("log-follow");
  const previous = document.getElementById("log-previous");
  const download = document.getElementById("log-download");
  const FOLLOW_MS = 2000;
  const READ_TIMEOUT_MS = 5000;
  let timer = null;
  let busy = false;

  function url() {
    const lines = Math.max(1, Math.min(10000, parseInt(tail.value, 10) || 200));
    const query = new URLSearchParams({"api-version": form.dataset.version, tail: String(lines)});
    if (previous.checked) query.set("previous", "true");
    return form.dataset.api + "/containers/" + encodeURIComponent(container.value) +
      "/logs?" + query.toString();
  }

  async function load() {
    if (busy) return;
    busy = true;
    // A read that hangs (a connection the host's network change left waiting) is given
    // up, so that the next round of "Follow" reads again.
    const abandon = new AbortController();
    const deadline = setTimeout(function () { abandon.abort(); }, READ_TIMEOUT_MS);
    try {
      const answer = await fetch(url(), {credentials: "same-origin", signal: abandon.signal,
                                         headers: {Accept: "application/json"}});
      const body = await answer.json();
      if (!answer.ok) {
        output.textContent = (body.error && body.error.message) || ("HTTP " + answer.status);
        return;
      }
      const atEnd = output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
      output.textContent = body.content || "(no output yet)";
      if (atEnd) output.scrollTop = output.scrollHeight;
    } catch (failure) {
      output.textContent = "The logs could not be read: " + failure;
    } finally {
      clearTimeout(deadline);
      busy = false;
    }
  }

  function schedule() {
    if (timer !== null) clearInterval(timer);
    timer = follow.checked ? setInterval(load, FOLLOW_MS) : null;
  }

  function point() {
    download.href = download.dataset.base + encodeURIComponent(container.value) + "/logs" +
      (previous.checked ? "?previous=1" : "");
  }

  previous.addEventListener("change", function () { point(); load(); });
  container.addEventListener("change", point);
  form.addEventListener("submit", function (event) { event.preventDefault(); load(); });
  container.addEventListener("change", load);
  follow.addEventListener("change", schedule);
  load();
  schedule();
})();
