// Build driver for JavaScript plugins, embedded in the Triggerfish host and
// run with node:
//
//   node componentize.mjs <componentize-js-package-dir> <source.js> <wit-dir> <world> <out.wasm>
//   node --input-type=module -e "$(cat componentize.mjs)" -- <same five arguments>
//
// Imports @bytecodealliance/componentize-js from the given package directory
// (by absolute file URL, so no node_modules lookup from this script's
// location is needed), componentizes <source.js> against <world> in
// <wit-dir>, and writes the component to <out.wasm>. Prints nothing on
// success; on failure prints the error to stderr and exits 1.
//
// WASI features: the component keeps stdio (uncaught errors and console.* go
// to stderr), random and clocks, which a wasmtime host with wasi:cli, io,
// clocks, random and filesystem 0.2.x provides; `http` (fetch) and
// `fetch-event` are disabled so the component does not import wasi:http.

import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import process from 'node:process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const DISABLED_FEATURES = ['http', 'fetch-event'];

/** The ESM entry of a package, from its package.json `exports` or `main`. */
function esmEntry(pkg) {
  const pick = (e) => {
    if (typeof e === 'string') return e;
    if (Array.isArray(e)) {
      for (const x of e) {
        const p = pick(x);
        if (p) return p;
      }
      return undefined;
    }
    if (e && typeof e === 'object') {
      if ('.' in e) return pick(e['.']);
      for (const cond of ['import', 'node', 'module', 'default']) {
        if (cond in e) {
          const p = pick(e[cond]);
          if (p) return p;
        }
      }
    }
    return undefined;
  };
  return pick(pkg.exports) ?? pkg.module ?? pkg.main ?? 'index.js';
}

/**
 * componentize-js runs its WIT splicer as a component under jco's
 * @bytecodealliance/preview2-shim, resolved from the componentize-js package.
 * preview2-shim 0.26 starts with no filesystem preopens (0.25 and earlier
 * preopened `/`), so the splicer cannot read the WIT directory ("No such file
 * or directory (os error 44)", or "failed to get path metadata" through
 * `jco componentize`). Preopen `/` as `/` in that same shim instance so the
 * absolute paths given to componentize resolve as on the host.
 */
async function preopenRoot(pkgDir) {
  let fsPath;
  try {
    fsPath = createRequire(join(pkgDir, 'package.json')).resolve(
      '@bytecodealliance/preview2-shim/filesystem',
    );
  } catch {
    return; // not resolvable: componentize will report what is missing
  }
  const fs = await import(pathToFileURL(fsPath).href);
  if (typeof fs._setPreopens === 'function' && fs.preopens?.getDirectories?.().length === 0) {
    fs._setPreopens({ '/': '/' });
  }
}

/** The syntax errors in `source`, as oxc-parser (componentize's parser) reports them. */
async function syntaxErrors(pkgDir, source) {
  const oxcPath = createRequire(join(pkgDir, 'package.json')).resolve('oxc-parser');
  const oxcModule = await import(pathToFileURL(oxcPath).href);
  const oxc = oxcModule.default ?? oxcModule;
  const { errors } = await oxc.parseAsync(source, await readFile(source, 'utf8'));
  return errors.map((x) => x.codeframe || x.message).join('\n');
}

async function main(argv) {
  if (argv.length !== 5) {
    throw new Error(
      'usage: node componentize.mjs <componentize-js-package-dir> <source.js> <wit-dir> <world> <out.wasm>',
    );
  }
  const [pkgDir, source, witDir, world, out] = argv.map((a, i) => (i === 3 ? a : resolve(a)));

  await preopenRoot(pkgDir);

  const pkg = JSON.parse(await readFile(join(pkgDir, 'package.json'), 'utf8'));
  const entry = join(pkgDir, esmEntry(pkg));
  const { componentize } = await import(pathToFileURL(entry).href);
  if (typeof componentize !== 'function') {
    throw new Error(`${entry} does not export componentize()`);
  }

  let component;
  try {
    ({ component } = await componentize({
      sourcePath: source,
      witPath: witDir,
      worldName: world,
      disableFeatures: DISABLED_FEATURES,
    }));
  } catch (e) {
    // componentize only says how many syntax errors there are: show them.
    if (/failed to parse JS source/.test(String(e && e.message))) {
      const detail = await syntaxErrors(pkgDir, source).catch(() => '');
      if (detail) e.message += `\n${detail}`;
    }
    throw e;
  }

  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, component);
}

// `node componentize.mjs a b ...` puts the arguments at argv[2..]; with
// `node --input-type=module -e "<this file>" -- a b ...` there is no script
// path and they start at argv[1].
const evaluated = process.execArgv.some(
  (a) => a === '-e' || a === '--eval' || a.startsWith('--eval=') || a === '-p' || a === '--print',
);

try {
  await main(process.argv.slice(evaluated ? 1 : 2));
} catch (e) {
  process.stderr.write(`${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
}
