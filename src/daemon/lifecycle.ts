/**
 * The daemon lifecycle: prepare (rlimit, bootstrap, transport target, backend, cache dir), serve
 * (the injected step), run until SIGTERM/SIGINT or the service ends, then an orderly stop with a
 * bounded timeout: stop the service (unmount / close the socket), then close storage (running
 * fills settle, chunk maps and cache files are closed).
 */
import { redactConfig } from '../config/index.js';
import { StorageService, storageSettings } from '../storage/index.js';
import type { StorageSettings } from '../storage/index.js';
import { NydusError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { kLogLevels, RootLogger } from '../util/logger.js';
import type { LogLevel } from '../util/logger.js';
import type { ApiStarter, ControlServer, DaemonControl } from './control.js';
import type { EarlyListener } from './early-listen.js';
import { listenEarly, listensEarly } from './early-listen.js';
import { ErrorEvents } from './events.js';
import type { BuildInfo, DaemonOptions } from './options.js';
import { applyRlimitNofile, checkApiSocket, checkBootstrap, checkTransportTarget, configNotes } from './prepare.js';
import type { RunningService, ServeStep } from './serve.js';
import { serveVfs } from './serve-vfs.js';
import { DaemonStateMachine } from './state.js';

const kUnknownBuild: BuildInfo = { package_ver: 'unknown', git_commit: 'unknown', build_time: '', profile: 'release', rustc: `node ${process.version}` };

export interface DaemonDeps {
  log: Logger;
  /** Builds the filesystem and attaches the transport (default: not supported yet). */
  serve?: ServeStep;
  /** Tests: replace the storage construction. */
  createStorage?: (settings: StorageSettings, log: Logger) => Promise<StorageService>;
  /** Tests: skip setrlimit. */
  applyRlimit?: (requested: number, log: Logger) => void;
  /** What the API reports as `version` (the CLI's --version facts). */
  buildInfo?: BuildInfo;
  /** Starts the HTTP API for --apisock (src/daemon/api startApiServer; the CLI wires it). */
  api?: ApiStarter;
  /**
   * The --sock socket, listening already (the CLI's claimFreeSocket): the daemon owns it from
   * here, skips the socket path check, and hands it to the serve step.
   */
  listener?: EarlyListener;
}

export class Daemon {
  readonly machine = new DaemonStateMachine();
  /** Error log records, for GET /api/v1/daemon/events. */
  readonly events = new ErrorEvents();
  /** PUT /api/v1/config values. */
  readonly hotConfig = new Map<string, string>();
  private _storage: StorageService | undefined;
  private _service: RunningService | undefined;
  private _api: ControlServer | undefined;
  private _stopping: Promise<void> | undefined;
  private readonly _log: Logger;
  private _stopRequested!: (reason: string) => void;
  /** Resolves with a reason when the API asks the daemon to stop (PUT /api/v1/daemon/exit). */
  readonly stopRequested = new Promise<string>((resolve) => (this._stopRequested = resolve));

  constructor(
    readonly options: DaemonOptions,
    private readonly _deps: DaemonDeps,
  ) {
    this._log = _deps.log;
    this.machine.onChange((from, to, event) => this._log.debug(`state ${from} -> ${to} (${event})`));
    if (_deps.log instanceof RootLogger) _deps.log.onError((module, message) => this.events.push(`[${module}] ${message}`));
  }

  get state(): string {
    return this.machine.state;
  }
  get storage(): StorageService | undefined {
    return this._storage;
  }
  get service(): RunningService | undefined {
    return this._service;
  }
  get api(): ControlServer | undefined {
    return this._api;
  }

  /**
   * INIT -> READY -> RUNNING, then the API socket (so its first answer already says RUNNING,
   * as upstream in virtio-fs mode). The vhost-user socket of the default serve step listens as
   * soon as the checks pass, before storage and the image (early-listen.ts). On failure
   * everything prepared so far is released (STOPPED).
   */
  async start(): Promise<void> {
    const o = this.options;
    // hrtime, not performance.now(): the first use of `performance` loads perf_hooks (~2 ms).
    const t0 = process.hrtime.bigint();
    const log = this._log;
    // A socket the CLI listens on already is on a path it checked (early-listen.ts).
    let listener = this._deps.listener;
    log.info(`starting: ${o.mode}, ${o.bootstrap === undefined ? 'no bootstrap (empty root for API mounts)' : `bootstrap ${o.bootstrap}`}, config ${o.configSource}`);
    if (log.debugEnabled) log.debug(`configuration: ${JSON.stringify(redactConfig(o.config))}`);
    if (o.supervisor !== undefined) log.warn('--supervisor: live upgrade and failover are not supported yet; the supervisor is never contacted');
    try {
      (this._deps.applyRlimit ?? applyRlimitNofile)(o.rlimitNofile, log);
      if (o.bootstrap !== undefined) {
        for (const note of configNotes(o.config, o.writable === true)) log.warn(note);
        await checkBootstrap(o.bootstrap);
      }
      if (listener === undefined) await checkTransportTarget(o, log);
      if (o.apiSock !== undefined) await checkApiSocket(o.apiSock);
      // Only the default serve step accepts on it; a stand-in makes its own transport.
      if (listener === undefined && this._deps.serve === undefined && listensEarly(o)) listener = listenEarly(o.socketPath);
      if (listener !== undefined && log.debugEnabled) {
        log.debug(`${listener.path}: listening since ${listener.listenedAtMs.toFixed(1)} ms after the process started; connections are accepted once the image is mounted`);
      }
      if (o.bootstrap !== undefined) {
        const settings = storageSettings(o.config, o.configOrigin, o.backendHeaders);
        // Nothing is served yet: the storage's one-shot checks may block (CreateBackendOptions.startup).
        const create = this._deps.createStorage ?? ((st: StorageSettings, l: Logger) => StorageService.create(st, l, { startup: true }));
        this._storage = await create(settings, log.child('storage'));
        log.info(
          `storage ready: backend ${settings.backend.type}, cache ${settings.cache.kind === 'blobcache' ? `blobcache in ${settings.cache.workDir}` : 'dummycache'}`,
        );
      }
      this._service = await (this._deps.serve ?? serveVfs)({
        options: o,
        storage: this._storage,
        log,
        ...(listener === undefined ? {} : { listener }),
        ...(this._deps.createStorage ? { createStorage: this._deps.createStorage } : {}),
      });
      this.machine.fire('Mount');
      this.machine.fire('Start');
      if (o.apiSock !== undefined) {
        if (!this._deps.api) throw new NydusError('ERR_NO_API', '--apisock: this daemon was built without an API server (DaemonDeps.api)');
        this._api = await this._deps.api(this._control(), o.apiSock);
      }
    } catch (err) {
      await this._service?.stop().catch((e: unknown) => log.error(`stopping the service failed: ${(e as Error).message}`));
      this._service = undefined;
      listener?.close();
      await this._release();
      if (this.machine.state === 'RUNNING') this.machine.fire('Stop');
      if (this.machine.can('Stop')) this.machine.fire('Stop');
      throw err;
    }
    log.info(`ready in ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1)} ms (state ${this.machine.state})`);
  }

  private _control(): DaemonControl {
    return {
      log: this._log.child('api'),
      buildInfo: this._deps.buildInfo ?? kUnknownBuild,
      options: this.options,
      machine: this.machine,
      service: () => this._service,
      requestStop: (reason) => this._stopRequested(reason),
      stopping: () => this._stopping !== undefined,
      setLogLevel: (level) => this._setLogLevel(level),
      events: this.events,
      hotConfig: this.hotConfig,
    };
  }

  private _setLogLevel(level: string): boolean {
    const l = level.toLowerCase();
    const root = this._deps.log;
    if (!(root instanceof RootLogger)) return false;
    if (l === 'off') {
      root.setLevel('error');
      root.silence();
      return true;
    }
    if (!(kLogLevels as readonly string[]).includes(l)) return false;
    root.setLevel(l as LogLevel);
    return true;
  }

  /** Orderly stop; idempotent (later calls share the first). */
  stop(reason: string): Promise<void> {
    this._stopping ??= this._stop(reason);
    return this._stopping;
  }

  private async _stop(reason: string): Promise<void> {
    this._log.info(`stopping: ${reason}`);
    if (this.machine.state === 'RUNNING') this.machine.fire('Stop');
    let failure: unknown;
    try {
      await this._service?.stop();
    } catch (err) {
      failure = err;
      this._log.error(`stopping the service failed: ${(err as Error).message}`);
    }
    await this._api?.close();
    await this._release();
    if (this.machine.can('Umount')) this.machine.fire('Umount');
    else if (this.machine.can('Stop')) this.machine.fire('Stop');
    if (failure !== undefined) throw failure instanceof Error ? failure : new Error('stopping the service failed');
  }

  private async _release(): Promise<void> {
    const s = this._storage;
    this._storage = undefined;
    if (s) {
      try {
        await s.close();
        const { backend, cache } = s.stats();
        this._log.info(
          `storage closed: backend ${backend.readCount} reads (${backend.readBytes} bytes, ${backend.readErrors} errors); ` +
            `cache ${cache.hits} hits, ${cache.misses} misses, ${cache.chunksFilled} chunks filled`,
        );
      } catch (err) {
        this._log.error(`closing storage failed: ${(err as Error).message}`);
      }
    }
  }
}

export interface RunOptions {
  signals?: readonly NodeJS.Signals[];
}

/**
 * Starts the daemon and serves until a signal or the end of the service. Resolves with the exit
 * status (0 clean stop, 1 runtime failure); start failures reject (the CLI maps them).
 */
export async function runDaemon(options: DaemonOptions, deps: DaemonDeps, run: RunOptions = {}): Promise<number> {
  const daemon = new Daemon(options, deps);
  const log = deps.log;
  // Handlers go in before start so a signal during startup stops cleanly instead of killing.
  const signals = run.signals ?? ['SIGTERM', 'SIGINT'];
  let onSignal: ((sig: NodeJS.Signals) => void) | undefined;
  const signalled = new Promise<string>((resolve) => {
    let count = 0;
    onSignal = (sig: NodeJS.Signals): void => {
      count++;
      if (count === 1) resolve(`received ${sig}`);
      else log.warn(`received ${sig} again while stopping; still waiting (at most ${options.stopTimeoutMs} ms)`);
    };
    for (const s of signals) process.on(s, onSignal);
  });
  const removeHandlers = (): void => {
    if (onSignal) for (const s of signals) process.off(s, onSignal);
  };
  // Signal handlers do not keep Node's loop alive, and native transport threads may not either:
  // the daemon itself holds it until it has stopped.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  let timer: NodeJS.Timeout | undefined;
  try {
    await daemon.start();
    const done = daemon.service?.done ?? new Promise<void>(() => undefined);
    let exitCode = 0;
    const reason = await Promise.race([
      signalled,
      daemon.stopRequested,
      done.then(
        () => 'the service ended',
        (err: unknown) => {
          exitCode = 1;
          log.error(`the service failed: ${(err as Error).message}`);
          return 'service failure';
        },
      ),
    ]);
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), options.stopTimeoutMs);
    });
    let r: 'stopped' | 'timeout';
    try {
      r = await Promise.race([daemon.stop(reason).then(() => 'stopped' as const), timeout]);
    } catch (err) {
      log.error(`stop failed: ${(err as Error).message}`);
      r = 'stopped';
      exitCode = 1;
    }
    if (r === 'timeout') {
      log.error(`stop did not finish within ${options.stopTimeoutMs} ms; exiting anyway`);
      throw new NydusError('ERR_STOP_TIMEOUT', `stop did not finish within ${options.stopTimeoutMs} ms`);
    }
    log.info(`stopped (state ${daemon.state})`);
    return exitCode;
  } finally {
    clearTimeout(timer);
    clearInterval(keepAlive);
    removeHandlers();
  }
}
