/**
 * Parsed nydusd arguments -> validated DaemonOptions. Decides the mode (FUSE or virtio-fs, with
 * the bare `--sock` form the upstream doc shows), refuses flags of features not built yet by
 * name, loads the configuration (or synthesizes one for --localfs-dir) and applies the
 * environment (IMAGE_PULL_AUTH, NYDUS_HEADER_*).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

import { applyImagePullAuth, loadConfigFile, parseConfigText, readBackendEnvironment, validateConfig } from '../config/index.js';
import type { LoadedConfig } from '../config/index.js';
import type { DaemonOptions } from '../daemon/index.js';
import { kDefaultStopTimeoutMs } from '../daemon/index.js';
import { NotSupportedError, UsageError } from '../util/errors.js';
import type { LogFormat, LogLevel } from '../util/logger.js';
import { kSubcommands } from './nydusd-flags.js';

export interface NydusdArgs {
  _: (string | number)[];
  [key: string]: unknown;
}

export interface ResolvedArgs {
  options: DaemonOptions;
  /** Warnings collected while loading the configuration and environment (logged once the logger exists). */
  warnings: string[];
}

function str(a: NydusdArgs, k: string): string | undefined {
  const v = a[k];
  return typeof v === 'string' ? v : undefined;
}

function num(a: NydusdArgs, k: string, flag: string, min: number, max: number): number | undefined {
  const v = a[k];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new UsageError(`--${flag}: expected an integer in ${min}..${max}`);
  }
  return v;
}

/** Flags of later work: accepted by the parser, refused here with their name. */
const kLaterFlags: readonly [string, string][] = [
  ['upgrade', '--upgrade (live upgrade)'],
  ['dedup-db', '--dedup-db (chunk dedup)'],
  ['fscache', '--fscache'],
  ['fscache-tag', '--fscache-tag'],
  ['fscache-threads', '--fscache-threads'],
  ['threads', '--threads'],
];

/**
 * `--prefetch-files FILE`, as upstream: one path per line, blank lines skipped, each trimmed and
 * absolute ("/" alone means the whole image).
 */
