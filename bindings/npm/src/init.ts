// Instantiates the wasm (dock-core) synchronously from bytes embedded in this
// package as base64: no file system, no fetch, no bundler plugin, so the
// package works wherever it is copied or bundled (Node, Bun, Deno, Lambda and
// Next.js bundles, browser bundles: Chromium compiles this size synchronously
// on the main thread). `#dock-wasm` resolves here by default; runtimes that
// forbid compiling wasm from bytes get their own (package.json "imports").

import { initSync } from "../wasm/dock_bindings.js";
import { WASM_BASE64 } from "../wasm/embedded.js";
import { decodeBase64 } from "./base64.js";

initSync({ module: decodeBase64(WASM_BASE64) });
