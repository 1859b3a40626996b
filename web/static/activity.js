// The gallery day view's activity strip: one bar per minute of the day, events underneath,
// event stills marked; a click (or Enter on a chosen hour) shows the stills around that time.
"use strict";

(function () {
  const section = document.getElementById("activity");
  if (!section) return;
  const canvas = document.getElementById("activity-strip");
  const summary = document.getElementById("activity-summary");
  const list = document.getElementById("activity-events");
  const around = document.getElementById("activity-around");
  const aroundTitle = document.getElementById("activity-around-title");
  const aroundList = document.getElementById("activity-around-list");
  const AROUND_SECONDS = 20 * 60;
  const EVENT_BAND = 10;
  let data = null;
  let stills = null;
  let dayStart = 0;
  let dayLength = 86400;
  let cursor = null; // seconds into the day the keyboard points at

  function clock(seconds, withSeconds) {
    const options = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
    if (withSeconds) options.second = "2-digit";
    return new Date(seconds * 1000).toLocaleTimeString([], options);
  }

  function percent(level) {
    return (level * 100).toFixed(level < 0.1 ? 1 : 0) + "%";
  }

  function eventStills() {
    const urls = new Set();
    for (const event of data.events) if (event.still) urls.add(event.still);
    return urls;
  }

  function draw() {
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const context = canvas.getContext("2d");
    const style = getComputedStyle(section);
    const accent = style.getPropertyValue("--accent").trim() || "#1f6feb";
    const muted = style.getPropertyValue("--muted").trim() || "#888";
    context.clearRect(0, 0, width, height);
    const band = EVENT_BAND * ratio;
    const barsHeight = height - band - 2 * ratio;
    const perMinute = width / (dayLength / 60);
    context.globalAlpha = 0.25;
    context.fillStyle = muted;
    for (let hour = 0; hour <= 24; hour += 3) {
      context.fillRect(Math.min(width - ratio, (hour * 3600 / dayLength) * width), 0, ratio, barsHeight);
    }
    context.globalAlpha = 1;
    const levels = data ? data.levels : [];
    const top = Math.max(0.02, ...levels);
    context.fillStyle = accent;
    levels.forEach((level, minute) => {
      if (level <= 0) return;
      // Square-root scale: a small change still shows, a big one does not flatten the rest.
      const bar = Math.max(2 * ratio, Math.sqrt(level / top) * barsHeight);
      // At least 2 px wide: one busy minute of 1,440 must still be seen.
      context.fillRect(minute * perMinute, barsHeight - bar, Math.max(2 * ratio, perMinute), bar);
    });
    if (!data) return;
    for (const event of data.events) {
      const start = ((event.start - dayStart) / dayLength) * width;
      const end = (((event.end === null ? data.now : event.end) - dayStart) / dayLength) * width;
      context.fillStyle = accent;
      context.globalAlpha = 0.6;
      context.fillRect(start, height - band, Math.max(3 * ratio, end - start), band);
      context.globalAlpha = 1;
      if (event.still) {
        const x = ((event.peak_time - dayStart) / dayLength) * width;
        context.fillStyle = "#e8590c";
        context.beginPath();
        context.arc(x, height - band / 2, band / 2, 0, 2 * Math.PI);
        context.fill();
      }
    }
    if (cursor !== null) {
      context.fillStyle = "#e8590c";
      context.fillRect((cursor / dayLength) * width - ratio, 0, 2 * ratio, height);
    }
  }

  function describeEvents() {
    list.replaceChildren();
    for (const event of data.events) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "linkish";
      const end = event.end === null ? "now" : clock(event.end, true);
      button.textContent = clock(event.start, true) + "–" + end + " · peak " + percent(event.peak);
      button.addEventListener("click", () => show(event.peak_time));
      item.append(button);
      if (event.still) {
        const link = document.createElement("a");
        link.href = event.still.replace(/\.jpg$/, "");
        link.textContent = "event still";
        item.append(" · ", link);
      }
      list.append(item);
    }
    const count = data.events.length;
    summary.textContent = count
      ? count + " event" + (count === 1 ? "" : "s") + " · click the strip to see the stills around a time"
      : "No activity on this day.";
  }

  function markEventStills(root) {
    const urls = eventStills();
    for (const image of root.querySelectorAll(".thumbs img")) {
      const url = image.getAttribute("src").replace(/\?thumb=1$/, "");
      const item = image.closest("li");
      if (item && urls.has(url)) {
        item.classList.add("event-still");
        const caption = item.querySelector(".caption span");
        if (caption && !caption.querySelector(".event-badge")) {
          const badge = document.createElement("span");
          badge.className = "event-badge";
          badge.textContent = "event";
          caption.append(" ", badge);
        }
      }
    }
  }

  async function show(when) {
    cursor = Math.max(0, Math.min(dayLength - 1, when - dayStart));
    draw();
    if (stills === null) {
      const response = await fetch(section.dataset.stills, { cache: "no-store" });
      stills = response.ok ? (await response.json()).stills : [];
    }
    const near = stills
      .filter((still) => Math.abs(still.time - when) <= AROUND_SECONDS)
      .sort((a, b) => a.time - b.time);
    aroundTitle.textContent = "Stills around " + clock(when) + " (" + near.length + ")";
    aroundList.replaceChildren();
    for (const still of near) {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.className = "thumb";
      link.href = still.url.replace(/\.jpg$/, "");
      const image = document.createElement("img");
      image.src = still.thumb;
      image.alt = "Still taken at " + clock(still.time);
      image.loading = "lazy";
      link.append(image);
      const caption = document.createElement("span");
      caption.className = "caption";
      const label = document.createElement("span");
      label.textContent = clock(still.time, true);
      caption.append(label);
      item.append(link, caption);
      aroundList.append(item);
    }
    if (!near.length) aroundList.textContent = "No stills within 20 minutes of that time.";
    around.hidden = false;
    markEventStills(around);
  }

  canvas.addEventListener("click", (event) => {
    const box = canvas.getBoundingClientRect();
    let when = dayStart + ((event.clientX - box.left) / box.width) * dayLength;
    // A pixel of a phone-wide strip is minutes long: a click next to an event means that event.
    const slack = (6 / box.width) * dayLength;
    const near = (data ? data.events : []).filter((item) => Math.abs(item.peak_time - when) <= slack);
    if (near.length) near.sort((a, b) => Math.abs(a.peak_time - when) - Math.abs(b.peak_time - when));
    if (near.length) when = near[0].peak_time;
    show(when);
  });
  canvas.addEventListener("keydown", (event) => {
    const step = event.shiftKey ? 3600 : 600;
    if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
      event.preventDefault();
      const from = cursor === null ? dayLength / 2 : cursor;
      cursor = Math.max(0, Math.min(dayLength - 1, from + (event.key === "ArrowRight" ? step : -step)));
      draw();
    } else if (event.key === "Enter" && cursor !== null) {
      show(dayStart + cursor);
    }
  });
  window.addEventListener("resize", draw);

  async function load() {
    try {
      const response = await fetch(section.dataset.api, { cache: "no-store" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      data = await response.json();
      const [year, month, day] = data.day.split("-").map(Number);
      dayStart = new Date(year, month - 1, day).getTime() / 1000;
      dayLength = (new Date(year, month - 1, day + 1).getTime() / 1000) - dayStart;
      section.dataset.loaded = "1";
      describeEvents();
      markEventStills(document);
      draw();
    } catch (error) {
      summary.textContent = "Could not load the activity: " + error.message;
    }
  }
  load();
  setInterval(load, 60000);
})();
