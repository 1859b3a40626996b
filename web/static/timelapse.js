// "Play this day": the stills play at once as an MJPEG stream; the VP8 timelapse replaces it
// when the server has built it (202 + Retry-After while it is being built).
"use strict";

(function () {
  const section = document.getElementById("timelapse");
  if (!section) return;
  const button = document.getElementById("timelapse-play");
  const statusLine = document.getElementById("timelapse-status");
  const preview = document.getElementById("timelapse-preview");
  const video = document.getElementById("timelapse-video");
  const download = document.getElementById("timelapse-download");
  const MAX_WAIT_MS = 10 * 60 * 1000;

  function wait(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  async function whenBuilt() {
    const started = performance.now();
    while (performance.now() - started < MAX_WAIT_MS) {
      const response = await fetch(section.dataset.webm, { method: "HEAD", cache: "no-store" });
      if (response.status === 200) return true;
      if (response.status !== 202) throw new Error("HTTP " + response.status);
      const seconds = parseInt(response.headers.get("Retry-After") || "3", 10);
      await wait(Math.max(1, Math.min(seconds, 30)) * 1000);
    }
    throw new Error("the timelapse takes too long");
  }

  button.addEventListener("click", async () => {
    button.disabled = true;
    video.hidden = true;
    preview.src = section.dataset.mjpeg + "?t=" + Date.now();
    preview.hidden = false;
    statusLine.textContent = "Playing the stills; building the video…";
    try {
      await whenBuilt();
      preview.removeAttribute("src");
      preview.hidden = true;
      video.src = section.dataset.webm;
      video.hidden = false;
      download.hidden = false;
      statusLine.textContent = "";
      section.dataset.playing = "webm";
      await video.play().catch(() => {});
    } catch (error) {
      statusLine.textContent = "No video: " + error.message + " (the stills keep playing)";
    } finally {
      button.disabled = false;
    }
  });
})();
