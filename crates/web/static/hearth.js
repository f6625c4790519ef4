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

// Files page: send each chosen or dropped file on its own request, so each
// gets its own progress bar. Without this script the form posts them all.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("upload-form");
  const input = document.getElementById("file-input");
  const drop = document.getElementById("drop");
  const list = document.getElementById("upload-list");
  if (!form || !input || !list) return;

  const uploadOne = (file) => new Promise((resolve) => {
    const item = document.createElement("li");
    const label = document.createElement("span");
    label.textContent = file.name;
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    const note = document.createElement("span");
    note.className = "hint";
    item.append(label, bar, note);
    list.append(item);
    const body = new FormData();
    body.append("file", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-Hearth-CSRF", form.dataset.csrf);
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) bar.value = Math.round((e.loaded / e.total) * 100);
    });
    xhr.addEventListener("load", () => {
      const ok = xhr.status >= 200 && xhr.status < 300;
      bar.value = ok ? 100 : bar.value;
      note.textContent = ok ? " uploaded" : " failed: " + (xhr.status === 0 ? "connection lost" : xhr.status);
      item.dataset.state = ok ? "done" : "failed";
      resolve(ok);
    });
    xhr.addEventListener("error", () => {
      note.textContent = " failed: connection lost";
      item.dataset.state = "failed";
      resolve(false);
    });
    xhr.send(body);
  });

  const uploadAll = async (files) => {
    let ok = 0;
    for (const f of files) if (await uploadOne(f)) ok += 1;
    if (ok > 0) window.location.assign("/admin/files?uploaded=" + ok);
  };

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (input.files.length) uploadAll(Array.from(input.files));
  });
  if (drop) {
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      if (e.dataTransfer.files.length) uploadAll(Array.from(e.dataTransfer.files));
    });
  }
});

// Restore page: poll the job and move the bar until it finishes.
document.addEventListener("DOMContentLoaded", () => {
  const job = document.getElementById("restore-job");
  if (!job || job.dataset.running !== "true") return;
  const bar = document.getElementById("restore-progress");
  const text = document.getElementById("restore-text");
  const tick = async () => {
    try {
      const r = await fetch(job.dataset.status, { credentials: "same-origin" });
      if (!r.ok) return;
      const s = await r.json();
      bar.value = s.percent;
      text.textContent = s.text;
      if (!s.running) {
        window.location.reload();
        return;
      }
    } catch (_) { /* the next tick tries again */ }
    setTimeout(tick, 500);
  };
  setTimeout(tick, 500);
});

// Boards: live updates over server-sent events, and posting without a
// reload. EventSource reconnects by itself and sends Last-Event-ID, so the
// server replays whatever was missed while a phone's connection dropped.
document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  const threads = document.getElementById("threads");
  if (!live || !threads) return;
  const csrf = live.dataset.csrf;
  const fillTokens = (root) => {
    root.querySelectorAll('input[name="csrf"]').forEach((i) => { if (!i.value) i.value = csrf; });
  };
  const fragment = (html) => {
    const t = document.createElement("template");
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  };
  const events = new EventSource(live.dataset.events);
  events.addEventListener("post", (e) => {
    const node = fragment(e.data);
    if (!node) return;
    const id = node.dataset.post;
    if (document.getElementById("post-" + id)) return; // already shown
    fillTokens(node);
    const article = node.matches("article") ? node : node.querySelector("article");
    const parent = article && article.dataset.parent;
    if (parent) {
      const replies = document.getElementById("replies-" + parent);
      if (replies) replies.append(node);
    } else if ((new URLSearchParams(location.search).get("page") || "0") === "0") {
      // Newest threads go first, after pinned ones.
      const pinned = threads.querySelectorAll(".thread.pinned");
      const after = pinned.length ? pinned[pinned.length - 1] : null;
      if (after) after.after(node); else threads.prepend(node);
      const empty = document.getElementById("empty");
      if (empty) empty.remove();
    }
    node.classList.add("arrived");
  });
  events.addEventListener("remove", (e) => {
    const gone = document.getElementById("thread-" + e.data) || document.getElementById("post-" + e.data);
    if (gone) gone.remove();
  });
  // A post changed in place (a shared post's photo arrived): swap its
  // article, keeping any replies under it.
  events.addEventListener("replace", (e) => {
    const node = fragment(e.data);
    const fresh = node && (node.matches("article") ? node : node.querySelector("article"));
    const old = fresh && document.getElementById("post-" + fresh.dataset.post);
    if (old) old.replaceWith(fresh);
  });
  events.addEventListener("refresh", () => window.location.reload());

  // Post without leaving the page; the event stream shows the post.
  document.addEventListener("submit", async (e) => {
    const form = e.target;
    if (!(form instanceof HTMLFormElement) || !form.action.includes("/posts")) return;
    e.preventDefault();
    fillTokens(form);
    const error = form.querySelector(".error") || document.getElementById("post-error");
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      const r = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        headers: { "X-Hearth-Fetch": "1" },
        credentials: "same-origin",
      });
      if (r.ok) {
        form.reset();
        fillTokens(form);
        if (error) error.hidden = true;
      } else if (error) {
        const page = new DOMParser().parseFromString(await r.text(), "text/html");
        const message = page.querySelector(".message");
        error.textContent = message ? message.textContent : "The post was not accepted.";
        error.hidden = false;
      }
    } catch (_) {
      if (error) { error.textContent = "No connection to this Hearth. Try again."; error.hidden = false; }
    } finally {
      if (button) button.disabled = false;
    }
  });
});

