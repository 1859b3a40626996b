// Stills pages: arrow keys move between stills (and gallery pages); the "take a still now" button.
"use strict";

(function () {
  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    const target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    const rel = event.key === "ArrowLeft" ? "prev" : event.key === "ArrowRight" ? "next" : null;
    if (!rel) return;
    const link = document.querySelector('a[rel="' + rel + '"]');
    if (link) {
      event.preventDefault();
      window.location.href = link.href;
    }
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
