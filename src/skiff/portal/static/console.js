// The console page: xterm.js on the exec websocket. xterm.js (≈ 480 KB) is fetched once
// the page has loaded (its scripts and stylesheet, named by the form's data-scripts and
// data-styles, added then), so that the page's first load never waits for it; until it
// runs, the status says the terminal is starting. Connect asks the portal (a POST of the
// session, with its CSRF token) to open an exec; the answer is the websocket's path and
// a one-time password, sent first as the az CLI does; then keystrokes go out and the
// terminal's bytes come back until the command ends.
"use strict";

(function () {
  const form = document.getElementById("console-form");
  if (!form) return;
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

  // An element added to the head (a script or a stylesheet), settled when it has loaded.
  function added(tag, attributes) {
    return new Promise(function (resolve, reject) {
      const element = create(tag);
      for (const [name, value] of Object.entries(attributes)) element[name] = value;
      element.onload = resolve;
      element.onerror = function () { reject(new Error(attributes.src || attributes.href)); };
      document.head.appendChild(element);
    });
  }

  async function start() {
    try {
      // Fetched at once, run in order (async false: xterm.js, then its fit addon).
      await Promise.all([
        added("link", {rel: "stylesheet", href: form.dataset.styles}),
        ...form.dataset.scripts.split(" ").map(function (src) {
          return added("script", {src: src, async: false});
        })]);
    } catch (failure) {
      status.textContent = "The terminal could not be loaded (" + failure.message +
        "); reload the page to try again.";
      return;
    }
    if (!window.Terminal || !window.FitAddon) {
      status.textContent = "The terminal could not be started; reload the page to try again.";
      return;
    }
    run();
  }

  function run() {
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
  }

  if (document.readyState === "complete") start();
  else window.addEventListener("load", start, {once: true});
})();
