/**
 * Child of cli-nydusd.test: the real nydusd main and process wrapper, with a stand-in serve step
 * (the filesystem layer is not wired yet) so signals, stop and exit statuses can be tested end to
 * end. NYDUSD_TEST_SERVE: "ok" (serves until stopped), "fail" (a runtime failure at start),
 * "die" (the service fails after start).
 */
import { main } from '../../src/cli/nydusd.js';
import { runMain } from '../../src/cli/run.js';
import type { RunningService, ServeStep } from '../../src/daemon/index.js';

const mode = process.env['NYDUSD_TEST_SERVE'] ?? 'ok';

const serve: ServeStep = (ctx) => {
  if (mode === 'fail') return Promise.reject(new Error('cannot open /dev/fuse: simulated'));
  let fail: (e: Error) => void = () => undefined;
  const done = new Promise<void>((_resolve, reject) => {
    fail = reject;
  });
  if (mode === 'die') setTimeout(() => fail(new Error('transport lost: simulated')), 50);
  const svc: RunningService = {
    done,
    stop: () => {
      ctx.log.info('test service stopped');
      return Promise.resolve();
    },
  };
  return Promise.resolve(svc);
};

runMain('nydusd', (argv) => main(argv, { serve }));
