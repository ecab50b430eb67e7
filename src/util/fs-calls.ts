/**
 * The few file-system calls a one-shot check makes (storage/service.ts, storage/localfs.ts), in
 * two flavours with the same results and errors: through Node's thread pool, for checks made
 * while guests are being served, or as plain system calls, for a daemon's own start (nothing
 * else runs on the event loop yet, and each thread-pool trip cost a start about a millisecond).
 */
import { mkdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdir, stat, unlink, writeFile } from 'node:fs/promises';

const kAsync = { mkdir, stat, writeFile, unlink };
const kBlocking = { mkdir: mkdirSync, stat: statSync, writeFile: writeFileSync, unlink: unlinkSync };

/** Await every call (a blocking call's result awaits as itself). */
export function fsCalls(blocking: boolean): typeof kAsync | typeof kBlocking {
  return blocking ? kBlocking : kAsync;
}
