// Stand-in for the front_end/core/text_utils/text_utils.js barrel, which also
// pulls in CodeMirror helpers, Markdown and WebAssembly disassembly. The heap
// snapshot loader only uses TextUtils.BalancedJSONTokenizer, so export just
// DevTools' own TextUtils.ts, unchanged.
export * as TextUtils from '../node_modules/chrome-devtools-frontend/front_end/core/text_utils/TextUtils.ts';
