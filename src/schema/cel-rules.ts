import { isIP } from 'node:net';
import { celEnv, celFunc, CelScalar, isCelError, parse, plan, type CelInput, type CelResult } from '@bufbuild/cel';
import { strings } from '@bufbuild/cel/ext';
import { isIpLiteral } from '../model/egress-routes.ts';
import {
  FieldValueDuplicate,
  FieldValueForbidden,
  FieldValueRequired,
  childPath,
  invalid,
  jsonTypeOf,
  RuleNotEvaluated,
  type FieldError,
} from './field-errors.ts';
import { fieldSchema, type PatternMatcher, type SchemaNode, type ValidationRule } from './structural-schema.ts';

// `x-kubernetes-validations` rules, evaluated as the API server evaluates them on create:
// after defaulting, once per value present, with `self` bound to the value. @bufbuild/cel
// is a conformance-tested port of cel-go, the evaluator Kubernetes uses: RE2 regular
// expressions for matches(), exact nanosecond durations with cel-go's range errors.
//
// The API server's CEL environment also has Kubernetes' own libraries. Of those, the
// strings extension and isIP() are here. A rule that needs a function this environment
// lacks, or compares with the stored object (oldSelf), is reported as not evaluated
// offline: a warning, never a silent pass.

/**
 * Kubernetes' isIP(string) (apiserver library/ip.go): an address netip.ParseAddr reads,
 * without a zone, and not an IPv4-mapped IPv6 address (::ffff:1.2.3.4), which it rejects.
 */
export function isKubernetesIP(text: string): boolean {
  if (!isIpLiteral(text)) return false;
  if (isIP(text) === 4) return true;
  // The URL parser writes IPv6 in canonical form: a mapped address is [::ffff:hhhh:hhhh].
  return !/^\[::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}\]$/.test(new URL(`http://[${text}]/`).hostname);
}

const isIPFunction = celFunc('isIP', [CelScalar.STRING], CelScalar.BOOL, isKubernetesIP);

const ruleEnv = celEnv({ variables: { self: CelScalar.DYN }, funcs: [...strings, isIPFunction] });
const patternEnv = celEnv({ variables: { text: CelScalar.STRING, pattern: CelScalar.STRING } });

type Program = (bindings: Record<string, CelInput>) => CelResult;

const programs = new Map<string, Program | Error>();

function compile(source: string): Program | Error {
  let program = programs.get(source);
  if (program === undefined) {
    try {
      program = plan(ruleEnv, parse(source)) as Program;
    } catch (err) {
      program = err instanceof Error ? err : new Error(String(err));
    }
    programs.set(source, program);
  }
  return program;
}

const matchesProgram = plan(patternEnv, parse('text.matches(pattern)')) as Program;

/**
 * OpenAPI `pattern`s with the RE2 engine that backs CEL's matches(): the API server
 * checks them with Go's regexp (RE2), whose syntax and semantics differ from JavaScript's.
 */
const compiles = new Map<string, boolean>();

export const re2Pattern: PatternMatcher = (pattern) => {
  let ok = compiles.get(pattern);
  if (ok === undefined) compiles.set(pattern, (ok = !isCelError(matchesProgram({ text: '', pattern }))));
  return ok ? (text) => matchesProgram({ text, pattern }) === true : undefined;
};

/** Errors that mean "this environment lacks something", not "the value is wrong". */
const unsupported = /^(unbound function|found no matching overload|unresolved attribute)/;
const transitionRule = /\boldSelf\b/;

