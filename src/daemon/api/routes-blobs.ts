/**
 * API v2 blob routes: fscache blob cache entries (`nydusd singleton --fscache`, which this daemon
 * does not have). Bodies and queries are checked as upstream (a bad entry, a DELETE naming
 * nothing, a GET without `domain_id`: 400); a valid request answers 501 naming the feature.
 * GET lists the entries of a domain (none can exist here); upstream panics on it (`todo!()`).
 */
import { parseBlobCacheEntry } from '../../config/index.js';
import { badRequest, unsupported } from './errors.js';
import type { Router } from './router.js';
import { ok } from './router.js';

const kFscache = 'fscache blob cache entries (nydusd singleton --fscache)';

export function addBlobRoutes(r: Router): void {
  r.add('/api/v2/blobs', 'PUT', 'required', (req) => {
    try {
      parseBlobCacheEntry((req.body ?? Buffer.alloc(0)).toString('utf8'), 'blob cache entry');
    } catch {
      throw badRequest();
    }
    throw unsupported('CreateBlobObject', 'DaemonAbnormal', `${kFscache} are not supported yet`);
  });
  r.add('/api/v2/blobs', 'DELETE', 'none', (req) => {
    const domain = req.query.get('domain_id');
    const blob = req.query.get('blob_id');
    if (domain !== null) throw unsupported('DeleteBlobObject', 'DaemonAbnormal', `${kFscache} are not supported yet`);
    if (blob !== null) throw unsupported('DeleteBlobFile', 'DaemonAbnormal', `${kFscache} are not supported yet`);
    throw badRequest();
  });
  r.add('/api/v2/blobs', 'GET', 'none', (req) => {
    if (req.query.get('domain_id') === null) throw badRequest();
    return ok([]);
  });
}
