import { isDeepStrictEqual } from 'node:util';
import { parseRfc3339 } from '../api/time.ts';
import {
  childPath,
  FieldValueNotSupported,
  FieldValueTooLong,
  FieldValueTooMany,
  invalid,
  quoteValue,
  required,
  typeInvalid,
  UnknownField,
  type FieldError,
} from './field-errors.ts';

// The part of a CRD's structural OpenAPI v3 schema that the API server enforces on write,
// in its order: strict decoding (unknown fields), pruning, defaulting, then the value
// checks (kube-openapi's validators). Covers the keywords CRDs use; CEL rules are in
// cel-rules.ts.

export interface ValidationRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  reason?: string;
  fieldPath?: string;
}

export interface SchemaNode {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  format?: string;
  properties?: Record<string, SchemaNode>;
  additionalProperties?: SchemaNode | boolean;
  items?: SchemaNode;
  required?: string[];
  enum?: unknown[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  minProperties?: number;
  maxProperties?: number;
  default?: unknown;
  nullable?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-validations'?: ValidationRule[];
}

type JsonObject = Record<string, unknown>;

function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The schema of a field of an object node: declared, or the additionalProperties schema. */
export function fieldSchema(node: SchemaNode, key: string): SchemaNode | 'any' | undefined {
  const declared = node.properties && Object.hasOwn(node.properties, key) ? node.properties[key] : undefined;
  if (declared) return declared;
  if (isJsonObject(node.additionalProperties)) return node.additionalProperties as SchemaNode;
  if (node.additionalProperties === true || node['x-kubernetes-preserve-unknown-fields']) return 'any';
  return undefined;
}

/**
 * Fields the schema does not declare, as strict field validation reports them
 * (`unknown field "spec.hots"`), sorted as the API server sorts them. An object where
 * the schema wants a scalar has only unknown fields: the API server says the same.
 */
export function unknownFields(node: SchemaNode, value: unknown, path = ''): FieldError[] {
  const found: string[] = [];
  const walk = (n: SchemaNode, v: unknown, p: string): void => {
    if (Array.isArray(v)) {
      if (n.items) v.forEach((item, i) => walk(n.items!, item, childPath(p, i)));
      return;
    }
    if (!isJsonObject(v)) return;
    for (const [key, child] of Object.entries(v)) {
      const schema = fieldSchema(n, key);
      if (schema === undefined) found.push(childPath(p, key));
      else if (schema !== 'any') walk(schema, child, childPath(p, key));
    }
  };
  walk(node, value, path);
  return found.sort().map((field) => ({ type: UnknownField, field, message: `strict decoding error: unknown field "${field}"`, severity: 'error' }));
}

/**
 * A copy without unknown fields and without nulls the schema does not allow, then with
 * defaults applied: what the API server would go on to validate and store. A null for a
 * field with a default gets the default; a null elsewhere is as good as absent.
 */
export function pruneAndDefault(node: SchemaNode, value: unknown): unknown {
  if (Array.isArray(value)) return node.items ? value.map((item) => pruneAndDefault(node.items!, item)) : value;
  if (!isJsonObject(value)) return value;
  const result: JsonObject = {};
  for (const [key, child] of Object.entries(value)) {
    const schema = fieldSchema(node, key);
    if (schema === undefined) continue;
    if (schema === 'any') result[key] = child;
    else if (child !== null || schema.nullable) result[key] = pruneAndDefault(schema, child);
  }
  for (const [key, schema] of Object.entries(node.properties ?? {})) {
    if (!Object.hasOwn(result, key) && schema.default !== undefined) result[key] = structuredClone(schema.default);
  }
  return result;
}

/** A compiled RE2 pattern, or undefined when the engine cannot compile it. */
export type PatternMatcher = (pattern: string) => ((text: string) => boolean) | undefined;

/**
 * The value checks, with the API server's messages. Checks stop at a value of the wrong
 * type, as kube-openapi's do. Patterns are matched with RE2 semantics (see cel-rules.ts),
 * like the API server's Go regexp, not with JavaScript's.
 */
export function validateValues(node: SchemaNode, value: unknown, path: string, patterns: PatternMatcher): FieldError[] {
  const errors: FieldError[] = [];
  const walk = (n: SchemaNode, v: unknown, p: string): void => {
    if (v === null && n.nullable) return;
    if (n['x-kubernetes-int-or-string']) {
      if (!(typeof v === 'string' || (typeof v === 'number' && Number.isInteger(v)))) errors.push(typeInvalid(p, v, 'integer or string'));
      return;
    }
    if (n.type !== undefined && !hasType(v, n.type)) {
      errors.push(typeInvalid(p, v, n.type));
      return;
    }
    if (n.enum && !n.enum.some((allowed) => isDeepStrictEqual(allowed, v))) {
      errors.push({
        type: FieldValueNotSupported,
        field: p,
        message: `Unsupported value: ${quoteValue(v)}: supported values: ${n.enum.map(quoteValue).join(', ')}`,
        severity: 'error',
      });
    }
    if (typeof v === 'string') checkString(n, v, p);
    else if (typeof v === 'number') checkNumber(n, v, p);
    else if (Array.isArray(v)) {
      if (n.maxItems !== undefined && v.length > n.maxItems) {
        errors.push({ type: FieldValueTooMany, field: p, message: `Too many: ${v.length}: must have at most ${n.maxItems} items`, severity: 'error' });
      }
      if (n.minItems !== undefined && v.length < n.minItems) errors.push(invalid(p, v.length, `${p} in body should have at least ${n.minItems} items`));
      if (n.items) v.forEach((item, i) => walk(n.items!, item, childPath(p, i)));
    } else if (isJsonObject(v)) {
      const size = Object.keys(v).length;
      if (n.maxProperties !== undefined && size > n.maxProperties)
        errors.push(invalid(p, size, `${p} in body should have at most ${n.maxProperties} properties`));
      if (n.minProperties !== undefined && size < n.minProperties)
        errors.push(invalid(p, size, `${p} in body should have at least ${n.minProperties} properties`));
      for (const key of n.required ?? []) if (!Object.hasOwn(v, key)) errors.push(required(childPath(p, key)));
      for (const [key, child] of Object.entries(v)) {
        const schema = fieldSchema(n, key);
        if (schema !== undefined && schema !== 'any') walk(schema, child, childPath(p, key));
      }
    }
  };
  const checkString = (n: SchemaNode, v: string, p: string): void => {
    const length = [...v].length;
    if (n.maxLength !== undefined && length > n.maxLength) {
      errors.push({ type: FieldValueTooLong, field: p, message: `Too long: may not be more than ${n.maxLength} bytes`, severity: 'error' });
    }
    if (n.minLength !== undefined && length < n.minLength) errors.push(invalid(p, v, `${p} in body should be at least ${n.minLength} chars long`));
    if (n.pattern !== undefined) {
      const matcher = patterns(n.pattern);
      if (matcher === undefined) {
        errors.push({ ...invalid(p, v, `${p}: pattern '${n.pattern}' could not be compiled offline`), severity: 'warning' });
      } else if (!matcher(v)) {
        errors.push(invalid(p, v, `${p} in body should match '${n.pattern}'`));
      }
    }
    if (n.format === 'date-time' && !isRfc3339(v)) errors.push(invalid(p, v, `${p} in body must be of type date-time: ${quoteValue(v)}`));
  };
  const checkNumber = (n: SchemaNode, v: number, p: string): void => {
    if (n.format === 'int32' && (v < -(2 ** 31) || v > 2 ** 31 - 1)) {
      errors.push(invalid(p, '', `Checked value must be of type integer with format int32 in ${p}`));
    }
    if (n.maximum !== undefined && (n.exclusiveMaximum ? v >= n.maximum : v > n.maximum)) {
      errors.push(invalid(p, v, `${p} in body should be less than ${n.exclusiveMaximum ? '' : 'or equal to '}${n.maximum}`));
    }
    if (n.minimum !== undefined && (n.exclusiveMinimum ? v <= n.minimum : v < n.minimum)) {
      errors.push(invalid(p, v, `${p} in body should be greater than ${n.exclusiveMinimum ? '' : 'or equal to '}${n.minimum}`));
    }
  };
  walk(node, value, path);
  return errors;
}

function hasType(value: unknown, type: NonNullable<SchemaNode['type']>): boolean {
  switch (type) {
    case 'object':
      return isJsonObject(value);
    case 'array':
      return Array.isArray(value);
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value);
    case 'number':
      return typeof value === 'number';
    case 'string':
      return typeof value === 'string';
    case 'boolean':
      return typeof value === 'boolean';
  }
}

export function isRfc3339(text: string): boolean {
  return parseRfc3339(text) !== undefined;
}
