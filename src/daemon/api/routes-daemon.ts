/**
 * Daemon routes (upstream http_endpoint_common.rs / _v1.rs / _v2.rs): info, log level, error
 * events, the RAFS super block of a mount, start and exit, and the FUSE live-upgrade hooks
 * (sendfd/takeover), which this daemon does not have and answers 501.
 */
import { redactConfig } from '../../config/index.js';
import type { ApiContext } from './context.js';
import { mountsOf } from './context.js';
import { ApiError, debugString, parseBody, queryString, unexpectedEvent, unsupported } from './errors.js';
import type { ApiRequest, Router } from './router.js';
import { kNoContent, ok } from './router.js';

/** `time` crate human-readable form: "2026-07-23 10:20:30.123456789 +00:00:00". */
export function humanTime(d: Date): string {
  const iso = d.toISOString(); // 2026-07-23T10:20:30.123Z
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}.${iso.slice(20, 23)}000000 +00:00:00`;
}

function backendCollection(ctx: ApiContext): Record<string, unknown> | null {
  const mounts = mountsOf(ctx);
  if (!mounts) return null;
  const out: Record<string, unknown> = {};
  for (const m of mounts.list()) {
    out[m.mountpoint] = {
      backend_type: m.instance.backendType,
      mountpoint: m.mountpoint,
      mounted_time: humanTime(m.mountedAt),
      config: m.instance.config === undefined ? null : redactConfig(m.instance.config),
    };
  }
  return out;
}

function daemonInfo(ctx: ApiContext, withBackends: boolean): Record<string, unknown> {
  return {
    version: { ...ctx.buildInfo },
    id: ctx.options.id ?? null,
    supervisor: ctx.options.supervisor ?? null,
    state: ctx.machine.state,
    backend_collection: withBackends ? backendCollection(ctx) : null,
  };
}

/** A JSON object body, or 400 ParseBody naming what is wrong. */
export function jsonObject(req: ApiRequest): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse((req.body ?? Buffer.alloc(0)).toString('utf8'));
  } catch (err) {
    throw parseBody((err as Error).message);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw parseBody(`invalid type: expected a JSON object, got ${Array.isArray(v) ? 'an array' : typeof v}`);
  return v as Record<string, unknown>;
}

function setLogLevel(ctx: ApiContext, req: ApiRequest): typeof kNoContent {
  const body = jsonObject(req);
  const level = body['log_level'];
  if (level === undefined) throw parseBody('missing field `log_level`');
  if (typeof level !== 'string') throw parseBody('invalid type for `log_level`: expected a string');
  if (!ctx.setLogLevel(level)) {
    throw new ApiError(500, `Configure(ResponsePayloadType(${debugString(`log_level ${JSON.stringify(level)}: expected one of trace, debug, info, warn, error, off`)}))`);
  }
  ctx.log.info(`log level set to ${level.toLowerCase()} through the API`);
  return kNoContent;
}

export function addDaemonRoutes(r: Router, ctx: ApiContext): void {
  r.add('/api/v1/daemon', 'GET', 'none', () => ok(daemonInfo(ctx, true)));
  r.add('/api/v2/daemon', 'GET', 'none', () => ok(daemonInfo(ctx, false)));
  r.add('/api/v1/daemon', 'PUT', 'required', (req) => setLogLevel(ctx, req));
  r.add('/api/v2/daemon', 'PUT', 'required', (req) => setLogLevel(ctx, req));
  r.add('/api/v1/daemon/events', 'GET', 'none', () => ok(ctx.events.toJSON()));
  r.add('/api/v1/daemon/backend', 'GET', 'none', (req) => {
    const mp = req.query.get('mountpoint');
    if (mp === null) throw queryString("'mountpoint' should be specified in query string");
    const rec = mountsOf(ctx)?.get(mp);
    if (!rec) throw new ApiError(500, `Metrics(Daemon(Other(${debugString(`object or filesystem doesn't exist: nothing is mounted at ${mp}`)})))`);
    if (!rec.instance.superMeta) throw new ApiError(500, `Metrics(Daemon(FsTypeMismatch(${debugString(`${mp} is not a RAFS mount`)})))`);
    return ok(rec.instance.superMeta());
  });
  r.add('/api/v1/daemon/start', 'PUT', 'none', () => {
    if (ctx.stopping() || !ctx.machine.can('Start')) throw unexpectedEvent('Configure', 'Start');
    ctx.machine.fire('Start');
    return kNoContent;
  });
  r.add('/api/v1/daemon/exit', 'PUT', 'none', () => {
    // Answered first, then stopped (upstream sends itself SIGTERM after the reply).
    setImmediate(() => ctx.requestStop('exit requested through the API'));
    return kNoContent;
  });
  const upgrade = (what: string) => (): never => {
    throw unsupported('Upgrade', 'DaemonAbnormal', `${what} (live upgrade and failover of a FUSE daemon) is not supported yet`);
  };
  r.add('/api/v1/daemon/fuse/sendfd', 'PUT', 'none', upgrade('fuse sendfd: handing the FUSE connection to a supervisor'));
  r.add('/api/v1/daemon/fuse/takeover', 'PUT', 'none', upgrade('fuse takeover: taking a FUSE connection over from a supervisor'));
}
