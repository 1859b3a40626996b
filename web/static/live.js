// The live view: reads the MJPEG stream with fetch, draws each JPEG on the canvas,
// reconnects by itself when the stream drops or stalls, and says what the camera is
// doing (from /api/status): Live, Warming up, Offline since ..., Reconnecting.
// It also picks the picture variant (?width=, ?quality=) that the link carries: in Auto
// it measures what arrives (bytes per second, frames per second, each frame's age from
// its X-Timestamp) and steps down when frames come late or slowly, up when there is
// room. A change opens the new variant's stream and switches when its first frame is
// drawn, so the picture never blanks.
"use strict";

(function () {
  const canvas = document.getElementById("picture");
  const statusLine = document.getElementById("status");
  const meter = document.getElementById("meter");
  const modeButtons = Array.from(document.querySelectorAll("[data-mode]"));
  const context = canvas.getContext("2d");
  const streamUrl = canvas.dataset.stream;
  const statusUrl = canvas.dataset.status;
  const STATUS_EVERY_MS = 2000;
  const STALL_MS = 6000;
  const RETRY_MIN_MS = 500;
  const RETRY_MAX_MS = 10000;
  const MODE_KEY = "camd.live.mode";
  const decoder = new TextDecoder("latin1");

  // The ladder Auto moves on, smallest first; "full" is the camera's own picture. 480 at low quality
  // costs about what 320 at the default does (5.5 KB a frame of 720p), with more picture.
  const LADDER = [
    { width: 320, quality: "low" },
    { width: 480, quality: "low" },
    { width: 480, quality: "" },
    { width: 640, quality: "" },
    { width: 960, quality: "" },
    { width: "full", quality: "" },
  ];
  const SAVER = { width: 320, quality: "low", fps: 10 }; // about a quarter of a Mbit/s
  const FULL = LADDER.length - 1;
  const WINDOW_MS = 3000; // what the figures are measured over
  const SETTLE_MS = 4000; // time on a new variant before Auto judges it
  const DRAIN_MS = 1500; // its first frames queued behind the old stream's on the link: not judged
  const UP_AFTER_MS = 8000; // time on a good variant before trying the next one up
  const LATE_MS = 350; // a frame older than this on arrival is late
  const GOOD_MS = 200;
  const MIN_FPS = 12;
  const CAPACITY_MS = 120000; // how long what a full link carried is trusted before Auto tries more again

  let retryMs = RETRY_MIN_MS;
  let frames = 0;
  let lastFrameAt = 0;
  let lastTimestamp = 0;
  let drawing = false;
  let pending = null;
  let connected = false; // the stream's response has arrived and frames flow
  let reconnectReason = "";
  let camera = null; // the camera part of /api/status, refreshed every STATUS_EVERY_MS
  let sourceFps = 0; // the camera's frame rate, from /api/status
  let mode = readMode(); // "auto", "saver" or "full"
  let step = -1; // the ladder step in Auto (-1 until the first choice)
  let active = null; // the stream being drawn
  let candidate = null; // a stream being opened to replace it
  let samples = []; // { at, bytes, age } of the active stream's parts, for the last WINDOW_MS
  let minAge = Infinity; // the lowest age seen: the clock offset to the server, plus the fastest delivery
  const blockedUntil = LADDER.map(() => 0); // a step that failed is not retried before this
  const failures = LADDER.map(() => 0);
  let capacity = 0; // bytes per second the link carried when it was full (frames came late)
  let capacityAt = 0;

  function readMode() {
    try {
      const saved = window.localStorage.getItem(MODE_KEY);
      if (saved === "auto" || saved === "saver" || saved === "full") return saved;
    } catch (error) {
      // Storage may be off (private mode): Auto, and the choice lasts for this page only.
    }
    return "auto";
  }

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

  // Others on the page (the activity line) hear each status, or null when it could not be had.
  function announce(body) {
    document.dispatchEvent(new CustomEvent("camd:status", { detail: body }));
  }

  async function pollStatus() {
    try {
      const response = await fetch(statusUrl, { cache: "no-store", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const body = await response.json();
      camera = body.camera;
      sourceFps = body.capture_fps || sourceFps;
      render(); // say a change of state at once, not at the next tick
      announce(body);
    } catch (error) {
      // The stream's own reconnect says the rest; keep the last known camera state.
      announce(null);
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
      yield {
        jpeg: buffer.slice(bodyStart, bodyStart + size),
        timestamp: stamp ? parseFloat(stamp[1]) : 0,
        bytes: bodyStart + size + 2,
      };
      buffer = buffer.subarray(bodyStart + size);
    }
    state.buffer = buffer.slice();
  }

  // --- drawing ---------------------------------------------------------------------

  async function draw(part) {
    if (drawing) {
      pending = part; // only the newest waiting frame is kept
      return;
    }
    drawing = true;
    try {
      const bitmap = await createImageBitmap(new Blob([part.jpeg], { type: "image/jpeg" }));
      if (part.stream !== active) {
        bitmap.close(); // a stream replaced while this frame decoded
      } else {
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
      }
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

  // --- streams -----------------------------------------------------------------------

  function variantUrl(variant) {
    const query = new URLSearchParams();
    if (variant.width !== "full") query.set("width", String(variant.width));
    if (variant.quality) query.set("quality", variant.quality);
    if (variant.fps) query.set("fps", String(variant.fps));
    const text = query.toString();
    return text ? streamUrl + "?" + text : streamUrl;
  }

  function wanted() {
    if (mode === "saver") return SAVER;
    if (mode === "full" || step < 0) return LADDER[FULL];
    return LADDER[step];
  }

  // One stream response, read part by part; `onPart` gets each one, `onEnd` the reason it stopped.
  function open(variant, onOpen, onPart, onEnd) {
    const stream = { variant, controller: new AbortController(), since: performance.now(), ended: false };
    (async () => {
      let reason = "stream ended";
      try {
        const response = await fetch(variantUrl(variant), { signal: stream.controller.signal, cache: "no-store" });
        if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
        onOpen(stream);
        const reader = response.body.getReader();
        const state = { buffer: new Uint8Array(0) };
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          for (const part of parts(state, value)) {
            part.stream = stream;
            onPart(stream, part);
          }
        }
      } catch (error) {
        reason = stream.controller.signal.aborted ? "aborted" : error.message;
      }
      stream.ended = true;
      onEnd(stream, reason);
    })();
    return stream;
  }

  function close(stream) {
    if (stream && !stream.ended) stream.controller.abort();
  }

  function opened(stream) {
    if (stream !== active) return;
    connected = true;
    reconnectReason = "";
    retryMs = RETRY_MIN_MS;
    pollStatus(); // a new connection may be a restarted camd: learn its camera state now
  }

  function received(stream, part) {
    const now = performance.now();
    if (stream === candidate) {
      // The new variant's first frame: show it from now on and let the old stream go.
      const old = active;
      active = candidate;
      candidate = null;
      active.since = now;
      samples = [];
      close(old);
    }
    if (stream !== active) return;
    lastFrameAt = now;
    const age = Date.now() - part.timestamp * 1000;
    minAge = Math.min(minAge, age);
    samples.push({ at: now, bytes: part.bytes, age });
    draw(part);
  }

  function ended(stream, reason) {
    if (stream === candidate) {
      candidate = null; // the switch failed: keep what is on screen and let Auto decide again
      return;
    }
    if (stream !== active) return;
    active = null;
    connected = false;
    reconnectReason = reason === "aborted" ? "no picture for a while" : reason;
    render();
    setTimeout(start, retryMs);
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  }

  // The first stream, and each one after a drop: no switching, the variant is opened directly.
  function start() {
    if (active) return;
    lastFrameAt = performance.now();
    active = open(wanted(), opened, received, ended);
    samples = [];
  }

  // Move to another variant without a visible reconnect: the old stream stays on screen until the new one draws.
  function switchTo(variant) {
    if (!active) {
      start();
      return;
    }
    if (variantUrl(variant) === variantUrl(active.variant) && !candidate) return;
    close(candidate);
    candidate = open(variant, opened, received, ended);
  }

  // --- measuring and choosing ----------------------------------------------------------

  function percentile(values, fraction) {
    if (!values.length) return 0;
    const sorted = values.slice().sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))];
  }

  // The figures of the active stream over the last WINDOW_MS.
  function measure(now, from) {
    samples = samples.filter((sample) => now - sample.at <= WINDOW_MS);
    const start = Math.max(from, now - WINDOW_MS);
    const counted = samples.filter((sample) => sample.at >= start);
    const span = Math.max(0, now - start) / 1000;
    const bytes = counted.reduce((sum, sample) => sum + sample.bytes, 0);
    const ages = counted.map((sample) => sample.age);
    // A phone's clock is not the camera's: the lowest age seen (the clock offset plus the fastest
    // delivery) stands for "no delay", and the delay of each frame is measured from it.
    const delays = ages.map((age) => age - minAge);
    return {
      fps: span > 0 ? counted.length / span : 0,
      bytesPerSecond: span > 0 ? bytes / span : 0,
      bytesPerFrame: counted.length ? bytes / counted.length : 0,
      ageP95: Math.round(percentile(delays, 0.95)),
      ageP50: Math.round(percentile(delays, 0.5)),
      rawAgeP95: Math.round(percentile(ages, 0.95)),
      span,
    };
  }

  // The widest ladder step worth sending to this screen: no wider than the canvas's pixels.
  function screenStep() {
    const pixels = canvas.getBoundingClientRect().width * (window.devicePixelRatio || 1);
    for (let i = 1; i < FULL; i++) {
      if (likeFull(i)) return FULL;
      if (LADDER[i].width >= pixels) {
        while (i + 1 < FULL && LADDER[i + 1].width === LADDER[i].width) i += 1; // that width's best quality
        return i;
      }
    }
    return FULL;
  }

  function sourceWidth() {
    return (camera && camera.width) || 0;
  }

  function widthOf(index) {
    const width = LADDER[index].width;
    const source = sourceWidth();
    return width === "full" ? source || canvas.width : source ? Math.min(width, source) : width;
  }

  // A step that the camera's width makes the same as the full picture: Auto skips it.
  function likeFull(index) {
    const width = LADDER[index].width;
    return index !== FULL && !LADDER[index].quality && sourceWidth() > 0 && width >= sourceWidth();
  }

  // A JPEG's size grows more slowly than its pixel count (headers, edges, text): about width^1.5 here;
  // "low" quality about halves it.
  function relativeSize(index) {
    return widthOf(index) ** 1.5 * (LADDER[index].quality === "low" ? 0.5 : 1);
  }

  // Whether a step up is likely to fit in what the link carried when it was last full (if that is recent).
  function fits(next, figures, now) {
    if (!capacity || now - capacityAt > CAPACITY_MS) return true; // unknown: try it
    return (figures.bytesPerSecond * relativeSize(next)) / relativeSize(step) <= 0.8 * capacity;
  }

  function decide(now, figures) {
    if (mode !== "auto" || !active || candidate || now - active.since < SETTLE_MS) return;
    if (!camera || camera.state !== "live") return; // the placeholder's pace says nothing about the link
    const rate = sourceFps || figures.fps;
    const late = figures.ageP95 > LATE_MS;
    const slow = figures.fps < Math.min(MIN_FPS, 0.7 * rate);
    const cap = screenStep();
    if (figures.bytesPerSecond > capacity && !late) capacity = figures.bytesPerSecond; // it carried more
    if ((late || slow) && step > 0) {
      capacity = figures.bytesPerSecond;
      capacityAt = now;
      failures[step] += 1;
      blockedUntil[step] = now + Math.min(300000, 15000 * 2 ** (failures[step] - 1));
      // When the link is full, what arrives is what it carries: aim for 70% of it at the camera's rate.
      const budget = (0.7 * figures.bytesPerSecond) / Math.max(rate, 1);
      let next = step - 1;
      while (next > 0 && (likeFull(next) || (figures.bytesPerFrame * relativeSize(next)) / relativeSize(step) > budget)) {
        next -= 1;
      }
      step = next;
      switchTo(LADDER[step]);
    } else if (step > cap) {
      step = cap; // the window got smaller: no point sending more pixels than it shows
      switchTo(LADDER[step]);
    } else if (
      step < cap &&
      now - active.since >= UP_AFTER_MS &&
      figures.ageP95 < GOOD_MS &&
      figures.fps >= 0.85 * rate &&
      blockedUntil[step + 1] <= now &&
      fits(step + 1, figures, now)
    ) {
      step += 1;
      while (step < FULL && likeFull(step)) step += 1;
      switchTo(LADDER[step]);
    }
  }

  function showFigures(figures) {
    const width = canvas.width;
    const height = canvas.height;
    const mbps = (figures.bytesPerSecond * 8) / 1e6;
    meter.textContent = active && frames
      ? width + "×" + height + " · " + Math.round(figures.fps) + " fps · " + mbps.toFixed(mbps < 1 ? 2 : 1) + " Mbit/s"
      : "";
    // For tests and the curious: what the page measures, and the variant it settled on.
    canvas.dataset.variant = active ? variantUrl(active.variant).slice(streamUrl.length) || "full" : "";
    canvas.dataset.measured = JSON.stringify({
      fps: Math.round(figures.fps * 10) / 10,
      mbps: Math.round(mbps * 1000) / 1000,
      ageP50: figures.ageP50,
      ageP95: figures.ageP95,
      rawAgeP95: figures.rawAgeP95,
      span: Math.round(figures.span * 10) / 10,
      width,
      height,
      mode,
      step,
    });
  }

  function setMode(next) {
    mode = next;
    try {
      window.localStorage.setItem(MODE_KEY, mode);
    } catch (error) {
      // Not remembered; still used on this page.
    }
    for (const button of modeButtons) button.setAttribute("aria-pressed", String(button.dataset.mode === mode));
    if (mode === "auto") step = screenStep();
    switchTo(wanted());
  }

  // Once a second: the frame rate the page actually shows, the figures, and Auto's choice.
  let framesBefore = 0;
  setInterval(() => {
    fpsShown = frames - framesBefore;
    framesBefore = frames;
    const now = performance.now();
    if (active && now - lastFrameAt > STALL_MS) close(active); // a stalled stream: reconnect
    const since = active ? active.since : now;
    showFigures(measure(now, since));
    decide(now, measure(now, since + DRAIN_MS));
    render();
  }, 1000);
  pollStatus();
  setInterval(pollStatus, STATUS_EVERY_MS);

  document.getElementById("fullscreen").addEventListener("click", () => {
    if (canvas.requestFullscreen) canvas.requestFullscreen();
  });
  for (const button of modeButtons) {
    button.setAttribute("aria-pressed", String(button.dataset.mode === mode));
    button.addEventListener("click", () => setMode(button.dataset.mode));
  }

  canvas.dataset.frames = "0";
  setInterval(() => { canvas.dataset.frames = String(frames); }, 250);
  if (mode === "auto") step = screenStep();
  start();
})();
