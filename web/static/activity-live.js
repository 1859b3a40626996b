// The live page's "last activity 12 min ago" line, from /api/activity, refreshed every 30 s.
"use strict";

(function () {
  const line = document.getElementById("last-activity");
  if (!line) return;

  function ago(seconds) {
    if (seconds < 60) return "just now";
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min ago";
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return hours + " h " + (minutes % 60) + " min ago";
    return Math.floor(hours / 24) + " days ago";
  }

  async function refresh() {
    try {
      const response = await fetch(line.dataset.api, { cache: "no-store" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const body = await response.json();
      const going = body.events.some((event) => event.end === null);
      if (going) line.textContent = "Activity now";
      else if (body.last_activity) line.textContent = "Last activity " + ago(body.now - body.last_activity);
      else line.textContent = "No activity seen yet";
      line.hidden = false;
    } catch (error) {
      line.hidden = true;
    }
  }
  refresh();
  setInterval(refresh, 30000);
})();
