// The console page: xterm.js on the exec websocket. Connect asks the portal (a POST of
// the session, with its CSRF token) to open an exec; the answer is the websocket's path
// and a one-time password, sent first as the az CLI does; then keystrokes go out and
// the terminal's bytes come back until the command ends.
"use strict";

(function () {
  const form = document.getElementById("console-form");
  if (!form || !window.Terminal) return;
  // xterm adds <style> elements; the page's policy admits only those with its nonce.
  const nonce = form.dataset.nonce;
  const create = document.createElement.bind(document);
  document.createElement = function (name, options) {
    const made = create(name, options);
    if (String(name).toLowerCase() === "style") made.setAttribute("nonce", nonce);
    return made;
  };

  const status = document.getElementById("console-status");
  const button = document.getElementById("console-connect");
  const term = new window.Terminal({convertEol: false, cursorBlink: true, fontSize: 14,
                                    screenReaderMode: true});
  const fit = new window.FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(document.getElementById("terminal"));
  fit.fit();
  let socket = null;

  term.onData(function (data) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(data);
  });
  window.addEventListener("resize", function () { fit.fit(); });

  async function connect() {
    if (socket) socket.close();
    button.disabled = true;
    status.textContent = "Connecting…";
    const body = new URLSearchParams(new FormData(form));
    body.set("rows", String(term.rows));
    body.set("cols", String(term.cols));
    let answer;
    try {
      const reply = await fetch(form.action, {method: "POST", body: body,
                                              credentials: "same-origin",
                                              headers: {Accept: "application/json"}});
      answer = await reply.json();
      if (!reply.ok) {
        status.textContent = (answer.error && answer.error.message) || ("HTTP " + reply.status);
        button.disabled = false;
        return;
      }
    } catch (failure) {
      status.textContent = "The console could not be opened: " + failure;
      button.disabled = false;
      return;
    }
    const ws = new WebSocket("wss://" + location.host + answer.path);
    ws.binaryType = "arraybuffer";
    socket = ws;
    ws.onopen = function () {
      ws.send(answer.password);
      status.textContent = "Connected.";
      button.disabled = false;
      term.focus();
    };
    ws.onmessage = function (event) {
      term.write(typeof event.data === "string" ? event.data : new Uint8Array(event.data));
    };
    ws.onclose = function (event) {
      if (socket === ws) socket = null;
      status.textContent = "Disconnected" + (event.reason ? " (" + event.reason + ")" : "") + ".";
      button.disabled = false;
    };
  }

  form.addEventListener("submit", function (event) { event.preventDefault(); connect(); });
  connect();
})();
