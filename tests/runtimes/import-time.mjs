// Cold import time of the installed package (node|bun|deno import-time.mjs
// [specifier]): prints milliseconds from before the import to after it, the
// wasm decoded and instantiated. A figure for bindings/npm/README.md, measured
// by hand (see there), never asserted.
const specifier = globalThis.process?.argv?.[2] ?? globalThis.Deno?.args?.[0] ?? "@dock-verify/client";
const started = performance.now();
await import(specifier);
console.log((performance.now() - started).toFixed(1));
