// One keymap for the station, labeling and review pages (and the unit page's few): every
// action's keys, defined once.
//
// A key means one thing on every page (S skips everywhere, A accepts a label under review and
// nothing else, T takes the model's regions wherever they can be taken). Each entry says, per
// mode, what its action does there; a mode without words does not have the action. The pages
// bind their handlers with bindKeys() and render their help (the station's Keys panel, the
// labeling page's ? overlay) and their buttons' key caps with renderHelp() and labelButtons(),
// so what a page shows is what it handles. The module checks itself on import: a key given to
// two actions, or an action without a key, stops every page at once.

// The modes: a page is in one at a time (the review page switches to "fixing" and back).
export const MODES = ["station", "label", "review", "fixing", "unit"];

const DIGITS = ["1", "2", "3", "4", "5", "6", "7", "8", "9"];
const ARROWS = ["arrowleft", "arrowright", "arrowup", "arrowdown"];

// group: where the help lists it ("decide", "draw", "see"); takesKey: the handler gets the key
// pressed (one of the digits, one of the arrows); hold: it gets true on the key's press and false
// on its release. Other handlers are called with nothing.
export const KEYMAP = [
  { action: "pass", keys: ["p"], group: "decide", help: { station: "pass" } },
  {
    action: "fail", keys: ["f"], group: "decide",
    help: {
      station: "fail as the chosen class (or with your regions' classes); with no class chosen it asks: " +
        "press 1–9 to fail as that class, Esc to cancel",
    },
  },
  {
    action: "skip", keys: ["s"], group: "decide",
    help: {
      station: "skip: give the unit back to the queue and take the next (Skipped lists it)",
      label: "skip: give the task back and take the next",
      review: "skip: give the label back for another reviewer",
    },
  },
  { action: "skipped", keys: ["k"], group: "decide", help: { station: "open or close the list of units you skipped" } },
  {
    action: "submit", keys: ["enter"], group: "decide",
    help: {
      label: "submit the label for review (while drawing a polygon: close it)",
      fixing: "save your version of the label (while drawing a polygon: close it)",
    },
  },
  {
    action: "noDefect", keys: ["n"], group: "decide",
    help: { label: "no defect: submit at once", fixing: "save \"no defect\" as the label" },
  },
  {
    action: "accept", keys: ["a"], group: "decide",
    help: { review: "accept the label: it becomes the unit's label and trains the next model" },
  },
  {
    action: "reject", keys: ["r"], group: "decide",
    help: { review: "reject: type what is wrong, Enter sends it back to the labelers" },
  },
  {
    action: "fix", keys: ["l"], group: "decide",
    help: { review: "label it yourself: the label's shapes become editable (Enter saves, Esc discards)" },
  },
  {
    action: "undo", keys: ["z", "ctrl+z"], group: "decide",
    help: {
      station: "undo your last change to this unit's regions; with none left, your last decision (within {undoSeconds} s)",
      label: "undo",
      fixing: "undo",
    },
  },
  {
    action: "redo", keys: ["ctrl+y", "ctrl+shift+z"], group: "decide",
    help: { station: "redo a change to the regions you undid", label: "redo", fixing: "redo" },
  },
  {
    action: "chooseClass", keys: DIGITS, group: "draw", takesKey: true,
    help: {
      station: "choose the defect class: each unit starts with the model's class (none at blind levels)",
      label: "defect class (also relabels the selected shape)",
      fixing: "defect class (also relabels the selected shape)",
    },
  },
  {
    action: "findClass", keys: ["/"], group: "draw",
    help: { station: "past nine classes: find one by name (type it, Enter picks it, Esc clears)" },
  },
  {
    action: "box", keys: ["b"], group: "draw",
    help: {
      station: "draw a box: drag on the image; it takes the class chosen when drawn (or the next one chosen)",
      label: "box: drag on the image",
      fixing: "box: drag on the image",
    },
  },
  {
    action: "polygon", keys: ["g"], group: "draw",
    help: {
      label: "polygon: click the points; Enter or a click on the first point closes it, ⌫ removes the last point",
      fixing: "polygon: click the points; Enter or a click on the first point closes it",
    },
  },
  {
    action: "brush", keys: ["m"], group: "draw",
    help: { label: "brush: paint a mask in the current class", fixing: "brush: paint a mask in the current class" },
  },
  {
    action: "eraser", keys: ["e"], group: "draw",
    help: {
      label: "eraser: rub out brush paint of any class (a mask hidden in the list is left alone)",
      fixing: "eraser: rub out brush paint of any class (a mask hidden in the list is left alone)",
    },
  },
  { action: "smallerBrush", keys: ["["], group: "draw", help: { label: "smaller brush", fixing: "smaller brush" } },
  { action: "largerBrush", keys: ["]"], group: "draw", help: { label: "larger brush", fixing: "larger brush" } },
  {
    action: "select", keys: ["v"], group: "draw",
    help: {
      label: "select: click a shape (or a model region to take it) and drag it to move it; a selected box's " +
        "8 handles resize it; a selected polygon: drag a vertex, press an edge to add one, right-click a " +
        "vertex (or click it and ⌫) to remove it",
      fixing: "select: click a shape and drag it to move it; drag a box's handles or a polygon's vertices",
    },
  },
  {
    action: "takeModel", keys: ["t"], group: "draw",
    help: {
      station: "take the model's regions as yours",
      label: "take all the model's regions: one with a mask as brush paint of its class, the others as boxes " +
        "(a click on one takes just that one; Z gives it back)",
      fixing: "take all the model's regions",
    },
  },
  {
    action: "wholeImage", keys: ["w"], group: "draw",
    help: {
      label: "whole image: the chosen class for the image, without drawing (e.g. a stain all over); " +
        "T takes the model's class so when it found no region",
      fixing: "whole image: the chosen class for the image, without drawing",
    },
  },
  {
    action: "copyCurrent", keys: ["c"], group: "draw",
    help: {
      label: "copy the current label's regions (e.g. the inspector's boxes) as a start",
      fixing: "copy the current label's regions as a start",
    },
  },
  {
    action: "delete", keys: ["backspace", "delete"], group: "draw",
    help: {
      station: "delete the selected region, else your last one",
      label: "delete the chosen vertex, the selected shape, else the last one",
      fixing: "delete the chosen vertex, the selected shape, else the last one",
    },
  },
  {
    action: "escape", keys: ["escape"], group: "see",
    help: {
      station: "cancel a fail that asks for a class; close the Skipped list",
      label: "cancel the shape being drawn, or drop the selection; close this help",
      review: "close the rejection or this help",
      fixing: "cancel the shape being drawn; else discard your fix",
    },
  },
  {
    action: "toggleModel", keys: ["h"], group: "see",
    help: {
      station: "hide / show the model's highlights (boxes and masks)",
      label: "hide / show the model's proposal (boxes and masks) and the current label",
      review: "hide / show the model's proposal and the current label",
      fixing: "hide / show the model's proposal and the current label",
    },
  },
  { action: "zoomIn", keys: ["+", "="], group: "see", help: seeing("zoom in (or the mouse wheel)") },
  { action: "zoomOut", keys: ["-"], group: "see", help: seeing("zoom out (or the mouse wheel)") },
  { action: "fit", keys: ["0"], group: "see", help: seeing("fit the whole image (the zoom shows in % of its pixels)") },
  { action: "pan", keys: ARROWS, group: "see", takesKey: true, help: seeing("pan (or drag)") },
  {
    action: "panHold", keys: [" "], group: "see", hold: true,
    help: {
      label: "hold to pan by dragging (or drag with the middle button)",
      review: "hold to pan by dragging",
      fixing: "hold to pan by dragging",
    },
  },
  {
    action: "help", keys: ["?"], group: "see",
    help: { label: "this help; Esc closes it", review: "this help; Esc closes it", fixing: "this help; Esc closes it" },
  },
];