function readPrefetchFiles(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--prefetch-files ${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const paths = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const bad = paths.find((p) => !p.startsWith('/'));
  if (bad !== undefined) throw new UsageError(`--prefetch-files ${file}: ${JSON.stringify(bad)} is not an absolute path`);
  return paths;
}

function localfsConfig(dir: string): string {
  // What upstream synthesizes for -D: localfs backend plus a blob cache in the same directory.
  return JSON.stringify({
    device: {
      backend: { type: 'localfs', config: { dir } },
      cache: { type: 'blobcache', config: { work_dir: dir } },
    },
    mode: 'direct',
    digest_validate: false,
    iostats_files: false,
  });
}

/** The transport as the flags give it, before any configuration is read. */
export type TransportFlags = Pick<DaemonOptions, 'mode' | 'socketPath' | 'listenFd'>;

/**
 * Flags and configuration into DaemonOptions. `beforeConfig` sees the transport once every flag
 * is checked and before the configuration is loaded and validated (the CLI listens on --sock
 * there: src/daemon/early-listen.ts).
 */
export function resolveNydusdArgs(a: NydusdArgs, env: NodeJS.ProcessEnv = process.env, beforeConfig?: (t: TransportFlags) => void): ResolvedArgs {
  const positional = a._.map(String);
  const sub = positional[0];
  if (sub !== undefined && !(kSubcommands as readonly string[]).includes(sub)) {
    throw new UsageError(`unknown command ${JSON.stringify(sub)} (expected fuse or virtiofs); see --help`);
  }
  if (sub === 'singleton' || sub === 'nbd' || sub === 'uffd') throw new NotSupportedError(`nydusd ${sub}`);
  if (positional.length > 1) throw new UsageError(`unexpected argument ${JSON.stringify(positional[1])}`);
  for (const [key, what] of kLaterFlags) {
    const v = a[key];
    if (v !== undefined && v !== false) throw new NotSupportedError(what);
  }

  const mountpoint = str(a, 'mountpoint');
  const sock = str(a, 'sock');
  const fd = num(a, 'fd', 'fd', 0, 0x7fffffff);
  const wantsVirtio = sock !== undefined || fd !== undefined;
  let mode: 'fuse' | 'virtiofs';
  if (sub === 'virtiofs') {
    if (mountpoint !== undefined) throw new UsageError('--mountpoint is not valid with virtiofs (use --sock)');
    if (!wantsVirtio) throw new UsageError('virtiofs needs --sock (or --fd)');
    mode = 'virtiofs';
  } else if (sub === 'fuse') {
    if (wantsVirtio) throw new UsageError('--sock/--fd are not valid with fuse (use the virtiofs command)');
    if (mountpoint === undefined) throw new UsageError('fuse needs --mountpoint');
    mode = 'fuse';
  } else if (mountpoint !== undefined && wantsVirtio) {
    throw new UsageError('--mountpoint and --sock are mutually exclusive');
  } else if (wantsVirtio) {
    mode = 'virtiofs';
  } else if (mountpoint !== undefined) {
    mode = 'fuse';
  } else {
    throw new UsageError('--mountpoint (FUSE) or --sock (virtio-fs) is required; see --help');
  }
  if (sock !== undefined && fd !== undefined) throw new UsageError('--sock and --fd are mutually exclusive');

  const policy = str(a, 'failover-policy') ?? 'resend';
  if (policy === 'flush') throw new NotSupportedError('--failover-policy flush (failover needs a supervisor)');
  const virtualMountpoint = str(a, 'virtual-mountpoint') ?? '/';
  if (!virtualMountpoint.startsWith('/') || virtualMountpoint.split('/').includes('..')) {
    throw new UsageError(`--virtual-mountpoint ${virtualMountpoint}: must be an absolute path without ".."`);
  }

  // Without --bootstrap the daemon serves an empty root and images come through the API (Kata
  // starts `nydusd virtiofs --apisock A --sock S` with neither a bootstrap nor a config).
  const bootstrap = str(a, 'bootstrap');
  const prefetchList = str(a, 'prefetch-files');
  const prefetchFiles = prefetchList === undefined ? undefined : readPrefetchFiles(prefetchList);
  // --shared-dir: a host directory served read-write (passthroughfs) at --virtual-mountpoint.
  const sharedDir = str(a, 'shared-dir');
  if (sharedDir === '') throw new UsageError('--shared-dir: expected a directory');
  if (sharedDir !== undefined && bootstrap !== undefined) throw new UsageError('--shared-dir and --bootstrap are mutually exclusive');
  const socketPath = sock === undefined ? undefined : resolve(sock);
  beforeConfig?.({ mode, socketPath, listenFd: fd });
  const configPath = str(a, 'config');
  const localfsDir = str(a, 'localfs-dir');
  let loaded: LoadedConfig;
  if (localfsDir !== undefined) {
    const source = `--localfs-dir ${localfsDir}`;
    loaded = parseConfigText(localfsConfig(resolve(localfsDir)), source);
    validateConfig(loaded.config, loaded.origin, source);
  } else if (configPath !== undefined) {
    loaded = loadConfigFile(configPath);
  } else if (bootstrap === undefined) {
    loaded = parseConfigText('{"version": 2}', '(no configuration)');
  } else {
    throw new UsageError('both --config and --localfs-dir are missing');
  }
  const apiSock = str(a, 'apisock');
  // --writable: the overlay section (upper_dir, work_dir) of the --bootstrap image, read-write.
  const writable = a['writable'] === true;
  if (writable) {
    if (bootstrap === undefined) throw new UsageError('--writable needs --bootstrap (the lower layer of the overlay)');
    const o = loaded.config.overlay;
    if (!o || o.upper_dir === '' || o.work_dir === '') throw new UsageError('--writable needs overlay.upper_dir and overlay.work_dir in the configuration');
  }

  const backendEnv = readBackendEnvironment(env);
  const warnings = [...loaded.warnings];
  for (const k of backendEnv.rejected) warnings.push(`environment ${k}: not a valid HTTP header; ignored`);

  const options: DaemonOptions = {
    mode,
    mountpoint: mountpoint === undefined ? undefined : resolve(mountpoint),
    socketPath,
    listenFd: fd,
    bootstrap: bootstrap === undefined ? undefined : resolve(bootstrap),
    sharedDir: sharedDir === undefined ? undefined : resolve(sharedDir),
    apiSock: apiSock === undefined ? undefined : resolve(apiSock),
    prefetchFiles,
    writable,
    config: applyImagePullAuth(loaded.config, backendEnv.imagePullAuth),
    configOrigin: loaded.origin,
    configSource: loaded.source,
    virtualMountpoint,
    fuseThreads: num(a, 'fuse-threads', 'fuse-threads', 1, 1024) ?? 4,
    id: str(a, 'id'),
    supervisor: str(a, 'supervisor'),
    failoverPolicy: policy === 'none' ? 'none' : 'resend',
    rlimitNofile: num(a, 'rlimit-nofile', 'rlimit-nofile', 0, Number.MAX_SAFE_INTEGER) ?? 1000000,
    stopTimeoutMs: kDefaultStopTimeoutMs,
    log: {
      level: (str(a, 'log-level') ?? 'info') as LogLevel,
      format: (str(a, 'log-format') ?? 'text') as LogFormat,
      file: str(a, 'log-file'),
      rotationSizeMb: num(a, 'log-rotation-size', 'log-rotation-size', 0, 1 << 20) ?? 0,
    },
    backendHeaders: backendEnv.headers,
  };
  return { options, warnings };
}
