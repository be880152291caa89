import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { loadAll } from 'js-yaml';
import { objectNamePattern } from '../api/meta.ts';
import { evaluateRules, re2Pattern } from './cel-rules.ts';
import { hasBlockingError, invalid, required, RulesNotChecked, rulesNotCheckedMessage, type FieldError } from './field-errors.ts';
import { pruneAndDefault, unknownFields, validateValues, type SchemaNode } from './structural-schema.ts';

/**
 * The CRDs this package ships, next to the code: `crds/` is two levels up from both
 * src/schema/ and dist/schema/, and package.json's `files` publishes it beside dist.
 */
export const bundledCrdDirectory = fileURLToPath(new URL('../../crds/', import.meta.url));

interface CrdVersion {
  name: string;
  served?: boolean;
  schema?: { openAPIV3Schema?: SchemaNode };
  subresources?: { status?: unknown };
}

interface CrdManifest {
  apiVersion?: string;
  kind?: string;
  spec?: { group?: string; names?: { kind?: string }; versions?: CrdVersion[] };
}

/** What the API server does with a custom object on create, offline. */
export interface CustomResourceValidation {
  errors: FieldError[];
  /** The object as it would be stored: unknown fields and nulls pruned, defaults applied, status dropped. */
  object: Record<string, unknown>;
}

/** metadata is checked as ObjectMeta, not by the CRD's schema, which only says `type: object`. */
const objectMetaSchema: SchemaNode = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    generateName: { type: 'string' },
    namespace: { type: 'string' },
    selfLink: { type: 'string' },
    uid: { type: 'string' },
    resourceVersion: { type: 'string' },
    generation: { type: 'integer' },
    creationTimestamp: { type: 'string' },
    deletionTimestamp: { type: 'string' },
    deletionGracePeriodSeconds: { type: 'integer' },
    labels: { type: 'object', additionalProperties: { type: 'string' } },
    annotations: { type: 'object', additionalProperties: { type: 'string' } },
    ownerReferences: { type: 'array', items: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
    finalizers: { type: 'array', items: { type: 'string' } },
    managedFields: { type: 'array', items: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
  },
};

const dnsSubdomain = new RegExp(objectNamePattern);
// The API server's own words, so offline findings read as kubectl prints them.
const dnsSubdomainMessage =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', " +
  "and must start and end with an alphanumeric character (e.g. 'example.com', " +
  "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

function metadataErrors(metadata: unknown): FieldError[] {
  const meta = typeof metadata === 'object' && metadata !== null ? (metadata as Record<string, unknown>) : {};
  const name = meta.name;
  if (name === undefined || name === '') {
    return meta.generateName ? [] : [required('metadata.name', 'name or generateName is required')];
  }
  if (typeof name !== 'string') return [];
  if (name.length > 253) return [invalid('metadata.name', name, 'must be no more than 253 characters')];
  return dnsSubdomain.test(name) ? [] : [invalid('metadata.name', name, dnsSubdomainMessage)];
}

/** One served version of one CRD: validates objects of that apiVersion and kind. */
export class CustomResourceValidator {
  readonly apiVersion: string;
  readonly kind: string;
  readonly #schema: SchemaNode;
  readonly #statusSubresource: boolean;

  constructor(group: string, kind: string, version: CrdVersion) {
    const schema = version.schema?.openAPIV3Schema;
    if (!schema) throw new Error(`CRD ${kind}.${group} version ${version.name} has no openAPIV3Schema`);
    this.apiVersion = `${group}/${version.name}`;
    this.kind = kind;
    // apiVersion, kind and metadata are every object's, whether the schema declares them or not.
    const typeMeta = { apiVersion: { type: 'string' }, kind: { type: 'string' } } satisfies Record<string, SchemaNode>;
    this.#schema = { ...schema, properties: { ...typeMeta, ...schema.properties, metadata: objectMetaSchema } };
    this.#statusSubresource = version.subresources?.status !== undefined;
  }

  /**
   * The API server's steps for a create with strict field validation: unknown fields,
   * pruning, defaulting, metadata, the schema's value checks, then the CEL rules unless
   * a blocking error makes them meaningless. Unlike the API server, which stops at the
   * first unknown field's decoding error, this goes on, so one run shows every problem.
   * With a status subresource, status is ignored on create, as the API server ignores it;
   * its fields are still decoded strictly.
   */
  validate(object: Record<string, unknown>): CustomResourceValidation {
    const errors = unknownFields(this.#schema, object);
    const stored = pruneAndDefault(this.#schema, object) as Record<string, unknown>;
    if (this.#statusSubresource) delete stored.status;
    errors.push(...metadataErrors(stored.metadata), ...validateValues(this.#schema, stored, '', re2Pattern));
    if (hasBlockingError(errors)) {
      errors.push({ type: RulesNotChecked, field: '', message: rulesNotCheckedMessage, severity: 'warning' });
    } else {
      errors.push(...evaluateRules(this.#schema, stored));
    }
    return { errors, object: stored };
  }
}

/** Validators for every served version of the CRDs in `directory`, keyed by `apiVersion kind`. */
export class CustomResourceValidators {
  readonly #byType = new Map<string, CustomResourceValidator>();
  readonly #groupKinds = new Set<string>();

  constructor(crds: readonly CrdManifest[]) {
    for (const crd of crds) {
      const group = crd.spec?.group;
      const kind = crd.spec?.names?.kind;
      if (!group || !kind) throw new Error('a CustomResourceDefinition without spec.group or spec.names.kind');
      this.#groupKinds.add(`${group} ${kind}`);
      for (const version of crd.spec?.versions ?? []) {
        if (version.served === false) continue;
        const validator = new CustomResourceValidator(group, kind, version);
        this.#byType.set(`${validator.apiVersion} ${kind}`, validator);
      }
    }
  }

  /** The validator for this apiVersion and kind, if a CRD serves it. */
  forType(apiVersion: unknown, kind: unknown): CustomResourceValidator | undefined {
    return this.#byType.get(`${String(apiVersion)} ${String(kind)}`);
  }

  /** True when the kind is one of ours, whatever the version: a version no CRD serves is an error, not another kind. */
  definesKind(apiVersion: unknown, kind: unknown): boolean {
    const group = typeof apiVersion === 'string' ? apiVersion.split('/')[0] : '';
    return this.#groupKinds.has(`${group} ${String(kind)}`);
  }

  /** Every CustomResourceDefinition in the directory's *.yaml files. */
  static async load(directory = bundledCrdDirectory): Promise<CustomResourceValidators> {
    const files = (await readdir(directory)).filter((name) => /\.ya?ml$/.test(name)).sort();
    const crds: CrdManifest[] = [];
    for (const file of files) {
      for (const document of loadAll(await readFile(join(directory, file), 'utf8'))) {
        const crd = document as CrdManifest | null;
        if (crd?.apiVersion === 'apiextensions.k8s.io/v1' && crd.kind === 'CustomResourceDefinition') crds.push(crd);
      }
    }
    if (crds.length === 0) throw new Error(`no CustomResourceDefinition in ${directory}`);
    return new CustomResourceValidators(crds);
  }
}