function seeing(words) {
  return Object.fromEntries(MODES.map((mode) => [mode, words]));
}

// What each page's help shows, in order: a section lists its groups' actions of one mode; an
// action is shown once, in the first section that has it, unless a later mode's words differ.
export const PAGES = {
  station: {
    modes: ["station"],
    sections: [
      { title: "Deciding", mode: "station", groups: ["decide"] },
      { title: "Your regions", mode: "station", groups: ["draw"] },
      { title: "Seeing", mode: "station", groups: ["see"] },
    ],
  },
  label: {
    modes: ["label"],
    sections: [
      { title: "Labeling", mode: "label", groups: ["decide", "draw"] },
      { title: "Seeing", mode: "label", groups: ["see"] },
    ],
  },
  unit: {
    modes: ["unit"],
    sections: [{ title: "Seeing", mode: "unit", groups: ["see"] }],
  },
  review: {
    modes: ["review", "fixing"],
    sections: [
      { title: "Reviewing", mode: "review", groups: ["decide"] },
      { title: "While you fix a label", mode: "fixing", groups: ["decide", "draw"] },
      { title: "Seeing", mode: "review", groups: ["see"] },
      { title: "Seeing, while you fix", mode: "fixing", groups: ["see"] },
    ],
  },
};

// Problems with the keymap itself: a key of two actions, an action without keys or words.
export function keymapProblems() {
  const problems = [];
  const owner = new Map();
  const actions = new Set();
  for (const entry of KEYMAP) {
    if (actions.has(entry.action)) problems.push(`action ${entry.action} is defined twice`);
    actions.add(entry.action);
    if (!entry.keys.length) problems.push(`action ${entry.action} has no key`);
    const modes = Object.keys(entry.help || {});
    if (!modes.length) problems.push(`action ${entry.action} is on no page`);
    for (const mode of modes) if (!MODES.includes(mode)) problems.push(`action ${entry.action}: unknown mode ${mode}`);
    for (const key of entry.keys) {
      if (owner.has(key)) problems.push(`key ${keyLabel(key)} is both ${owner.get(key)} and ${entry.action}`);
      owner.set(key, entry.action);
    }
  }
  return problems;
}

