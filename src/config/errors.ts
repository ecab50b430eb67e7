/** Errors of the configuration layer: every one maps to exit status 2 (bad configuration). */
import { NydusError } from '../util/errors.js';

export class ConfigError extends NydusError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('ERR_CONFIG', message, options);
    this.name = 'ConfigError';
  }
}
