// The Functions catalogue's small behaviours, wired by data-* attributes.
// The event parameters editor: "Add parameter" and "Remove" buttons. Without
// this script the form still works with the rows the server renders (the
// existing ones plus a few blank ones).
(() => {
  function addRow(editor) {
    const template = editor.querySelector("template[data-param-template]");
    const row = template.content.firstElementChild.cloneNode(true);
    editor.querySelector("[data-param-rows]").appendChild(row);
    return row;
  }

  document.querySelectorAll("[data-params-editor]").forEach((editor) => {
    editor.querySelectorAll("[data-param-add], [data-param-remove]").forEach((button) => { button.hidden = false; });
    // With "Add parameter" at hand, one blank row is enough.
    const blank = [...editor.querySelectorAll("[data-param-row]")].filter(
      (row) => [...row.querySelectorAll("input")].every((input) => input.value === "") && !row.querySelector(".error"),
    );
    blank.slice(1).forEach((row) => row.remove());
    editor.addEventListener("click", (event) => {
      const remove = event.target.closest("[data-param-remove]");
      if (remove) {
        const rows = editor.querySelector("[data-param-rows]");
        remove.closest("[data-param-row]").remove();
        if (!rows.querySelector("[data-param-row]")) addRow(editor);
        return;
      }
      if (event.target.closest("[data-param-add]")) {
        addRow(editor).querySelector("input").focus();
      }
    });
  });
})();