const problems = keymapProblems();
if (problems.length) throw new Error(`keymap: ${problems.join("; ")}`);

// The entries a mode has.
export function entriesOf(mode) {
  return KEYMAP.filter((entry) => entry.help && entry.help[mode]);
}

// The actions a page has, in any of its modes.
export function actionsOf(page) {
  return [...new Set(PAGES[page].modes.flatMap((mode) => entriesOf(mode).map((entry) => entry.action)))];
}

const NAMES = {
  escape: "Esc", backspace: "⌫", delete: "Del", enter: "Enter", " ": "Space", "-": "−",
  arrowleft: "←", arrowright: "→", arrowup: "↑", arrowdown: "↓",
};

// A key as its cap reads: "p" -> "P", "ctrl+shift+z" -> "Ctrl+Shift+Z", "escape" -> "Esc".
export function keyLabel(key) {
  if (key.startsWith("ctrl+")) return `Ctrl+${keyLabel(key.slice(5))}`;
  if (key.startsWith("shift+")) return `Shift+${keyLabel(key.slice(6))}`;
  return NAMES[key] || key.toUpperCase();
}

// The caps an action shows: its keys, the digits as a range.
export function capsOf(entry) {
  if (entry.keys === DIGITS) return ["1", "9"];
  return entry.keys.map(keyLabel);
}

const entryByAction = new Map(KEYMAP.map((entry) => [entry.action, entry]));

// The key an event names, as the keymap writes it ("z", "ctrl+z", "ctrl+shift+z"); null for Alt
// chords. Shift is named only with Ctrl: alone it makes the character ("?", "+").
function keyOf(event) {
  if (event.altKey) return null;
  const key = event.key.toLowerCase();
  if (!event.ctrlKey && !event.metaKey) return key;
  return event.shiftKey ? `ctrl+shift+${key}` : `ctrl+${key}`;
}

