/**
 * The parts of undici the HTTP client uses, loaded from their own files instead of the package
 * entry. undici's index loads all of undici (fetch, WebSocket, cookies, the mock agents, the
 * cache stores, HTTP/2...) for ~90 ms of compiling on every network-backend start (the entry
 * point was most of the time between "starting" and "storage ready" of a registry start), while
 * Agent and its connector are about a quarter of that. These files are undici's own CommonJS
 * modules (lib/dispatcher/agent.js, lib/core/connect.js); should a release move them, the package
 * entry is loaded instead, so this only ever costs speed.
 *
 * ProxyAgent (CONNECT tunnels to https origins through a forward proxy) talks through the
 * Dispatcher API that undici's entry installs on Dispatcher.prototype, so it comes from the
 * entry, on first use.
 */
import { createRequire } from 'node:module';

import type * as Undici from 'undici';

const load = createRequire(import.meta.url);

export interface UndiciParts {
  Agent: typeof Undici.Agent;
  buildConnector: typeof Undici.buildConnector;
}

function loadParts(): UndiciParts {
  try {
    const Agent = load('undici/lib/dispatcher/agent.js') as unknown;
    const buildConnector = load('undici/lib/core/connect.js') as unknown;
    if (typeof Agent === 'function' && typeof buildConnector === 'function') {
      return { Agent: Agent as typeof Undici.Agent, buildConnector: buildConnector as typeof Undici.buildConnector };
    }
  } catch {
    // A layout this undici release does not have: the package entry below.
  }
  const all = load('undici') as typeof Undici;
  return { Agent: all.Agent, buildConnector: all.buildConnector };
}

export const undici: UndiciParts = loadParts();

/** undici's ProxyAgent (loads the whole package on the first call). */
export function proxyAgentClass(): typeof Undici.ProxyAgent {
  return (load('undici') as typeof Undici).ProxyAgent;
}
