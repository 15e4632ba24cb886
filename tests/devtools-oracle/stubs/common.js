// Stand-in for front_end/core/common/common.js (settings, revealers, i18n
// strings: needs a browser). Reached only through text_utils/ContentData.ts,
// whose base64/gzip helpers use it inside functions the heap snapshot code never
// calls; any such call would fail loudly on the missing namespace member.
export {};
