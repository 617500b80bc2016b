// workerd (Cloudflare Workers) forbids compiling wasm from bytes at run time:
// the module must be imported, and the deploy tool uploads it compiled.
// wrangler does this for any `*.wasm` import (its CompiledWasm rule); with a
// bare workerd config, list the file as a `wasm` module.

import { initSync } from "../wasm/dock_bindings.js";
// @ts-expect-error -- a `.wasm` import is a WebAssembly.Module in workerd; TypeScript has no type for it.
import wasm from "../wasm/dock_bindings_bg.wasm";

initSync({ module: wasm });
