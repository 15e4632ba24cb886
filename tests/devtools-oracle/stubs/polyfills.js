// Node 20 (V8 11.3) lacks Promise.withResolvers (ES2024, Node 22+), which DevTools'
// loader and init code call. Installed only when missing; same semantics as the spec.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers() {
    let resolve;
    let reject;
    const promise = new this((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return {promise, resolve, reject};
  };
}