// Update page: upload with a progress bar, follow the check, then follow
// the restart. Without this script the form posts normally and the page
// refreshes itself while a check runs or Hearth restarts.
document.addEventListener("DOMContentLoaded", () => {
  const pause = (ms) => new Promise((done) => setTimeout(done, ms));
  const stillWorking = (s) =>
    s.phase === "uploading" || s.phase === "checking" || (s.phase === "restarting" && !s.version);
  const pct = (s) => (s.total > 0 ? Math.min(100, Math.floor((s.done * 100) / s.total)) : 0);

  // Polls the job until the check is over, then shows the page again.
  const follow = async (url, bar, text) => {
    for (;;) {
      try {
        const r = await fetch(url, { credentials: "same-origin", cache: "no-store" });
        if (r.ok) {
          const s = await r.json();
          if (!stillWorking(s)) break;
          bar.value = pct(s);
          text.textContent = s.message;
        }
      } catch (_) { /* the next poll tries again */ }
      await pause(300);
    }
    window.location.assign("/admin/update");
  };

  const check = document.getElementById("update-check");
  if (check) {
    follow(check.dataset.status, document.getElementById("check-progress"), document.getElementById("check-text"));
  }

  const form = document.getElementById("update-form");
  const input = document.getElementById("update-file");
  const box = document.getElementById("update-progress");
  if (form && input && box) {
    const bar = box.querySelector("progress");
    const text = document.getElementById("update-percent");
    const button = form.querySelector("button[type=submit]");
    const showError = (message) => {
      let error = document.getElementById("update-error");
      if (!error) {
        error = document.createElement("p");
        error.id = "update-error";
        error.className = "error";
        error.setAttribute("role", "alert");
        form.before(error);
      }
      error.textContent = message;
      box.hidden = true;
      button.disabled = false;
    };
    form.addEventListener("submit", (e) => {
      if (!input.files.length) return;
      e.preventDefault();
      const old = document.getElementById("update-error");
      if (old) old.remove(); // a new file, a new check
      button.disabled = true;
      box.hidden = false;
      bar.value = 0;
      text.textContent = "Uploading… 0%";
      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("X-Hearth-CSRF", form.dataset.csrf);
      xhr.upload.addEventListener("progress", (p) => {
        if (!p.lengthComputable) return;
        const n = Math.floor((p.loaded * 100) / p.total);
        bar.value = n;
        text.textContent = "Uploading… " + n + "%";
      });
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          bar.value = 0;
          text.textContent = "Checking… 0%";
          follow(form.dataset.status, bar, text);
          return;
        }
        const page = new DOMParser().parseFromString(xhr.responseText, "text/html");
        const message = page.querySelector(".message");
        showError(message ? message.textContent : "The upload was refused (" + xhr.status + ").");
      });
      xhr.addEventListener("error", () => showError("The connection to this Hearth was lost. Try again."));
      xhr.send(new FormData(form));
    });
  }

  // After "Install": wait until the new version answers /healthz. If the
  // old version comes back instead, it rolled back: the page says why.
  const restart = document.getElementById("update-restart");
  if (restart) {
    const version = restart.dataset.version;
    const text = document.getElementById("restart-text");
    const started = Date.now();
    let wentDown = false;
    (async () => {
      for (;;) {
        await pause(500);
        let answer = null;
        try {
          const r = await fetch("/healthz", { cache: "no-store" });
          if (r.ok) answer = (await r.text()).trim();
          else wentDown = true;
        } catch (_) {
          wentDown = true;
        }
        if (answer === "ok " + version) {
          text.textContent = "Hearth " + version + " is running.";
          return;
        }
        if (answer && (wentDown || Date.now() - started > 10000)) {
          window.location.assign("/admin/update");
          return;
        }
      }
    })();
  }
});
