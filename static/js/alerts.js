// An alert's page: follow its incidents' runs live (every second while one is unfinished,
// every 10 seconds otherwise, to show incidents that arrive), and fill the incident time with "now".
(() => {
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-fill-now]");
    if (!button) return;
    const input = document.querySelector(button.dataset.fillNow);
    if (input) input.value = String(Date.now());
  });

  const list = document.getElementById("incidents");
  if (!list) return;
  const pause = () => (list.dataset.finished === "true" ? 10000 : 1000);
  let delay = pause();
  const poll = async () => {
    try {
      const response = await fetch(list.dataset.liveUrl, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(response.statusText);
      const data = await response.json();
      list.innerHTML = data.html;
      list.dataset.finished = data.finished ? "true" : "false";
      delay = pause();
    } catch (error) {
      delay = 10000;
    }
    setTimeout(poll, delay);
  };
  setTimeout(poll, delay);
})();
