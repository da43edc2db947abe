// The Storage tab's upload form, posted by XMLHttpRequest for a progress bar.
// First it asks the server whether the names and sizes would be accepted
// (quota, size limit, files that would be replaced) so nothing large is sent
// just to be refused; the server checks everything again on the real upload.
// Without this script the form posts normally and the page reloads.
(() => {
  const form = document.querySelector("form[data-storage-upload]");
  if (!form) return;
  const input = form.querySelector("input[type=file]");
  const replaceBox = form.querySelector("input[name=replace]");
  const button = form.querySelector("button[type=submit]");
  const progress = form.querySelector("[data-upload-progress]");
  const bar = progress.querySelector("progress");
  const label = form.querySelector("[data-upload-progress-text]");
  const errorBox = form.querySelector("[data-upload-error]");

  const sizeLabel = (bytes) => {
    if (bytes < 1024) return `${bytes} bytes`;
    const units = ["KB", "MB", "GB", "TB"];
    let value = bytes;
    for (const unit of units) {
      value /= 1024;
      if (value < 1024 || unit === "TB") return `${value.toFixed(1).replace(/\.0$/, "")} ${unit}`;
    }
    return `${bytes} bytes`;
  };

  const showError = (message) => {
    errorBox.textContent = message;
    errorBox.hidden = false;
  };
  const busy = (on) => {
    button.disabled = on;
    input.disabled = on;
    progress.hidden = !on;
  };

  const post = (data, onProgress) =>
    new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      if (onProgress) xhr.upload.addEventListener("progress", onProgress);
      xhr.addEventListener("load", () => {
        let body;
        try {
          body = JSON.parse(xhr.responseText);
        } catch (error) {
          body = { message: `The server answered ${xhr.status} ${xhr.statusText}.` };
        }
        resolve({ status: xhr.status, body });
      });
      xhr.addEventListener("error", () =>
        resolve({ status: 0, body: { message: "The upload was interrupted before it finished; files that did not finish were not stored." } }),
      );
      xhr.send(data);
    });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    const files = Array.from(input.files);
    if (!files.length) return showError("Choose at least one file to upload.");
    const maxFiles = Number(form.dataset.maxFiles);
    if (maxFiles && files.length > maxFiles) return showError(`Choose at most ${maxFiles} files per upload (you chose ${files.length}).`);
    const tooBig = files.find((file) => file.size > Number(form.dataset.maxFileBytes));
    if (tooBig) return showError(`“${tooBig.name}” is ${sizeLabel(tooBig.size)}; one file is at most ${form.dataset.maxFileLabel}.`);

    // Read the form before busy() disables the file input (disabled fields are not sent).
    const data = new FormData(form);
    busy(true);
    bar.removeAttribute("value");
    label.textContent = "Checking…";
    const question = new FormData();
    question.set("csrfmiddlewaretoken", form.elements.csrfmiddlewaretoken.value);
    question.set("prefix", form.elements.prefix.value);
    question.set("check", "1");
    for (const file of files) {
      question.append("name", file.name);
      question.append("size", String(file.size));
    }
    const answer = await post(question);
    if (answer.status !== 200) {
      busy(false);
      return showError(answer.body.message || "The upload was refused.");
    }
    let replace = replaceBox.checked;
    const existing = answer.body.existing || [];
    if (existing.length && !replace) {
      const names = existing.map((name) => `  ${name}`).join("\n");
      if (!window.confirm(`These files already exist here and would be replaced:\n\n${names}\n\nReplace them?`)) {
        busy(false);
        return showError("Nothing was uploaded: the files that already exist were kept.");
      }
      replace = true;
    }

    if (replace) data.set("replace", "1");
    const total = files.reduce((sum, file) => sum + file.size, 0);
    bar.value = 0;
    label.textContent = `Uploading ${files.length} file${files.length === 1 ? "" : "s"} (${sizeLabel(total)})…`;
    const result = await post(data, (progressEvent) => {
      if (!progressEvent.lengthComputable) return;
      const percent = Math.floor((progressEvent.loaded * 100) / progressEvent.total);
      bar.value = percent;
      label.textContent = percent >= 100 ? "Storing…" : `${percent}% of ${sizeLabel(total)}`;
    });
    if (result.status === 200 && result.body.redirect) {
      window.location.assign(result.body.redirect);
      return;
    }
    busy(false);
    showError(result.body.message || "The upload was refused.");
  });
})();