// Typing in a form field never triggers the page's keys.
function typing(target) {
  return Boolean(target && (["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName) || target.isContentEditable));
}

// Listen to the page's keys. `handlers` has a function for each action of the page's modes and
// nothing else (else this throws, naming what is missing or extra); it is called as its entry
// says (takesKey, hold: above). `mode()` says the page's
// mode now; `allow(action)`, when given, may refuse an action at the moment (a help overlay open).
export function bindKeys(page, { handlers, mode, allow = () => true }) {
  const expected = actionsOf(page);
  const missing = expected.filter((action) => !handlers[action]);
  const extra = Object.keys(handlers).filter((action) => !expected.includes(action));
  if (missing.length || extra.length) {
    throw new Error(`keys of the ${page} page: no handler for ${missing.join(", ") || "–"}; ` +
      `not in the keymap: ${extra.join(", ") || "–"}`);
  }
  const maps = Object.fromEntries(
    PAGES[page].modes.map((name) => [
      name,
      new Map(entriesOf(name).flatMap((entry) => entry.keys.map((key) => [key, entry]))),
    ])
  );
  const held = new Map(); // a hold key pressed: its action, released on its keyup
  document.addEventListener("keydown", (event) => {
    if (typing(event.target)) return;
    const key = keyOf(event);
    const entry = key && maps[mode()].get(key);
    if (!entry || !allow(entry.action)) return;
    event.preventDefault();
    if (entry.takesKey) handlers[entry.action](key);
    else if (!entry.hold) handlers[entry.action]();
    else if (!held.has(key)) {
      held.set(key, entry.action);
      handlers[entry.action](true);
    }
  });
  document.addEventListener("keyup", (event) => {
    const key = keyOf(event);
    if (!held.has(key)) return;
    handlers[held.get(key)](false);
    held.delete(key);
  });
  // For the browser tests: the key caps this page dispatches, per mode.
  window.loupeKeys = {
    page,
    bound: Object.fromEntries(
      Object.entries(maps).map(([name, map]) => [name, [...new Set([...map.values()].flatMap(capsOf))].sort()])
    ),
  };
}

// Words with the page's figures put in ("{undoSeconds}").
function words(text, values) {
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in values ? values[name] : `{${name}}`));
}

// The page's help as data: [{title, rows: [{action, caps, words}]}], in the order shown.
export function helpSections(page, values = {}) {
  const shown = new Set();
  const sections = [];
  for (const section of PAGES[page].sections) {
    const rows = [];
    for (const entry of entriesOf(section.mode)) {
      const text = words(entry.help[section.mode], values);
      if (!section.groups.includes(entry.group) || shown.has(`${entry.action}:${text}`)) continue;
      shown.add(`${entry.action}:${text}`);
      rows.push({ action: entry.action, caps: capsOf(entry), range: entry.keys === DIGITS, words: text });
    }
    if (rows.length) sections.push({ title: section.title, rows });
  }
  return sections;
}

// The page's help into `container`: a heading and a list of keys per section.
export function renderHelp(container, page, values = {}) {
  container.replaceChildren();
  for (const section of helpSections(page, values)) {
    const heading = document.createElement("h3");
    heading.textContent = section.title;
    const list = document.createElement("dl");
    list.className = "keys";
    for (const row of section.rows) {
      const keys = document.createElement("dt");
      row.caps.forEach((cap, index) => {
        if (index) keys.append(row.range ? "–" : " ");
        const kbd = document.createElement("kbd");
        kbd.textContent = cap;
        keys.append(kbd);
      });
      const description = document.createElement("dd");
      description.textContent = row.words;
      list.append(keys, description);
    }
    container.append(heading, list);
  }
}

// The cap of an action's first key ("1–9" for the classes), for buttons and messages.
export function keyCap(action) {
  const entry = entryByAction.get(action);
  if (!entry) throw new Error(`no key for the action ${action}`);
  return entry.keys === DIGITS ? "1–9" : keyLabel(entry.keys[0]);
}

// Every `<kbd data-action="…">` inside `root` gets its action's key cap.
export function labelButtons(root = document) {
  root.querySelectorAll("kbd[data-action]").forEach((kbd) => {
    kbd.textContent = keyCap(kbd.dataset.action);
  });
}
