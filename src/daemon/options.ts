/**
 * What the CLI hands the daemon: every flag validated, the configuration loaded, validated and
 * with environment overrides applied. Nothing in here has been touched on disk yet except the
 * configuration file itself.
 */
import type { ConfigOrigin, NydusConfig } from '../config/index.js';
import type { LogFormat, LogLevel } from '../util/logger.js';

export interface DaemonOptions {
  /** fuse: mount on the host through /dev/fuse; virtiofs: vhost-user-fs backend for a VMM. */
  mode: 'fuse' | 'virtiofs';
  /** fuse: where to mount (an existing directory). */
  mountpoint: string | undefined;
  /** virtiofs: the vhost-user socket to create and listen on (`--sock`, `--socket-path`). */
  socketPath: string | undefined;
  /** virtiofs: an already-listening AF_UNIX socket inherited from the parent (`--fd`). */
  listenFd: number | undefined;
  /** RAFS bootstrap (or an inline-meta data blob); undefined: serve an empty root for API mounts. */
  bootstrap: string | undefined;
  /** `--shared-dir`: a host directory served read-write (passthrough_fs) at virtualMountpoint. */
  sharedDir?: string | undefined;
  /** `--apisock`: the HTTP API's Unix socket. */
  apiSock?: string | undefined;
  /** `--writable`: the image's overlay section is served read-write. */
  writable?: boolean | undefined;
  /** `--prefetch-files`: absolute paths to prefetch first (overrides the bootstrap's table). */
  prefetchFiles?: string[] | undefined;
  /** Normalized (v2-shape) configuration; IMAGE_PULL_AUTH already applied. */
  config: NydusConfig;
  configOrigin: ConfigOrigin;
  /** Where the configuration came from, for messages: a path or "--localfs-dir DIR". */
  configSource: string;
  /** Path inside the FUSE/virtio-fs filesystem where the --bootstrap image appears ("/"). */
  virtualMountpoint: string;
  /** `--fuse-threads` / `--thread-num`, 1..1024. */
  fuseThreads: number;
  /** `--id` / `--supervisor` (recorded for the API; live upgrade is not built yet). */
  id: string | undefined;
  supervisor: string | undefined;
  /** `--failover-policy`: only the behaviours that need no supervisor are accepted. */
  failoverPolicy: 'none' | 'resend';
  /** `--rlimit-nofile` (0: leave unchanged). */
  rlimitNofile: number;
  /** Upper bound of an orderly stop before the daemon gives up and exits 1. */
  stopTimeoutMs: number;
  log: {
    level: LogLevel;
    format: LogFormat;
    file: string | undefined;
    rotationSizeMb: number;
  };
  /** Extra HTTP headers for network backends (NYDUS_HEADER_*), User-Agent included. */
  backendHeaders: Record<string, string>;
}

/**
 * Kata stops nydusd with SIGTERM and SIGKILLs it 5 s later: an orderly stop gets 3 s, and the
 * CLI's 2 s exit grace (a handle a transport leaked) ends within that window too.
 */
export const kDefaultStopTimeoutMs = 3_000;

/** Version facts reported by `--version` and GET /api/v1/daemon (upstream BuildTimeInfo). */
export interface BuildInfo {
  package_ver: string;
  git_commit: string;
  build_time: string;
  profile: string;
  rustc: string;
}
