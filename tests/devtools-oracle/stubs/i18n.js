// Stand-in for front_end/core/i18n/i18n.js. The real module loads locale data and
// needs a browser; HeapSnapshot.ts only calls i18n.i18n.serializeUIString() to
// format progress messages, which this copies verbatim from i18nImpl.ts.
export const i18n = {
  serializeUIString(string, values = {}) {
    return JSON.stringify({string, values});
  },
};
