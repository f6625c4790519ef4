// Hearth: progressive enhancement only. Every page works without this file.
"use strict";

// A Raspberry Pi has no battery-backed clock and the hotspot has no
// internet, so after a power cut the device may be far behind. When the
// admin's browser is clearly ahead, reveal the "set the clock" form and
// fill in the browser's time as it is submitted.
document.addEventListener("DOMContentLoaded", () => {
  const clock = document.getElementById("clock");
  const form = document.getElementById("clock-fix");
  if (!clock || !form) return;
  const serverMs = Number(clock.dataset.serverMs);
  const behindMs = 2 * 60 * 1000; // matches CLOCK_BEHIND_MS on the server
  if (Date.now() - serverMs > behindMs) {
    form.hidden = false;
  }
  form.addEventListener("submit", () => {
    document.getElementById("browser-ms").value = String(Date.now());
  });
});
