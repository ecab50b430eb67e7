/** DaemonOptions for in-process daemons in tests: every field set, `over` wins. */
import { parseConfigText } from '../../src/config/index.js';
import type { DaemonOptions } from '../../src/daemon/index.js';

export function testDaemonOptions(over: Partial<DaemonOptions> = {}, configText = '{"version": 2}'): DaemonOptions {
  const loaded = parseConfigText(configText, 'test');
  return {
    mode: 'fuse',
    mountpoint: undefined,
    socketPath: undefined,
    listenFd: undefined,
    bootstrap: undefined,
    config: loaded.config,
    configOrigin: loaded.origin,
    configSource: 'test',
    virtualMountpoint: '/',
    fuseThreads: 1,
    id: undefined,
    supervisor: undefined,
    failoverPolicy: 'resend',
    rlimitNofile: 0,
    stopTimeoutMs: 5000,
    log: { level: 'info', format: 'text', file: undefined, rotationSizeMb: 0 },
    backendHeaders: {},
    ...over,
  };
}
