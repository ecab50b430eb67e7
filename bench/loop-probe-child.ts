/**
 * The reference for the event-loop rows: a Node process that does nothing but sample its own idle
 * event loop (monitorEventLoopDelay, 1 ms), between a `begin` and an `end` message from its parent
 * (loop-probe.ts). It competes for the CPUs like the measured loop does (other processes, our
 * fill threads), so its worst delay over the same window is what the machine's scheduling alone
 * costs a loop that blocks on nothing.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

import type { ProbeReply, ProbeRequest } from './lib/loop-probe.js';

let h: ReturnType<typeof monitorEventLoopDelay> | undefined;
process.on('message', (m: ProbeRequest) => {
  if (m === 'begin') {
    h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    process.send?.('ready' satisfies ProbeReply);
  } else if (m === 'end' && h) {
    h.disable();
    process.send?.({ maxMs: h.max / 1e6, p99Ms: h.percentile(99) / 1e6 } satisfies ProbeReply);
    h = undefined;
  } else if (m === 'exit') {
    process.disconnect();
  }
});
