/**
 * Blob ids name files (`<dir>/<id>`, `<work_dir>/<id>.blob.data`) but come from images, which
 * are untrusted: only plain file names are accepted, so no id can reach outside its directory.
 */
import { StorageError } from './contract/errors.js';

const kMaxBlobIdBytes = 200; // leaves room for ".blob.data.chunk_map" within NAME_MAX (255)

export function checkBlobId(id: string): void {
  let why: string | undefined;
  if (id.length === 0) why = 'empty';
  else if (id === '.' || id === '..') why = 'a relative directory name';
  else if (id.includes('/')) why = 'contains "/"';
  else if (id.includes('\0')) why = 'contains NUL';
  else if ([...id].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f)) why = 'contains a control character';
  else if (Buffer.byteLength(id) > kMaxBlobIdBytes) why = `longer than ${kMaxBlobIdBytes} bytes`;
  if (why !== undefined) {
    throw new StorageError('ERR_BAD_BLOB_ID', `invalid blob id ${JSON.stringify(id.slice(0, 80))}: ${why}`);
  }
}
