// Stills pages: arrow keys and swipes move between stills (and gallery pages); the "take a still now" button.
"use strict";

(function () {
  function follow(rel) {
    const link = document.querySelector('a[rel="' + rel + '"]');
    if (link) window.location.href = link.href;
    return Boolean(link);
  }

  // A swipe on the still: a mostly sideways stroke of at least 60 px. Right to left shows an older
  // still ("next"), like turning a page; left to right a newer one.
  const picture = document.getElementById("still");
  if (picture) {
    let start = null;
    picture.addEventListener("pointerdown", (event) => {
      if (event.pointerType !== "mouse") start = { x: event.clientX, y: event.clientY };
    });
    picture.addEventListener("pointercancel", () => { start = null; });
    picture.addEventListener("pointerup", (event) => {
      if (!start) return;
      const dx = event.clientX - start.x;
      const dy = event.clientY - start.y;
      start = null;
      if (Math.abs(dx) >= 60 && Math.abs(dx) > 2 * Math.abs(dy)) follow(dx < 0 ? "next" : "prev");
    });
  }

  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    const target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    const rel = event.key === "ArrowLeft" ? "prev" : event.key === "ArrowRight" ? "next" : null;
    if (!rel) return;
    if (follow(rel)) event.preventDefault();
  });

  const button = document.getElementById("take-still");
  const status = document.getElementById("take-status");
  if (button) {
    button.addEventListener("click", async () => {
      button.disabled = true;
      status.textContent = "Taking a still…";
      try {
        const response = await fetch(button.dataset.url, { method: "POST", cache: "no-store" });
        const body = await response.json();
        if (!response.ok) throw new Error(body.error || "HTTP " + response.status);
        status.textContent = "Saved " + body.name;
        window.location.reload();
      } catch (error) {
        status.textContent = "Could not take a still: " + error.message;
      } finally {
        button.disabled = false;
      }
    });
  }
})();
