// Small behaviours, wired by data-* attributes: no build step.
document.addEventListener("change", (event) => {
  const select = event.target.closest("select[data-navigate]");
  if (select && select.value) window.location.href = select.value;
});
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});
// The Menu link folds the sidebar on narrow screens (CSS shows it only there).
document.addEventListener("click", (event) => {
  const toggle = event.target.closest("[data-nav-toggle]");
  if (!toggle) return;
  const menu = document.getElementById(toggle.getAttribute("aria-controls"));
  if (!menu) return;
  event.preventDefault();
  const open = !menu.classList.contains("open");
  menu.classList.toggle("open", open);
  toggle.setAttribute("aria-expanded", String(open));
  if (open) {
    const first = menu.querySelector("a");
    if (first) first.focus();
  }
});
document.addEventListener("keydown", (event) => {
  // A link in the role of a button answers the space bar as a button does.
  if (event.key === " " && event.target.matches("a[role=button]")) {
    event.preventDefault();
    event.target.click();
    return;
  }
  if (event.key !== "Escape") return;
  const menu = document.querySelector(".sidebar.open");
  if (!menu) return;
  menu.classList.remove("open");
  const toggle = document.querySelector(`[data-nav-toggle][aria-controls="${menu.id}"]`);
  if (toggle) { toggle.setAttribute("aria-expanded", "false"); toggle.focus(); }
});
// Copy buttons: data-copy names the element whose text is copied.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  const text = source.textContent.trim();
  let copied = false;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch (error) {
    // Not a secure context (plain http on another host): select it, and copy the old way.
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    copied = document.execCommand && document.execCommand("copy");
  }
  const label = button.dataset.label || (button.dataset.label = button.textContent);
  button.textContent = copied ? "Copied" : "Selected: press Ctrl+C";
  setTimeout(() => { button.textContent = label; }, 2000);
});
