/**
 * The bridge from the native core's log (native/core/common/log.h) to the daemon's logger:
 * records from C++ threads arrive as `native:<module>` records, filtered by the logger's level,
 * and the level is mirrored into the core so disabled levels cost the core one atomic load.
 * Attached by the daemon's entry point; detached when the logger closes.
 */
import { native } from '../native/index.js';
import type { Logger, LogLevel, RootLogger } from '../util/logger.js';

// Core levels (common/log.h): trace 0 .. error 4.
const kNativeToLevel: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error'];
const kLevelToNative: Record<LogLevel, number> = { trace: 0, debug: 1, info: 2, warn: 3, error: 4 };

/** Routes native core log records into `logger` until it closes. */
export function attachNativeLog(logger: RootLogger): void {
  const addon = native();
  const modules = new Map<string, Logger>();
  addon.setLogHandler((level, module, message) => {
    let log = modules.get(module);
    if (log === undefined) {
      log = logger.child(`native:${module}`);
      modules.set(module, log);
    }
    log.log(kNativeToLevel[level] ?? 'error', message);
  });
  logger.addLevelHook({
    level: (level) => addon.setLogLevel(kLevelToNative[level]),
    close: () => addon.setLogHandler(null),
  });
}
