// The live page's "last activity 12 min ago" line, from the /api/status that live.js polls anyway.
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

  document.addEventListener("camd:status", (event) => {
    const status = event.detail; // null: the status could not be fetched, so nothing current to say
    const activity = status && status.activity;
    if (!activity) {
      line.hidden = true;
      return;
    }
    const live = status.camera && status.camera.state === "live";
    let text = "No activity seen yet";
    if (activity.active && live) text = "Activity now";
    else if (activity.seconds_since_activity !== null) text = "Last activity " + ago(activity.seconds_since_activity);
    // The status comes every 2 s: a screen reader hears the line only when it says something new.
    if (line.textContent !== text) line.textContent = text;
    line.hidden = false;
  });
})();
