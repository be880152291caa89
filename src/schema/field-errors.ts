import { quoteValue } from '../api/meta.ts';
// Validation findings in the shape of the API server's field errors (k8s.io/apimachinery
// pkg/util/validation/field), so `validate` prints what `kubectl apply` would.

/**
 * The API server's cause types (metav1.CauseType), and three of our own for what only an
 * offline check has: strict decoding's unknown fields, and rules it could not evaluate.
 */
export const FieldValueRequired = 'FieldValueRequired';
export const FieldValueInvalid = 'FieldValueInvalid';
export const FieldValueNotSupported = 'FieldValueNotSupported';
export const FieldValueTooLong = 'FieldValueTooLong';
export const FieldValueTooMany = 'FieldValueTooMany';
export const FieldValueTypeInvalid = 'FieldValueTypeInvalid';
export const FieldValueForbidden = 'FieldValueForbidden';
export const FieldValueDuplicate = 'FieldValueDuplicate';
/** A field the schema does not declare: strict field validation rejects the object. */
export const UnknownField = 'UnknownField';
/** A CEL rule this offline check cannot evaluate (a function it lacks, a transition rule). */
export const RuleNotEvaluated = 'RuleNotEvaluated';
/** The API server skips CEL rules when the object already fails a blocking check; so do we. */
export const RulesNotChecked = 'RulesNotChecked';

export type FieldErrorType =
  | typeof FieldValueRequired
  | typeof FieldValueInvalid
  | typeof FieldValueNotSupported
  | typeof FieldValueTooLong
  | typeof FieldValueTooMany
  | typeof FieldValueTypeInvalid
  | typeof FieldValueForbidden
  | typeof FieldValueDuplicate
  | typeof UnknownField
  | typeof RuleNotEvaluated
  | typeof RulesNotChecked;

export interface FieldError {
  type: FieldErrorType;
  /** "spec.port", "spec.allowedNamespaces.matchExpressions[0].operator"; "" for the object as a whole. */
  field: string;
  /** What the API server says after the field: `Invalid value: 70000: spec.port in body should be …`. */
  message: string;
  /** "warning" for what could not be decided offline: reported, never passed silently. */
  severity: 'error' | 'warning';
}

/**
 * The errors after which the API server does not run CEL rules (apiextensions-apiserver,
 * hasBlockingErr): the rules are compiled against the schema's types, so a value of the
 * wrong type, a missing required field or an oversized value would make them meaningless.
 */
const blockingTypes: ReadonlySet<FieldErrorType> = new Set([
  FieldValueRequired,
  FieldValueTypeInvalid,
  FieldValueTooLong,
  FieldValueTooMany,
  FieldValueNotSupported,
]);

export function hasBlockingError(errors: readonly FieldError[]): boolean {
  return errors.some((e) => blockingTypes.has(e.type));
}

export const rulesNotCheckedMessage =
  'some validation rules were not checked because the object was invalid; correct the existing errors to complete validation';

/** A value as the API server quotes it in "Invalid value: …": strings quoted, numbers bare. */
export { quoteValue };

/** The JSON type names the API server uses in type errors. */
export function jsonTypeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

export function required(field: string, detail?: string): FieldError {
  return { type: FieldValueRequired, field, message: detail ? `Required value: ${detail}` : 'Required value', severity: 'error' };
}

/** `Invalid value: <value>: <detail>`; an object or list value is left out, as the API server does. */
export function invalid(field: string, value: unknown, detail: string): FieldError {
  const shown = typeof value === 'object' && value !== null ? '' : `${quoteValue(value)}: `;
  return { type: FieldValueInvalid, field, message: `Invalid value: ${shown}${detail}`, severity: 'error' };
}

export function typeInvalid(field: string, value: unknown, type: string): FieldError {
  const actual = jsonTypeOf(value);
  return {
    type: FieldValueTypeInvalid,
    field,
    message: `Invalid value: "${actual}": ${field} in body must be of type ${type}: "${actual}"`,
    severity: 'error',
  };
}

/** Field paths as the API server writes them: dots between fields, [i] for list items. */
export function childPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path === '' ? key : `${path}.${key}`;
}
