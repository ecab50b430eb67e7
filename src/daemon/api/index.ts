/**
 * The HTTP API of --apisock (upstream nydusd's v1 and v2 routes plus Prometheus /metrics): the
 * router built over an ApiContext, and the Unix-socket server. It only reads daemon state and
 * changes the mount table and settings; request handling never blocks the data path (the FUSE
 * session answers natively or on its own queue while a mount is built).
 */
import type { ApiStarter } from '../control.js';
import type { ApiContext } from './context.js';
import { addBlobRoutes } from './routes-blobs.js';
import { addConfigRoutes } from './routes-config.js';
import { addDaemonRoutes } from './routes-daemon.js';
import { addMetricsRoutes } from './routes-metrics.js';
import { addMountRoutes } from './routes-mount.js';
import { Router } from './router.js';
import { ApiServer } from './server.js';

export { ApiServer, kMaxPayload } from './server.js';
export type { ApiContext } from './context.js';
export { ApiError } from './errors.js';
export { Router } from './router.js';
export type { ApiReply, ApiRequest } from './router.js';

export function createApiRouter(ctx: ApiContext): Router {
  const r = new Router();
  addDaemonRoutes(r, ctx);
  addMountRoutes(r, ctx);
  addMetricsRoutes(r, ctx);
  addConfigRoutes(r, ctx);
  addBlobRoutes(r);
  return r;
}

/** The daemon's ApiStarter (DaemonDeps.api): the server on --apisock with every route. */
export const startApiServer: ApiStarter = (control, path) => ApiServer.listen(path, createApiRouter(control), control.log);
