import { proxyObjects, type ProxyObjects } from '../contract/proxy-objects.ts';
import type { EgressRoute } from '../model/egress-routes.ts';
import type { RenderedConfig } from '../render/files.ts';
import type { DataPlaneDriver } from './driver.ts';
import { haproxyDriver } from './haproxy/driver.ts';
import { nginxDriver } from './nginx/driver.ts';

export { maxHaproxyThreads, type HaproxyThreadsSetting } from './haproxy/threads.ts';

// The data planes, by the name flags and the proxy index use. The one place that knows
// which planes exist: everything else takes a kind and looks its driver up here.

export type DataPlaneKind = 'nginx' | 'haproxy';

export const dataPlanes: Readonly<Record<DataPlaneKind, DataPlaneDriver>> = { nginx: nginxDriver, haproxy: haproxyDriver };

/** The kinds, in the order usage texts list them. */
export const dataPlaneKinds = Object.keys(dataPlanes) as DataPlaneKind[];

/**
 * The plane when none is named: HAProxy, which changes bindings through its runtime API
 * without a reload and, on Debian trixie's 3.0, runs a thread per CPU. nginx stays the
 * choice for small clusters (README, Data planes).
 */
export const defaultDataPlane: DataPlaneKind = 'haproxy';

export function isDataPlaneKind(value: unknown): value is DataPlaneKind {
  return typeof value === 'string' && Object.hasOwn(dataPlanes, value);
}

/**
 * A whole render as the objects the controller writes, split by its plane's driver: for
 * tools and tests that render every binding at once (the controller builds the same
 * objects one binding at a time).
 */
export function objectsOfRender(rendered: RenderedConfig, routes: readonly EgressRoute[], namespace: string): ProxyObjects {
  const kind = rendered.dataPlane ?? defaultDataPlane;
  if (!isDataPlaneKind(kind)) throw new Error(`objectsOfRender: no data plane ${JSON.stringify(kind)}`);
  const { shared, parts } = dataPlanes[kind].split(rendered, routes);
  return proxyObjects(kind, shared, parts, namespace);
}
