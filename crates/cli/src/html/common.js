"use strict";
// Helpers both report pages share. Text from the data goes on the page with textContent and
// attributes only: never as markup.
const D = JSON.parse(document.getElementById("heapgate-data").textContent);
const SVG = "http://www.w3.org/2000/svg";
const isDiff = D.kind === "diff";
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const k in attrs) e.setAttribute(k, String(attrs[k]));
  return e;
}
const group = new Intl.NumberFormat("en-US");
function bytes(n) {
  const a = Math.abs(n);
  if (a < 1000) return n + " B";
  const units = ["kB", "MB", "GB", "TB"];
  let v = n / 1000, i = 0;
  while (Math.abs(v) >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return v.toFixed(Math.abs(v) < 10 ? 2 : 1) + " " + units[i];
}
