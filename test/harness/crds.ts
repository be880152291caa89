import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { loadYaml } from '@kubernetes/client-node';
import type { AdminHttp } from './admin-http.ts';
import { pollUntil, StopPolling } from './poll.ts';

const crdCollection = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
const fieldManager = 'mtls-egress-test-harness';

/** A CRD as read from its file. */
export interface CrdDocument {
  file: string;
  name: string;
  yaml: string;
  /** Collection paths of every served version, e.g. /apis/mtls-egress.io/v1alpha1/clientcertificatebindings. */
  collections: string[];
}

interface CrdManifest {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string };
  spec?: { group?: string; names?: { plural?: string }; versions?: { name?: string; served?: boolean }[] };
}

interface CrdCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

// A line of just `---` (optionally followed by a comment) separates YAML documents; it
// cannot occur inside a block scalar, whose lines are indented.
function splitYamlDocuments(text: string): string[] {
  return text.split(/^---[ \t]*(?:#.*)?$/m).filter((document) => /^[ \t]*[^\s#]/m.test(document));
}

/** Reads every CRD in `crdDir`'s *.yaml files; a missing directory is an error, an empty one is not. */
export async function readCrdDocuments(crdDir: string): Promise<CrdDocument[]> {
  const directory = await stat(crdDir).catch(() => undefined);
  if (!directory?.isDirectory()) {
    throw new Error(`CRD directory ${crdDir} does not exist: integration tests run against the real CRDs and cannot start without them`);
  }
  // crds/Kustomization makes crds/ a kustomize base for deploy/; it is metadata, not a CRD (and has no .yaml, so `kubectl apply -f crds/` skips it).
  const files = (await readdir(crdDir)).filter((name) => /\.ya?ml$/.test(name) && !/^kustomization\.ya?ml$/.test(name)).sort();
  const documents: CrdDocument[] = [];
  for (const fileName of files) {
    const file = join(crdDir, fileName);
    for (const yaml of splitYamlDocuments(await readFile(file, 'utf8'))) {
      const object = loadYaml<CrdManifest>(yaml);
      if (object.apiVersion !== 'apiextensions.k8s.io/v1' || object.kind !== 'CustomResourceDefinition' || !object.metadata?.name) {
        throw new Error(`${file}: expected only apiextensions.k8s.io/v1 CustomResourceDefinitions with a name, found ${object.apiVersion}/${object.kind}`);
      }
      const served = (object.spec?.versions ?? []).filter((version) => version.served);
      const collections = served.map((version) => `/apis/${object.spec?.group}/${version.name}/${object.spec?.names?.plural}`);
      documents.push({ file, name: object.metadata.name, yaml, collections });
    }
  }
  return documents;
}

async function applyCrd(http: AdminHttp, crd: CrdDocument): Promise<void> {
  // Server-side apply of the file's own text, with strict field validation: a typo in a
  // CRD fails here, loudly, instead of being pruned and surfacing as a puzzling test failure.
  const query = new URLSearchParams({ fieldManager, force: 'true', fieldValidation: 'Strict' });
  const response = await http({
    method: 'PATCH',
    path: `${crdCollection}/${crd.name}?${query}`,
    body: crd.yaml,
    contentType: 'application/apply-patch+yaml',
  });
  if (response.status !== 200 && response.status !== 201) {
    throw new Error(`installing CRD ${crd.name} from ${crd.file} failed with HTTP ${response.status}: ${response.body}`);
  }
}

async function readCrdConditions(http: AdminHttp, name: string): Promise<CrdCondition[]> {
  const response = await http({ method: 'GET', path: `${crdCollection}/${name}` });
  if (response.status !== 200) throw new Error(`reading CRD ${name}: HTTP ${response.status}: ${response.body}`);
  const crd = JSON.parse(response.body) as { status?: { conditions?: CrdCondition[] } };
  return crd.status?.conditions ?? [];
}

async function waitForEstablished(http: AdminHttp, crd: CrdDocument, timeoutMs: number): Promise<void> {
  await pollUntil(
    async () => {
      const conditions = await readCrdConditions(http, crd.name);
      const namesAccepted = conditions.find((condition) => condition.type === 'NamesAccepted');
      if (namesAccepted?.status === 'False') {
        throw new StopPolling(`CRD ${crd.name} from ${crd.file}: names not accepted: ${namesAccepted.message}`);
      }
      return conditions.some((condition) => condition.type === 'Established' && condition.status === 'True') ? true : undefined;
    },
    { what: `CRD ${crd.name} to become Established`, timeoutMs, intervalMs: 50 },
  );
}

/**
 * Established is not enough: the apiserver then still builds the resource's watch cache,
 * and until it has, lists fail with 429 "storage is (re)initializing". Go clients retry
 * that by themselves; @kubernetes/client-node does not, so a test (or the operator) would
 * fail on its first list. The same happens after every apiserver restart.
 */
export async function waitUntilCrdsServed(http: AdminHttp, crds: readonly CrdDocument[], timeoutMs: number): Promise<void> {
  const collections = crds.flatMap((crd) => crd.collections);
  await Promise.all(
    collections.map((collection) =>
      pollUntil(
        async () => {
          const response = await http({ method: 'GET', path: `${collection}?limit=1` });
          if (response.status === 200) return true;
          if (response.status === 429 || response.status === 404 || response.status === 503) return undefined;
          throw new StopPolling(`listing ${collection} failed with HTTP ${response.status}: ${response.body}`);
        },
        { what: `${collection} to be served`, timeoutMs, intervalMs: 50 },
      ),
    ),
  );
}

/**
 * Installs the CRDs and waits until each is Established and its resources can be listed.
 *
 * Creating a custom object within 2s of its CRD becoming Established takes 2s more: the
 * apiextensions-apiserver sleeps on purpose, for HA clusters (customresource_handler.go,
 * "justCreated"). So a test's first create may take 2s; allow for it in deadlines.
 */
export async function installCrds(http: AdminHttp, crds: readonly CrdDocument[], timeoutMs: number): Promise<void> {
  for (const crd of crds) await applyCrd(http, crd);
  await Promise.all(crds.map((crd) => waitForEstablished(http, crd, timeoutMs)));
  await waitUntilCrdsServed(http, crds, timeoutMs);
}
