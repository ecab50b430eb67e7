/**
 * `nydusd` command line. Flags follow upstream nydusd (reference/nydusd-cli-api.md §1.2); see
 * nydusd-flags.ts (the flags), nydusd-fast-args.ts and nydusd-args.ts (the parsers) and
 * nydusd-options.ts (validation into DaemonOptions). The daemon runs until SIGTERM/SIGINT; exit
 * status 0 on a clean stop, 2 on bad usage or configuration or a feature not supported yet, 1 on
 * a runtime failure.
 */
import { attachNativeLog, claimFreeSocket, runDaemon } from '../daemon/index.js';
import type { ApiStarter, DaemonDeps, EarlyListener } from '../daemon/index.js';
import { createLogger } from '../util/logger.js';
import { parseNydusdArgsFast } from './nydusd-fast-args.js';
import type { NydusdArgs } from './nydusd-options.js';
import { resolveNydusdArgs } from './nydusd-options.js';
import { buildInfo, versionText } from './version.js';

/** vhost-user backend capabilities (docs/interop/vhost-user.json "fs"). */
const kExitGraceMs = 2000;

export const kCapabilities = '{"type":"fs"}';

/** Where bin/nydusd's launcher (launch.cts) leaves how this start loaded the CLI. */
const kStartPathKey = Symbol.for('nydusd-node.start-path');

/** yargs, loaded only for help and command lines the fast path leaves to it (~50 ms to load). */
async function parseNydusdArgsFull(argv: string[]): Promise<NydusdArgs> {
  const { nydusdParser } = await import('./nydusd-args.js');
  return nydusdParser(argv).parseAsync();
}

/** The injectable parts, so the lead can wire the filesystem (deps.serve) without touching the CLI. */
export async function main(argv: string[], deps: Partial<Omit<DaemonDeps, 'log'>> = {}): Promise<number> {
  const args = parseNydusdArgsFast(argv) ?? (await parseNydusdArgsFull(argv));
  if (args['help'] === true) return 0;
  if (args['version'] === true) {
    process.stdout.write(`${versionText('nydusd')}\n`);
    return 0;
  }
  if (args['print-capabilities'] === true) {
    process.stdout.write(`${kCapabilities}\n`);
    return 0;
  }
  // The vhost-user socket listens once the flags are checked, while the configuration is still
  // to be loaded (src/daemon/early-listen.ts); closed again below should the start not get far.
  const early: { listener?: EarlyListener | undefined } = {};
  try {
    return await startDaemon(args, deps, early);
  } finally {
    early.listener?.close();
  }
}

async function startDaemon(args: NydusdArgs, deps: Partial<Omit<DaemonDeps, 'log'>>, early: { listener?: EarlyListener | undefined }): Promise<number> {
  // A stand-in serve step (deps.serve) makes its own transport.
  const { options, warnings } = resolveNydusdArgs(args, process.env, (t) => {
    if (deps.serve === undefined) early.listener = claimFreeSocket(t);
  });
  const logger = createLogger({
    level: options.log.level,
    format: options.log.format,
    ...(options.log.file === undefined ? {} : { file: options.log.file }),
    rotationSizeMb: options.log.rotationSizeMb,
  });
  attachNativeLog(logger);
  let ran = false;
  try {
    const b = buildInfo();
    logger.info(`nydusd ${b.package_ver} (commit ${b.git_commit}, ${b.rustc}), pid ${process.pid}`);
    for (const w of warnings) logger.warn(w);
    // The start artefact, or why the start fell back to the modules of dist/src (stale, missing).
    const startPath = (globalThis as Record<symbol, unknown>)[kStartPathKey];
    if (typeof startPath === 'string') logger.debug(`start: ${startPath}`);
    ran = true;
    // The API's modules (node:http, the routes) load only for a daemon with --apisock.
    const api: ApiStarter = async (control, path) => (await import('../daemon/api/index.js')).startApiServer(control, path);
    const listener = early.listener;
    return await runDaemon(options, { buildInfo: b, api, ...deps, ...(listener === undefined ? {} : { listener }), log: logger });
  } catch (err) {
    // runMain prints the reason on stderr; a log file gets it too.
    if (options.log.file !== undefined) logger.error((err as Error).message);
    throw err;
  } finally {
    await logger.close();
    // Once a daemon ran, a handle leaked by a transport (or a stop that timed out) must not
    // keep the process alive: exit with whatever status runMain settles on.
    if (ran) setTimeout(() => process.exit(process.exitCode ?? 1), kExitGraceMs).unref();
  }
}
