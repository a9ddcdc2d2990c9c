/**
 * The few DOM helpers the demo page is built with: elements made with their text set as
 * text (never as HTML, so nothing a user or the service sends can become markup).
 */

export type Child = Node | string;

/** An HTML element with attributes and children. */
export function h(tag: string, attributes: Record<string, string> = {}, ...children: Child[]) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

/** An SVG element with attributes and children (SVG needs its own namespace). */
export function svg(tag: string, attributes: Record<string, string> = {}, ...children: Child[]) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

/** A button of one of the page's three kinds: `primary` (buy, spend), `secondary`, and
 * `danger` (an action that ends something, styled apart and confirmed first). */
export function button(
  label: string,
  kind: "primary" | "secondary" | "danger",
  name: string,
  onClick: (button: HTMLButtonElement) => void,
): HTMLButtonElement {
  const made = h("button", { type: "button", class: kind, "aria-label": name }, label);
  const clickable = made as HTMLButtonElement;
  clickable.addEventListener("click", () => onClick(clickable));
  return clickable;
}

export function byId<T extends HTMLElement>(id: string): T {
  return document.getElementById(id) as T;
}
