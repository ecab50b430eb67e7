/**
 * The nydusd flags as data, with upstream's names, aliases and defaults
 * (src/bin/nydusd/main.rs; reference/nydusd-cli-api.md §1.2) plus the vhost-user backend
 * conventions (--socket-path, --fd, --print-capabilities) and --log-format (ours).
 *
 * One table feeds both parsers: yargs (nydusd-args.ts: help, odd spellings, every error) and
 * the start-up fast path (nydusd-fast-args.ts), so the two cannot disagree on a name, an alias
 * or a default. This module imports nothing: it is on every start.
 */

export const kSubcommands = ['fuse', 'virtiofs', 'singleton', 'nbd', 'uffd'] as const;

/**
 * One flag, in yargs' option shape. A flag with `choices` and no `type` is a string that yargs
 * checks against the list (kept without `type` so yargs' messages stay as they were).
 */
export interface FlagSpec {
  readonly type?: 'string' | 'number' | 'boolean';
  readonly alias?: string;
  readonly choices?: readonly string[];
  readonly default?: string | number;
  readonly describe?: string;
  readonly hidden?: boolean;
}

export const kNydusdFlags: Readonly<Record<string, FlagSpec>> = {
  config: { alias: 'C', type: 'string', describe: 'configuration file (v1 JSON, v2 JSON or TOML)' },
  bootstrap: { alias: 'B', type: 'string', describe: 'RAFS metadata (bootstrap) file' },
  'localfs-dir': {
    alias: 'D',
    type: 'string',
    describe: 'blob directory: enables the localfs backend and a blob cache in the same directory (instead of --config)',
  },
  mountpoint: { alias: 'M', type: 'string', describe: 'FUSE mountpoint' },
  sock: { alias: 'socket-path', type: 'string', describe: 'vhost-user socket to create (virtio-fs)' },
  fd: { type: 'number', describe: 'already-listening vhost-user socket inherited from the parent (virtio-fs)' },
  'print-capabilities': { type: 'boolean', describe: 'print the vhost-user backend capabilities (JSON) and exit' },
  'fuse-threads': { alias: 'thread-num', type: 'number', default: 4, describe: 'FUSE worker threads, 1..1024' },
  'log-level': { alias: 'l', choices: ['trace', 'debug', 'info', 'warn', 'error'], default: 'info', describe: 'log level' },
  'log-file': { alias: 'L', type: 'string', describe: 'log to this file (JSON lines; ".log" appended when no extension)' },
  'log-format': { choices: ['text', 'json'], default: 'text', describe: 'format of log lines, on stderr or in --log-file' },
  'log-rotation-size': { type: 'number', default: 0, describe: 'rotate --log-file at this many MiB (0: never)' },
  'rlimit-nofile': { type: 'number', default: 1000000, describe: 'raise RLIMIT_NOFILE to this (0: leave unchanged)' },
  id: { type: 'string', describe: 'service instance identifier (requires --supervisor)' },
  supervisor: { type: 'string', describe: 'supervisor socket for live upgrade (requires --id)' },
  'virtual-mountpoint': { alias: 'm', type: 'string', default: '/', describe: 'path of the --bootstrap image inside the filesystem' },
  'failover-policy': {
    choices: ['none', 'resend', 'flush'],
    default: 'resend',
    describe: 'FUSE failover policy (only used with a supervisor)',
  },
  apisock: { alias: 'A', type: 'string', describe: 'HTTP API socket (mount images, daemon state, metrics)' },
  'prefetch-files': { type: 'string', describe: 'file listing absolute paths to prefetch first, one per line ("/" = the whole image; needs prefetch enabled in the config)' },
  // Recognised so they can be refused clearly (later work).
  upgrade: { type: 'boolean', describe: 'start in upgrade mode (not supported yet)' },
  writable: { type: 'boolean', describe: 'serve the overlay section (overlay.upper_dir/work_dir) read-write' },
  'shared-dir': { alias: 's', type: 'string', describe: 'serve this host directory read-write (passthroughfs) at --virtual-mountpoint' },
  'hybrid-mode': { type: 'boolean', describe: 'RAFS and passthroughfs together (accepted; both are always available)' },
  'dedup-db': { type: 'string', describe: 'chunk dedup database (not supported yet)' },
  fscache: { alias: 'F', type: 'string', hidden: true },
  'fscache-tag': { type: 'string', hidden: true },
  'fscache-threads': { type: 'number', hidden: true },
  threads: { type: 'number', hidden: true },
  version: { alias: 'V', type: 'boolean', describe: 'print version information' },
};

/** Pairs that may not be given together. */
export const kConflicts: readonly (readonly [string, string])[] = [
  ['localfs-dir', 'config'],
  ['bootstrap', 'shared-dir'],
];

/** [a, b]: giving a requires b. */
export const kImplies: readonly (readonly [string, string])[] = [
  ['id', 'supervisor'],
  ['supervisor', 'id'],
  ['prefetch-files', 'bootstrap'],
];
