import type { BindingPart } from '../contract/proxy-objects.ts';
import type { EgressRoute } from '../model/egress-routes.ts';
import { routeBundles, type RenderedConfig, type RenderedFile } from '../render/files.ts';

// One binding's part as the controller writes it, whichever the plane: the route's
// identity, its files, and what the plane adds (HAProxy: its server).

export function bindingPart(route: EgressRoute, files: RenderedFile[], server?: unknown): BindingPart {
  return {
    key: route.key,
    listenerPort: route.listenerPort,
    fingerprintSha256: route.clientCertificate.fingerprintSha256,
    serialNumber: route.clientCertificate.serialNumber,
    files,
    ...(server === undefined ? {} : { server }),
  };
}

/**
 * A whole render split into what the controller writes: each route's part (its files,
 * and `serverOf` its key) and the shared files, less those the agent makes itself. A
 * whole render holds each bundle once, under whichever binding came first; each part
 * gets the bundles of its own route.
 */
export function splitRendered(
  rendered: RenderedConfig,
  routes: readonly EgressRoute[],
  assembledPaths: ReadonlySet<string>,
  serverOf: (key: string) => unknown = () => undefined,
): { shared: RenderedFile[]; parts: BindingPart[] } {
  const filesOf = new Map<string, RenderedFile[]>();
  for (const file of rendered.files) {
    if (file.binding !== undefined && !file.bundle) filesOf.set(file.binding, [...(filesOf.get(file.binding) ?? []), file]);
  }
  const parts = routes.map((route) => bindingPart(route, [...(filesOf.get(route.key) ?? []), ...routeBundles(route)], serverOf(route.key)));
  const shared = rendered.files.filter((f) => f.binding === undefined && !f.bundle && !assembledPaths.has(f.path));
  return { shared, parts };
}
