/**
 * Preload for child processes (`NODE_OPTIONS=--import=<this file>`): when the process exits, it
 * writes the URL of every script V8 compiled in it, one per line, to $NYDUS_SCRIPT_TRACE.
 *
 * It asks V8 (an in-process inspector session: Debugger.enable replays scriptParsed for every
 * script), not the module loaders, so it sees ES modules loaded by import() or by require(esm),
 * CommonJS files and dynamic imports alike; loader hooks see only some of those in Node 20.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { fileURLToPath } from 'node:url';

const out = process.env['NYDUS_SCRIPT_TRACE'];

if (out !== undefined) {
  process.on('exit', () => {
    const urls: string[] = [];
    const session = new Session();
    session.connect();
    session.on('Debugger.scriptParsed', (m) => urls.push(m.params.url));
    // In-process sessions dispatch synchronously: every event has arrived when post() returns.
    session.post('Debugger.enable');
    session.disconnect();
    writeFileSync(out, `${urls.filter((u) => u !== '').join('\n')}\n`);
  });
}

/** NODE_OPTIONS and the variable that make a child write its script list to `file`. */
export function scriptTraceEnv(file: string): NodeJS.ProcessEnv {
  return { NODE_OPTIONS: `--import=${fileURLToPath(import.meta.url)}`, NYDUS_SCRIPT_TRACE: file };
}