/** Every rule in the schema, evaluated on every value present (nulls and absent fields have none). */
export function evaluateRules(root: SchemaNode, value: unknown, path = ''): FieldError[] {
  const errors: FieldError[] = [];
  const walk = (node: SchemaNode, v: unknown, p: string): void => {
    if (v === undefined || v === null) return;
    for (const rule of node['x-kubernetes-validations'] ?? []) {
      const error = evaluateRule(rule, node, v, p);
      if (error) errors.push(error);
    }
    if (Array.isArray(v)) {
      if (node.items) v.forEach((item, i) => walk(node.items!, item, childPath(p, i)));
    } else if (typeof v === 'object') {
      for (const [key, child] of Object.entries(v)) {
        const schema = fieldSchema(node, key);
        if (schema !== undefined && schema !== 'any') walk(schema, child, childPath(p, key));
      }
    }
  };
  walk(root, value, path);
  return errors;
}

function notEvaluated(field: string, why: string, rule: ValidationRule): FieldError {
  return { type: RuleNotEvaluated, field, message: `rule not evaluated offline (${why}): ${rule.rule}`, severity: 'warning' };
}

function evaluateRule(rule: ValidationRule, node: SchemaNode, value: unknown, path: string): FieldError | undefined {
  if (transitionRule.test(rule.rule)) return notEvaluated(path, 'it compares with the stored object, oldSelf', rule);
  const program = compile(rule.rule);
  if (program instanceof Error) return notEvaluated(path, `it does not parse: ${program.message.split('\n')[0]}`, rule);
  const self = toCel(node, value);
  const result = program({ self });
  const field = rule.fieldPath ? appendFieldPath(path, rule.fieldPath) : path;
  if (isCelError(result)) {
    if (unsupported.test(result.message)) return notEvaluated(path, result.message, rule);
    // What the API server reports when a rule fails to evaluate, e.g. duration('30 days').
    return invalid(field, jsonTypeOf(value), `${result.message} evaluating rule: ${rule.message ?? rule.rule}`);
  }
  if (result === true) return undefined;
  if (result !== false) return notEvaluated(path, 'it did not evaluate to a bool', rule);
  const message = ruleMessage(rule, self) ?? rule.message ?? `failed rule: ${rule.rule}`;
  switch (rule.reason) {
    case FieldValueForbidden:
      return { type: FieldValueForbidden, field, message: `Forbidden: ${message}`, severity: 'error' };
    case FieldValueRequired:
      return { type: FieldValueRequired, field, message: `Required value: ${message}`, severity: 'error' };
    case FieldValueDuplicate:
      return { type: FieldValueDuplicate, field, message: `Duplicate value: ${message}`, severity: 'error' };
    default:
      return invalid(field, value, message);
  }
}

/** messageExpression, when it gives a non-empty string; otherwise the static message is used. */
function ruleMessage(rule: ValidationRule, self: CelInput): string | undefined {
  if (!rule.messageExpression) return undefined;
  const program = compile(rule.messageExpression);
  if (program instanceof Error) return undefined;
  const result = program({ self });
  return typeof result === 'string' && result.trim() !== '' ? result : undefined;
}

/** fieldPath is relative to the rule's node: ".spec.x", "['a.b']", "[0]". */
function appendFieldPath(path: string, fieldPath: string): string {
  let result = path;
  for (const [, name, quoted, index] of fieldPath.matchAll(/\.([^.[\]]+)|\['([^']*)'\]|\[(\d+)\]/g)) {
    result = index !== undefined ? childPath(result, Number(index)) : childPath(result, name ?? quoted ?? '');
  }
  return result;
}

/** JSON as CEL sees it through the schema: integers are int (bigint), `type: number` is double. */
function toCel(node: SchemaNode | 'any', value: unknown): CelInput {
  if (typeof value === 'number') {
    const isDouble = node !== 'any' && node.type === 'number';
    return !isDouble && Number.isInteger(value) ? BigInt(value) : value;
  }
  if (Array.isArray(value)) return value.map((item) => toCel(node !== 'any' && node.items ? node.items : 'any', item));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, child]) => [key, toCel(node === 'any' ? 'any' : (fieldSchema(node, key) ?? 'any'), child)]));
  }
  return value as CelInput;
}
