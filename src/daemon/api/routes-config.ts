/**
 * Hot-reload values (upstream utils/src/config.rs `Keys`): PUT /api/v1/config?id=ID with a JSON
 * object of `registry_auth`, `proxy_url` and `dragonfly_scheduler_endpoint` stores them under
 * "ID:key" (any other key: 500, as upstream); GET returns the stored values (with `id`: the
 * values of that id, keys stripped of the prefix; without: every raw entry).
 *
 * `registry_auth` (base64 "user:password", the snapshotter's UpdateAuthConfig; empty: drop the
 * credential) is validated and handed to the storage of each mount the id names (its mountpoint
 * or configuration id; every mount when the id is empty) through StorageService.reloadAuth: a
 * registry backend uses it from its next request on; other backends have nothing to apply it to.
 */
import { ConfigError } from '../../config/index.js';
import { checkBasicAuth } from '../../storage/index.js';
import type { ApiContext } from './context.js';
import { mountsOf } from './context.js';
import { ApiError, debugString } from './errors.js';
import { jsonObject } from './routes-daemon.js';
import type { Router } from './router.js';
import { kNoContent, ok } from './router.js';

const kKeys = new Set(['registry_auth', 'proxy_url', 'dragonfly_scheduler_endpoint']);

function payloadError(what: string): ApiError {
  return new ApiError(500, `Configure(ResponsePayloadType(${debugString(what)}))`);
}

/** The credential check (the registry backend's own): base64 of "user:password", or empty. */
export function checkRegistryAuth(v: string): string | undefined {
  if (v.trim() === '') return undefined;
  try {
    checkBasicAuth(v, 'registry_auth');
    return undefined;
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
}

export function addConfigRoutes(r: Router, ctx: ApiContext): void {
  r.add('/api/v1/config', 'GET', 'none', (req) => {
    const id = req.query.get('id');
    const out: Record<string, string> = {};
    for (const [k, v] of ctx.hotConfig) {
      if (id === null) out[k] = v;
      else if (k.startsWith(`${id}:`)) out[k.slice(id.length + 1)] = v;
    }
    return ok(out);
  });
  r.add('/api/v1/config', 'PUT', 'required', (req) => {
    const id = req.query.get('id') ?? '';
    const body = jsonObject(req);
    for (const [k, v] of Object.entries(body)) {
      if (!kKeys.has(k)) throw payloadError(`unknown key ${JSON.stringify(k)} (accepted: registry_auth, proxy_url, dragonfly_scheduler_endpoint)`);
      if (typeof v !== 'string') throw payloadError(`${k}: expected a string`);
      if (k === 'registry_auth') {
        const bad = checkRegistryAuth(v);
        if (bad) throw payloadError(bad);
      }
    }
    for (const [k, v] of Object.entries(body)) ctx.hotConfig.set(`${id}:${k}`, v as string);
    const auth = body['registry_auth'];
    if (typeof auth === 'string') {
      const all = mountsOf(ctx)?.list() ?? [];
      const targets = id === '' ? all : all.filter((m) => m.mountpoint === id || m.instance.metricsId === id);
      let applied = 0;
      for (const m of targets) if (m.instance.reloadAuth?.({ auth })) applied++;
      ctx.log.info(`registry_auth for ${id === '' ? 'every mount' : id}: applied to ${applied} of ${targets.length} mount(s) (others use no registry credential)`);
    }
    return kNoContent;
  });
}
