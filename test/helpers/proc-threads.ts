/** This process's threads as /proc lists them (Linux). */
import { readdirSync, readFileSync } from 'node:fs';

/** Ids of this process's threads named `comm` (pthread_setname_np), e.g. the nydus-fill threads. */
export function threadsNamed(comm: string): string[] {
  return readdirSync('/proc/self/task').filter((t) => {
    try {
      return readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() === comm;
    } catch {
      // The thread ended meanwhile.
      return false;
    }
  });
}
