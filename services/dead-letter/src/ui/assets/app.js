// The operator page works without this script; with it: select-all for bulk actions, buttons
// that say they are busy, and the entry's live line followed after an action.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Select every checkbox of the named group.
  for (const all of document.querySelectorAll("input[data-select-all]")) {
    const name = all.getAttribute("data-select-all");
    all.addEventListener("change", () => {
      for (const box of document.querySelectorAll(`input[type=checkbox][name="${name}"]`)) {
        box.checked = all.checked;
      }
    });
  }

  // A button that starts slow work says so and is not pressed twice.
  for (const button of document.querySelectorAll("button[data-busy]")) {
    button.form?.addEventListener("submit", () => {
      button.textContent = button.getAttribute("data-busy");
      setTimeout(() => { button.disabled = true; }, 0);
    });
  }

  // After an action, follow the entry until it is written to Xero, fails again, or a minute
  // has passed.
  const live = document.getElementById("live");
  if (live && live.hasAttribute("data-watch")) {
    const id = live.getAttribute("data-entry");
    const text = live.querySelector(".text");
    const deadline = Date.now() + 60000;
    const poll = async () => {
      try {
        const r = await fetch(`/ui/entries/${encodeURIComponent(id)}/status`, {
          credentials: "same-origin",
          headers: { accept: "application/json" },
        });
        if (r.ok) {
          const s = await r.json();
          live.setAttribute("data-state", s.state);
          text.textContent = s.text;
          const badge = document.querySelector("#status .badge");
          if (badge) {
            badge.textContent = s.status;
            badge.className = `badge s-${s.status}`;
          }
          if (s.state === "done" || s.state === "failed" || s.state === "closed") {
            live.removeAttribute("data-watch");
            return;
          }
        }
      } catch (_) {
        // A network hiccup: try again on the next tick.
      }
      if (Date.now() < deadline) {
        setTimeout(poll, 700);
      } else {
        live.removeAttribute("data-watch");
      }
    };
    setTimeout(poll, 300);
  }
});
