// A finder over a list of defect classes longer than the number keys reach (templates/inspection/
// station.html shows it past nine): typing narrows the list, Enter picks the first class shown,
// Esc clears it; the page's "/" (lib/keymap.js, findClass) puts the cursor in it. `choose(index)`
// is the page's own way of choosing the class at that place in the full list.

export function classFinder(input, list, choose) {
  const items = [...list.querySelectorAll("li[data-class]")];

  function filter() {
    const words = input.value.trim().toLowerCase();
    for (const item of items) item.hidden = words !== "" && !item.dataset.class.toLowerCase().includes(words);
  }

  function clear() {
    input.value = "";
    filter();
    input.blur();
  }

  input.addEventListener("input", filter);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      const first = items.find((item) => !item.hidden);
      if (!first) return;
      clear();
      choose(items.indexOf(first));
    } else if (event.key === "Escape") {
      event.preventDefault();
      clear();
    }
  });
}
