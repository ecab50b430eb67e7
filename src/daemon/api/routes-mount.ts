/**
 * POST (mount), PUT (remount) and DELETE (umount) /api/v1/mount?mountpoint=PATH, with upstream's
 * body (ApiMountCmd: `source` and `config` required strings, `fs_type` default "",
 * `prefetch_files` an optional list of absolute paths; unknown keys ignored).
 */
import type { MountSpec } from '../mount-kinds.js';
import type { ApiContext } from './context.js';
import { mountsOf } from './context.js';
import { ApiError, mountFailure, parseBody, queryString } from './errors.js';
import { jsonObject } from './routes-daemon.js';
import type { ApiRequest, Router } from './router.js';
import { kNoContent } from './router.js';

function mountpointOf(req: ApiRequest): string {
  const mp = req.query.get('mountpoint');
  if (mp === null) throw queryString("'mountpoint' should be specified in query string");
  return mp;
}

function field(body: Record<string, unknown>, key: string, required: boolean): string | undefined {
  const v = body[key];
  if (v === undefined) {
    if (required) throw parseBody(`missing field \`${key}\``);
    return undefined;
  }
  if (typeof v !== 'string') throw parseBody(`invalid type for \`${key}\`: expected a string`);
  return v;
}

export function mountSpec(req: ApiRequest): MountSpec {
  const mountpoint = mountpointOf(req);
  const body = jsonObject(req);
  const source = field(body, 'source', true) as string;
  const config = field(body, 'config', true) as string;
  const fsType = field(body, 'fs_type', false) ?? '';
  const pf = body['prefetch_files'];
  let prefetchFiles: string[] | undefined;
  if (pf !== undefined && pf !== null) {
    if (!Array.isArray(pf) || !pf.every((f) => typeof f === 'string')) throw parseBody('invalid type for `prefetch_files`: expected a list of strings');
    prefetchFiles = pf;
  }
  return { mountpoint, fsType, source, config: { text: config }, prefetchFiles };
}

function table(ctx: ApiContext): NonNullable<ReturnType<typeof mountsOf>> {
  const t = mountsOf(ctx);
  if (!t) throw new ApiError(501, 'Mount(DaemonAbnormal(Unsupported("this daemon has no filesystem service")))');
  return t;
}

async function run(ctx: ApiContext, what: string, op: () => Promise<void>): Promise<typeof kNoContent> {
  try {
    await op();
  } catch (err) {
    const e = mountFailure(err);
    ctx.log.warn(`API: ${what} failed: ${(err as Error).message}`);
    throw e;
  }
  return kNoContent;
}

export function addMountRoutes(r: Router, ctx: ApiContext): void {
  r.add('/api/v1/mount', 'POST', 'required', (req) => {
    const spec = mountSpec(req);
    const t = table(ctx);
    ctx.log.info(`API: mount ${spec.fsType || '""'} ${spec.source} at ${spec.mountpoint}`);
    return run(ctx, `mount at ${spec.mountpoint}`, () => t.mount(spec));
  });
  r.add('/api/v1/mount', 'PUT', 'required', (req) => {
    const spec = mountSpec(req);
    const t = table(ctx);
    ctx.log.info(`API: remount ${spec.source} at ${spec.mountpoint}`);
    return run(ctx, `remount at ${spec.mountpoint}`, () => t.remount(spec));
  });
  r.add('/api/v1/mount', 'DELETE', 'none', (req) => {
    const mp = mountpointOf(req);
    const t = table(ctx);
    ctx.log.info(`API: umount ${mp}`);
    return run(ctx, `umount of ${mp}`, () => t.umount(mp));
  });
}
