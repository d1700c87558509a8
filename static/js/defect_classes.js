// The station form's defect classes as a list: a row per class (rename in place, move up or
// down, remove) and a field to add one. It writes the one-name-a-line text field the form sends
// (inspection.admin.DefectClassesField), which checks every name again when saved; here a
// duplicate or a name the station would refuse is shown at once, beside its row.

import { el } from "./lib/dom.js";

const NAME = /^[\p{L}\p{N}_][\p{L}\p{N}_ .-]*$/u;
const LENGTH = 60; // inspection.models.DEFECT_CLASS_LENGTH

for (const field of document.querySelectorAll("textarea.defect-classes")) start(field);

function start(field) {
  const names = field.value.split("\n").map((name) => name.trim()).filter(Boolean);
  const editor = el("div", null, "defect-classes-editor");
  const list = el("ol", null, "defect-classes-list");
  const adder = el("div", null, "defect-classes-add");
  const input = el("input");
  input.type = "text";
  input.id = `${field.id}_new`;
  input.placeholder = "new class";
  input.setAttribute("aria-label", "New defect class");
  const add = button("Add class", "add");
  const note = el("p", null, "errornote defect-classes-problem");
  note.hidden = true;
  adder.append(input, add);
  editor.append(list, adder, note);
  field.hidden = true;
  field.after(editor);

  function problem(name, index) {
    if (!name) return "a class needs a name";
    if (name.length > LENGTH || !NAME.test(name)) {
      return `up to ${LENGTH} letters, digits, spaces, '-', '_' or '.', starting with a letter or digit`;
    }
    if (name.toLowerCase() === "no_defect") return "the label of a unit without defect";
    const first = names.findIndex((other) => other.toLowerCase() === name.toLowerCase());
    if (first !== -1 && first !== index) return `listed twice (as ${names[first]} before)`;
    return "";
  }

  function write() {
    field.value = names.join("\n");
    render();
  }

  function render() {
    list.replaceChildren();
    names.forEach((name, index) => {
      const row = el("li", null, "defect-classes-row");
      row.dataset.class = name;
      const text = el("input");
      text.type = "text";
      text.value = name;
      text.setAttribute("aria-label", `Defect class ${index + 1}`);
      text.addEventListener("change", () => {
        names[index] = text.value.trim();
        write();
      });
      const up = button("↑", "up", index === 0);
      up.title = "Move up";
      up.addEventListener("click", () => swap(index, index - 1));
      const down = button("↓", "down", index === names.length - 1);
      down.title = "Move down";
      down.addEventListener("click", () => swap(index, index + 1));
      const remove = button("Remove", "remove");
      remove.addEventListener("click", () => {
        names.splice(index, 1);
        write();
      });
      const number = el("span", index < 9 ? String(index + 1) : "", "defect-classes-key");
      const wrong = problem(name, index);
      row.append(number, text, up, down, remove);
      if (wrong) {
        row.classList.add("errors");
        row.append(el("span", wrong, "defect-classes-row-problem"));
      }
      list.append(row);
    });
  }

  function swap(from, to) {
    [names[from], names[to]] = [names[to], names[from]];
    write();
  }

  function addClass() {
    const name = input.value.trim();
    const wrong = problem(name, names.length);
    note.hidden = !wrong;
    note.textContent = wrong ? `${name || "The new class"}: ${wrong}` : "";
    if (wrong) return;
    names.push(name);
    input.value = "";
    write();
  }

  add.addEventListener("click", addClass);
  input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault(); // Enter adds the class, it does not submit the station form
    addClass();
  });
  render();
}

function button(text, action, disabled = false) {
  const node = el("button", text, "button");
  node.type = "button";
  node.dataset.action = action;
  node.disabled = disabled;
  return node;
}
