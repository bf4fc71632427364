// The console's only script (the CSP allows no inline script): local times, copy buttons, and a running
// job's tokens as its events arrive. Every page works without it.
"use strict";

function showLocalTimes() {
  for (const element of document.querySelectorAll("time[datetime]")) {
    const moment = new Date(element.dateTime);
    if (!Number.isNaN(moment.getTime())) {
      element.textContent = moment.toLocaleString();
      element.title = element.dateTime;
    }
  }
}

function enableCopyButtons() {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      try {
        await navigator.clipboard.writeText(source.textContent);
        button.textContent = "Copied";
      } catch {
        // No clipboard access (plain http, permissions): select the text for the user to copy.
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        button.textContent = "Selected: press Ctrl+C";
      }
    });
  }
}

function followJob() {
  const live = document.getElementById("job-live");
  const output = document.getElementById("job-tokens");
  const status = document.getElementById("job-status");
  if (!live || !output) return;
  const events = new EventSource(live.dataset.eventsUrl);
  const end = (text) => {
    events.close();
    if (status) status.textContent = text;
    live.textContent = "The job has ended.";
    const cancel = document.getElementById("cancel-form");
    if (cancel) cancel.hidden = true;
  };
  events.addEventListener("start", () => { if (status) status.textContent = "running"; });
  events.addEventListener("reset", () => { output.textContent = ""; });
  events.addEventListener("token", (event) => { output.textContent += JSON.parse(event.data).text || ""; });
  events.addEventListener("done", () => end("succeeded"));
  events.addEventListener("cancelled", () => end("cancelled"));
  events.addEventListener("error", (event) => {
    if (event.data) end("failed");  // an error event from the job; a dropped connection has no data and retries
  });
}

document.addEventListener("DOMContentLoaded", () => {
  showLocalTimes();
  enableCopyButtons();
  followJob();
});
