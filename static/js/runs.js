// Run pages: parameter rows on the trigger form, and the live status and output of a run.
(() => {
  const rows = document.querySelector("[data-param-rows] [data-rows]");
  if (rows) {
    document.addEventListener("click", (event) => {
      if (event.target.matches("[data-add-row]")) {
        const template = rows.lastElementChild.cloneNode(true);
        template.querySelectorAll("input").forEach((input) => { input.value = ""; });
        rows.appendChild(template);
        template.querySelector("input").focus();
      } else if (event.target.matches("[data-remove-row]")) {
        const row = event.target.closest("tr");
        if (rows.children.length > 1) row.remove();
        else row.querySelectorAll("input").forEach((input) => { input.value = ""; });
      }
    });
  }

  const status = document.getElementById("run-status");
  if (!status || status.dataset.finished === "true") return;
  const output = document.getElementById("run-output");
  let lastId = Number(status.dataset.lastId || 0);
  const poll = async () => {
    try {
      const response = await fetch(`${status.dataset.liveUrl}?after=${lastId}`, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(response.statusText);
      const data = await response.json();
      status.innerHTML = data.status_html;
      if (data.lines_html.trim()) {
        const stick = output.scrollTop + output.clientHeight >= output.scrollHeight - 20;
        output.insertAdjacentHTML("beforeend", data.lines_html);
        document.querySelector("[data-waiting]")?.remove();
        if (stick) output.scrollTop = output.scrollHeight;
      }
      lastId = data.last_id;
      // A flood's last lines are indexed seconds after the run ends: say so until they are in.
      const pending = document.getElementById("run-pending");
      if (pending) {
        pending.textContent = data.pending_text || "";
        pending.hidden = !data.pending_text;
      }
      if (data.finished) {
        // The result and event blocks are rendered server-side: reload once at the end.
        window.location.reload();
        return;
      }
      // New lines must be on screen within a second of being printed: the
      // worker hands them over within 0.2 s, so an idle poll waits at most 0.4 s
      // (tests/browser/test_logs.py measures it).
      setTimeout(poll, data.lines_html.trim() ? 250 : 400);
    } catch (error) {
      setTimeout(poll, 3000);
    }
  };
  setTimeout(poll, 500);
})();
