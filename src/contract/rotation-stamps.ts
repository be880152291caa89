import { annotationSourceSecret, annotationStageTimes } from '../api/labels.ts';

// Where the time of a rotation goes. The controller stamps each binding object with the
// certificate Secret version it was rendered from and when its stages saw that version;
// the agent adds when its watch delivered the object and when the data plane served it,
// and reports the differences (agent-metrics: mtls_egress_agent_rotation_stage_seconds).
//
// The stamps are two annotations of fixed shape, outside the content hash: a stamp alone
// never makes an object differ, so it rides on writes the content makes anyway, and a
// resync that only sees newer times writes nothing. They hold versions and times, never
// Secret data.
//
// The clock is each process's own (epoch milliseconds): the controller's stages share
// one, the agent's two share another. `watch` (controller's write → agent's watch) spans
// both, so skew between their nodes shows up there and only there. The time of the
// user's Secret write itself is not known to the controller (managedFields has whole
// seconds): the first stage starts at the controller's watch; a caller who knows when it
// wrote (the churn bench, which wrote the Secret) joins on `source`.

/** When each of the controller's stages saw the source Secret version, epoch ms. */
export interface ControllerStageTimes {
  /** The controller's Secret watch delivered this version (its metadata). */
  seen: number;
  /** Its data was read (the Secret cache's GET returned). */
  read: number;
  /** The certificate in it was decoded. */
  decoded: number;
  /** The binding object rendered from it was sent to the API server (its turn in the write budget taken). */
  written: number;
}

export interface RotationStamps {
  /** The certificate Secret the object was rendered from: uid@resourceVersion. */
  source: string;
  times: ControllerStageTimes;
}

/** The stages a rotation is split into, in order; `total` is from `seen` to served. */
export const rotationStages = ['read', 'decode', 'write', 'watch', 'apply', 'total'] as const;
export type RotationStage = (typeof rotationStages)[number];

const timeKeys = ['seen', 'read', 'decoded', 'written'] as const;
/** A uid (36) '@' a resourceVersion (etcd's revision, a decimal): far under this. */
const maxSourceLength = 128;
const maxTimesLength = 128;
const sourcePattern = /^[0-9a-zA-Z-]{1,64}@[0-9]{1,20}$/;

export function stampAnnotations(stamps: RotationStamps): Record<string, string> {
  return {
    [annotationSourceSecret]: stamps.source,
    [annotationStageTimes]: timeKeys.map((k) => `${k}=${Math.round(stamps.times[k])}`).join(','),
  };
}

/**
 * The stamps an object carries, checked; undefined when it carries none or they do not
 * parse. Anyone who can write Secrets in the proxy namespace can write these, so a bad
 * stamp costs only that rotation's report.
 */
export function parseStamps(annotations: Readonly<Record<string, string>> | undefined): RotationStamps | undefined {
  const source = annotations?.[annotationSourceSecret];
  const text = annotations?.[annotationStageTimes];
  if (source === undefined || text === undefined || source.length > maxSourceLength || text.length > maxTimesLength) return undefined;
  if (!sourcePattern.test(source)) return undefined;
  const fields = text.split(',');
  if (fields.length !== timeKeys.length) return undefined;
  const times: Partial<Record<(typeof timeKeys)[number], number>> = {};
  for (const [i, field] of fields.entries()) {
    const match = /^([a-z]+)=([0-9]{1,16})$/.exec(field);
    if (!match || match[1] !== timeKeys[i]) return undefined;
    const value = Number(match[2]);
    if (!Number.isSafeInteger(value)) return undefined;
    times[timeKeys[i]!] = value;
  }
  const t = times as ControllerStageTimes;
  // One process's clock: its stages are in order, or the stamp is not ours.
  if (!(t.seen <= t.read && t.read <= t.decoded && t.decoded <= t.written)) return undefined;
  return { source, times: t };
}

/** The same stamp: the agent reports each stamp once per binding. */
export function sameStamps(a: RotationStamps | undefined, b: RotationStamps | undefined): boolean {
  return a?.source === b?.source && timeKeys.every((k) => a?.times[k] === b?.times[k]);
}

/**
 * A rotation split into stages, in milliseconds: the controller's stamps, when the agent's
 * watch delivered the object, and when the data plane served it. A stage across the two
 * processes' clocks (`watch`) is never negative: skew is clamped to 0, and `apply` then
 * starts from the later of the two; `total` is the stages' sum.
 */
export function rotationSplit(stamps: RotationStamps, watchedAt: number, appliedAt: number): Record<RotationStage, number> {
  const { seen, read, decoded, written } = stamps.times;
  const watched = Math.max(written, watchedAt);
  return {
    read: read - seen,
    decode: decoded - read,
    write: written - decoded,
    watch: watched - written,
    apply: Math.max(0, appliedAt - watched),
    total: Math.max(appliedAt, watched) - seen,
  };
}
