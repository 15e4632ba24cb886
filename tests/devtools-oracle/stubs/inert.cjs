// Stands in for every UI module HeapProfileView.ts imports (DOM widgets, i18n, settings…),
// which the sampling heap profile model does not use. Any property read, call or `new` on it
// gives the same inert value, so module-level code (`class X extends UI.Widget`,
// `i18n.registerUIStrings(…)`) loads without a browser. The model itself and
// models/cpu_profile stay DevTools' real code.
// esbuild wraps a CommonJS module in an object whose prototype is the module's prototype, so
// that prototype is inert too: named imports (`import {html} from …`) resolve through it.
'use strict';
const lookup = {get(target, key) { return key === Symbol.toPrimitive ? () => '' : inert; }};
const proto = new Proxy({}, lookup);
const inert = new Proxy(function inert() {}, {
  getPrototypeOf() { return proto; },
  get(target, key) {
    if (key === Symbol.toPrimitive) return () => '';
    if (key === 'prototype') return target.prototype;
    if (key === '__esModule') return false;
    return inert;
  },
  apply() { return inert; },
  construct() { return inert; },
});
module.exports = inert;
