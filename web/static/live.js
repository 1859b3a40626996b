// The live view: reads the MJPEG stream with fetch, draws each JPEG on the canvas,
// reconnects by itself when the stream drops or stalls, and says what the camera is
// doing (from /api/status): Live, Warming up, Offline since ..., Reconnecting.
"use strict";

(function () {
  const canvas = document.getElementById("picture");
  const statusLine = document.getElementById("status");
  const context = canvas.getContext("2d");
  const streamUrl = canvas.dataset.stream;
  const statusUrl = canvas.dataset.status;
  const STATUS_EVERY_MS = 2000;
  const STALL_MS = 6000;
  const RETRY_MIN_MS = 500;
  const RETRY_MAX_MS = 10000;
  const decoder = new TextDecoder("latin1");

  let retryMs = RETRY_MIN_MS;
  let frames = 0;
  let lastFrameAt = 0;
  let lastTimestamp = 0;
  let drawing = false;
  let pending = null;
  let connected = false; // the stream's response has arrived and frames flow
  let reconnectReason = "";
  let camera = null; // the camera part of /api/status, refreshed every STATUS_EVERY_MS

  function two(number) {
    return String(number).padStart(2, "0");
  }

  // One clock style on every page: 24-hour, like the stills pages; the date only when it is not today.
  function clock(seconds, withSeconds) {
    const when = new Date(seconds * 1000);
    const time = two(when.getHours()) + ":" + two(when.getMinutes()) + (withSeconds ? ":" + two(when.getSeconds()) : "");
    const today = new Date();
    if (when.toDateString() === today.toDateString()) return time;
    return when.getFullYear() + "-" + two(when.getMonth() + 1) + "-" + two(when.getDate()) + " " + time;
  }

  const snapshotButton = document.getElementById("snapshot");

  function setStatus(state, text) {
    statusLine.dataset.state = state;
    statusLine.textContent = text;
    // A snapshot exists only of a live picture: the button waits for one.
    snapshotButton.setAttribute("aria-disabled", state === "live" ? "false" : "true");
  }

  // What the line says, from the stream connection and the camera's own state.
  let fpsShown = 0; // frames drawn in the last whole second

  function render() {
    const fps = fpsShown;
    if (!connected) {
      setStatus("reconnecting", "Reconnecting…" + (reconnectReason ? " (" + reconnectReason + ")" : ""));
    } else if (camera && camera.state === "offline") {
      setStatus("offline", "Offline since " + clock(camera.since, false) + " · retrying");
    } else if (camera && (camera.state === "warming_up" || camera.state === "starting")) {
      setStatus("warming_up", "Warming up…");
    } else if (camera && camera.state === "live" && lastTimestamp) {
      setStatus("live", "Live · " + (fps ? fps + " fps · " : "") + clock(lastTimestamp, true));
    } else {
      setStatus("connecting", "Connecting…");
    }
  }

  async function pollStatus() {
    try {
      const response = await fetch(statusUrl, { cache: "no-store", headers: { Accept: "application/json" } });
      if (response.ok) {
        camera = (await response.json()).camera;
        render(); // say a change of state at once, not at the next tick
      }
    } catch (error) {
      // The stream's own reconnect says the rest; keep the last known camera state.
    }
  }

  function findSequence(buffer, start, sequence) {
    outer: for (let i = start; i <= buffer.length - sequence.length; i++) {
      for (let j = 0; j < sequence.length; j++) {
        if (buffer[i + j] !== sequence[j]) continue outer;
      }
      return i;
    }
    return -1;
  }

  const HEADER_END = [13, 10, 13, 10];

  // Splits the byte stream into parts using each part's Content-Length.
  function* parts(state, chunk) {
    const joined = new Uint8Array(state.buffer.length + chunk.length);
    joined.set(state.buffer);
    joined.set(chunk, state.buffer.length);
    let buffer = joined;
    for (;;) {
      const end = findSequence(buffer, 0, HEADER_END);
      if (end < 0) break;
      const head = decoder.decode(buffer.subarray(0, end));
      const length = /content-length:\s*(\d+)/i.exec(head);
      if (!length) {
        buffer = buffer.subarray(end + 4);
        continue;
      }
      const size = parseInt(length[1], 10);
      const bodyStart = end + 4;
      if (buffer.length < bodyStart + size) break;
      const stamp = /x-timestamp:\s*([\d.]+)/i.exec(head);
      yield { jpeg: buffer.slice(bodyStart, bodyStart + size), timestamp: stamp ? parseFloat(stamp[1]) : 0 };
      buffer = buffer.subarray(bodyStart + size);
    }
    state.buffer = buffer.slice();
  }

  async function draw(part) {
    if (drawing) {
      pending = part; // only the newest waiting frame is kept
      return;
    }
    drawing = true;
    try {
      const bitmap = await createImageBitmap(new Blob([part.jpeg], { type: "image/jpeg" }));
      if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
        canvas.width = bitmap.width;
        canvas.height = bitmap.height;
      }
      context.drawImage(bitmap, 0, 0);
      bitmap.close();
      frames += 1;
      const first = !lastTimestamp;
      lastTimestamp = part.timestamp;
      if (first) render();
    } catch (error) {
      // A part that does not decode is skipped; the next one replaces it.
    } finally {
      drawing = false;
    }
    if (pending) {
      const next = pending;
      pending = null;
      draw(next);
    }
  }

  async function connect() {
    const controller = new AbortController();
    const watchdog = setInterval(() => {
      if (performance.now() - lastFrameAt > STALL_MS) controller.abort();
    }, 1000);
    lastFrameAt = performance.now();
    try {
      const response = await fetch(streamUrl, { signal: controller.signal, cache: "no-store" });
      if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
      connected = true;
      reconnectReason = "";
      pollStatus(); // a new connection may be a restarted camd: learn its camera state now
      retryMs = RETRY_MIN_MS;
      const reader = response.body.getReader();
      const state = { buffer: new Uint8Array(0) };
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        for (const part of parts(state, value)) {
          lastFrameAt = performance.now();
          draw(part);
        }
      }
      throw new Error("stream ended");
    } catch (error) {
      connected = false;
      reconnectReason = controller.signal.aborted ? "no picture for a while" : error.message;
      render();
    } finally {
      clearInterval(watchdog);
    }
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  }

  // Once a second: the frame rate the page actually shows and how old the picture is.
  let framesBefore = 0;
  setInterval(() => {
    fpsShown = frames - framesBefore;
    render();
    framesBefore = frames;
  }, 1000);
  pollStatus();
  setInterval(pollStatus, STATUS_EVERY_MS);

  document.getElementById("fullscreen").addEventListener("click", () => {
    if (canvas.requestFullscreen) canvas.requestFullscreen();
  });

  canvas.dataset.frames = "0";
  setInterval(() => { canvas.dataset.frames = String(frames); }, 250);
  connect();
})();
