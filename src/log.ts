import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * Paths pino censors wherever they appear: a Secret's data, a password, a key. The
 * Sensitive wrapper already prints "[redacted]"; this is the second lock for values that
 * reach a log call before anyone wrapped them (a whole Secret object in an error, say).
 */
export const redactPaths = [
  'password',
  'privateKey',
  'key',
  'data',
  'stringData',
  'pfx',
  '*.password',
  '*.privateKey',
  '*.data',
  '*.stringData',
  '*.pfx',
  '*.*.data',
  '*.*.stringData',
];

export interface LogOptions {
  level?: string;
  destination?: DestinationStream;
}

/** The one root logger; controllers take children with {controller, binding}. */
export function createLogger(options: LogOptions = {}): Logger {
  const level = options.level ?? process.env.LOG_LEVEL ?? 'info';
  const config = {
    level,
    base: { app: 'mtls-egress' },
    redact: { paths: redactPaths, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return options.destination ? pino(config, options.destination) : pino(config);
}
