// Bundles the runtime suite's worker and page with esbuild, from the scratch
// project where the packed tarball is installed (argv[2]), into argv[3]:
// - worker.js the way wrangler bundles a Worker: ES module, conditions
//   workerd/worker/browser, every `*.wasm` import left as a module of its own
//   (wrangler's CompiledWasm rule), copied next to the bundle;
// - page.js for a browser: esbuild's browser platform (condition browser).
// Prints the output sizes as JSON.
import * as esbuild from "esbuild";
import fs from "node:fs";
import path from "node:path";

const [project, outDir] = process.argv.slice(2);
fs.mkdirSync(outDir, { recursive: true });
const wasmModules = [];
const wasmAsModule = {
  name: "wasm-as-module",
  setup(build) {
    build.onResolve({ filter: /\.wasm$/ }, (args) => {
      const file = path.resolve(args.resolveDir, args.path);
      const name = path.basename(file);
      fs.copyFileSync(file, path.join(outDir, name));
      wasmModules.push(name);
      return { path: `./${name}`, external: true };
    });
  },
};
const common = { bundle: true, format: "esm", target: "es2022", absWorkingDir: project, logLevel: "warning", metafile: true };
const worker = await esbuild.build({
  ...common,
  entryPoints: [path.join(project, "worker.mjs")],
  outfile: path.join(outDir, "worker.js"),
  platform: "neutral",
  conditions: ["workerd", "worker", "browser"],
  mainFields: ["browser", "module", "main"],
  plugins: [wasmAsModule],
});
const page = await esbuild.build({
  ...common,
  entryPoints: [path.join(project, "page.mjs")],
  outfile: path.join(outDir, "page.js"),
  platform: "browser",
});
fs.writeFileSync(
  path.join(outDir, "index.html"),
  '<!doctype html><meta charset="utf-8"><title>dock runtime e2e</title><script type="module" src="/__runtime/page.js"></script>\n',
);
const size = (f) => fs.statSync(path.join(outDir, f)).size;
console.log(JSON.stringify({ worker: size("worker.js"), page: size("page.js"), wasmModules, warnings: worker.warnings.length + page.warnings.length }));
