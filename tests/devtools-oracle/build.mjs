// Bundles DevTools' own heap snapshot code (chrome-devtools-frontend, pinned in
// package.json) into dist/devtools-heap-snapshot.mjs, runnable by plain Node.
// Run after `npm ci`: `node build.mjs`. Only modules that need a browser are
// replaced, each by a documented file in stubs/.
import * as esbuild from 'esbuild';
import {fileURLToPath} from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const stub = name => path.join(here, 'stubs', name);

// import specifier (as written in DevTools' sources, resolved) → stub file
const replaced = new Map([
  ['front_end/core/i18n/i18n.js', stub('i18n.js')],
  ['front_end/core/text_utils/text_utils.js', stub('text_utils.js')],
  ['front_end/core/common/common.js', stub('common.js')],
  ['front_end/models/heap_snapshot/heap_snapshot.js', stub('heap_snapshot_model.js')],
]);

const stubPlugin = {
  name: 'devtools-stubs',
  setup(build) {
    build.onResolve({filter: /\.js$/}, args => {
      if (!args.importer.includes('chrome-devtools-frontend')) {
        return undefined;
      }
      const target = path.resolve(args.resolveDir, args.path).replaceAll(path.sep, '/');
      for (const [suffix, file] of replaced) {
        if (target.endsWith(suffix)) {
          return {path: file};
        }
      }
      return undefined;
    });
  },
};

await esbuild.build({
  entryPoints: [path.join(here, 'entry.js')],
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outfile: path.join(here, 'dist', 'devtools-heap-snapshot.mjs'),
  plugins: [stubPlugin],
  logLevel: 'warning',
  legalComments: 'none',
});

// The sampling heap profile model (HeapProfileView.ts): only models/cpu_profile is kept; every
// other DevTools module it imports is UI and becomes stubs/inert.cjs.
const profileStubs = {
  name: 'devtools-profile-stubs',
  setup(build) {
    build.onResolve({filter: /.*/}, args => {
      if (!args.importer.includes('chrome-devtools-frontend')) {
        return undefined;
      }
      const target = path.resolve(args.resolveDir, args.path).replaceAll(path.sep, '/');
      if (target.includes('/models/cpu_profile/') || target.includes('/core/platform/')) {
        return undefined;
      }
      return {path: stub('inert.cjs')};
    });
  },
};

await esbuild.build({
  entryPoints: [path.join(here, 'profile-entry.js')],
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outfile: path.join(here, 'dist', 'devtools-heap-profile.mjs'),
  plugins: [profileStubs],
  logLevel: 'warning',
  legalComments: 'none',
});
