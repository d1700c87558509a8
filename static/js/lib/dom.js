// Small DOM helpers the pages share.

export const $ = (id) => document.getElementById(id);

// <tag class="className">text</tag>; text and className may be left out (null or undefined).
export function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}
