// The Logs explorer: presets versus custom times, a clean address on submit, and "Load more" in place.
(() => {
  const form = document.querySelector("[data-logs-form]");
  if (!form) return;
  const range = form.elements.range;
  const times = form.querySelectorAll("[data-time]");

  // A preset decides the times; typing a time makes the range custom.
  const sync = () => times.forEach((input) => { input.readOnly = range.value !== "custom"; });
  range.addEventListener("change", () => {
    sync();
    if (range.value !== "custom") form.requestSubmit();
    else times[0].focus();
  });
  times.forEach((input) => input.addEventListener("focus", () => {
    if (range.value !== "custom") { range.value = "custom"; sync(); }
  }));
  sync();

  // Only the keys that mean something go into the address, so a shared link reads well.
  // "Custom" stays when a time is missing, so the page can say which.
  form.addEventListener("submit", () => {
    const timesGiven = [...times].every((input) => input.value.trim() !== "");
    for (const field of form.elements) {
      if (!field.name) continue;
      const unneeded = field.value.trim() === ""
        || (field.name === "range" && field.value === "custom" && timesGiven)
        || (field.name === "sort" && field.value === "-time")
        || (field.dataset.time !== undefined && range.value !== "custom");
      if (unneeded) field.disabled = true;
    }
  });
  // Coming back with the browser's Back button: the fields must be usable again.
  window.addEventListener("pageshow", () => { for (const field of form.elements) field.disabled = false; sync(); });

  document.addEventListener("click", async (event) => {
    const link = event.target.closest("[data-load-more]");
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey) return;
    event.preventDefault();
    if (link.getAttribute("aria-busy") === "true") return;
    link.setAttribute("aria-busy", "true");
    link.textContent = "Loading…";
    const searched = document.querySelector("[data-searched]");
    try {
      const response = await fetch(link.href, { headers: { "X-Logs-Fragment": "rows", Accept: "application/json" } });
      const data = await response.json();
      if (!response.ok) {
        searched.textContent = Object.values(data.errors || {}).flat().join(" ") || "The next page could not be loaded.";
        searched.classList.add("error");
        return;
      }
      const rows = document.querySelector("[data-log-rows]");
      rows.insertAdjacentHTML("beforeend", data.rows_html);
      const count = document.querySelector("[data-count]");
      count.textContent = rows.children.length;
      if (data.count) document.querySelector("[data-testid=logs-empty]")?.remove();
      searched.textContent = data.searched_until ? `Searched back to ${data.searched_until}.` : "";
      if (data.next_url) {
        link.href = data.next_url;
      } else {
        link.remove();
        document.querySelector("[data-more]")?.remove();
        searched.textContent = "That is every entry of this query.";
      }
    } catch (error) {
      searched.textContent = "The next page could not be loaded: check the connection and try again.";
    } finally {
      link.removeAttribute("aria-busy");
      if (link.isConnected) link.textContent = "Load more";
    }
  });
})();
