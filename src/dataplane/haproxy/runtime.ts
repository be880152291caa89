import { connect } from 'node:net';
import { CodedError, type ErrorCode } from '../../errors.ts';
import { redactKeyMaterial } from '../../proxy/redact.ts';

// A client of HAProxy's runtime API (the stats socket, and the master CLI socket), one
// connection per command: HAProxy answers a command that arrives without "prompt" and
// closes the connection, so the answer is everything read until the close.

export type HaproxyErrorCode = Extract<ErrorCode, `ERR_HAPROXY_${string}`>;

export class HaproxyError extends CodedError<HaproxyErrorCode> {}

/** What a command may hold: one line, and no ";" (which would start a second command). */
function checkCommand(command: string): void {
  if (!/^[\x21-\x7e][\x20-\x7e]*$/.test(command) || command.includes(';')) {
    throw new HaproxyError(
      'ERR_HAPROXY_COMMAND_FAILED',
      `refusing to send a runtime API command that is not one plain line: ${JSON.stringify(command.slice(0, 80))}`,
    );
  }
}

/** A command line as sent, with its payload, if any, after it. */
function request(line: string, payload: string | undefined): string {
  if (payload === undefined) return `${line}\n`;
  if (payload.includes('\n\n') || payload.includes('\r')) {
    // An empty line ends a payload: the rest would be read as commands.
    throw new HaproxyError('ERR_HAPROXY_COMMAND_FAILED', `a payload for "${line}" holds an empty line`);
  }
  return `${line} <<\n${payload.endsWith('\n') ? payload : `${payload}\n`}\n`;
}

export class HaproxyRuntime {
  readonly socketPath: string;
  readonly #timeoutMs: number;

  constructor(socketPath: string, options: { timeoutMs?: number } = {}) {
    this.socketPath = socketPath;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
  }

  /**
   * Sends one command, with a payload for the commands that take one (`set ssl cert NAME
   * <<`), and resolves with HAProxy's answer. A payload is key material: it never appears
   * in an error, and the answer is redacted before anything quotes it.
   */
  run(command: string, payload?: string): Promise<string> {
    checkCommand(command);
    return this.#send(request(command, payload), command);
  }

  /**
   * Commands run one after the other on one connection (";" between them), the last one
   * with a payload if given, and each one's answer. One round trip instead of one each: a
   * change under load waited on HAProxy once per command. HAProxy ends every answer with
   * an empty line, so the answers are split there; only for commands whose answers hold
   * no empty line of their own, which any other shape refuses, quoted redacted. Every
   * command runs whatever the one before it answered: chain only what may.
   */
  async chain(commands: readonly string[], payload?: string): Promise<string[]> {
    for (const command of commands) checkCommand(command);
    const answer = await this.#send(request(commands.join(';'), payload), commands[0]!);
    const answers = splitAnswers(answer);
    if (answers?.length !== commands.length) {
      const said = redactKeyMaterial(answer.trim()).replace(/\s+/g, ' ').slice(0, 200) || 'nothing';
      throw new HaproxyError('ERR_HAPROXY_COMMAND_FAILED', `HAProxy's answers to "${commands.join('; ')}" are not one per command: ${said}`);
    }
    return answers;
  }

  /**
   * Commands that take no payload, on as few connections as lines of `maxLineBytes`
   * allow (the runtime API runs the commands of a line one after the other, ";" between
   * them): each connection's answers, one after the other, as it arrives, so a caller
   * holds one line's answers at a time. A new replica read back ten thousand
   * certificates with one connection each: most of a second per thousand on a busy machine.
   */
  async *runAll(commands: readonly string[], maxLineBytes = 8192): AsyncGenerator<string> {
    for (const command of commands) checkCommand(command);
    let line: string[] = [];
    let bytes = 0;
    for (const command of commands) {
      if (line.length > 0 && bytes + command.length + 1 > maxLineBytes) {
        yield await this.#send(`${line.join(';')}\n`, `${line[0]} (and ${line.length - 1} more)`);
        line = [];
        bytes = 0;
      }
      line.push(command);
      bytes += command.length + 1;
    }
    if (line.length > 0) yield await this.#send(`${line.join(';')}\n`, `${line[0]} (and ${line.length - 1} more)`);
  }

  /** One connection: the request, and everything HAProxy answers until it closes. `what` names it in errors. */
  #send(request: string, what: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      const socket = connect({ path: this.socketPath });
      socket.setTimeout(this.#timeoutMs, () => {
        socket.destroy();
        reject(new HaproxyError('ERR_HAPROXY_NOT_RUNNING', `HAProxy's runtime API (${this.socketPath}) did not answer "${what}" within ${this.#timeoutMs} ms`));
      });
      socket.on('connect', () => socket.end(request));
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('error', (err: NodeJS.ErrnoException) => {
        reject(new HaproxyError('ERR_HAPROXY_NOT_RUNNING', `HAProxy's runtime API (${this.socketPath}) is not reachable: ${err.code ?? err.message}`));
      });
      socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
  }

  /** Runs a command that must answer with `expected`; anything else is an error that quotes the (redacted) answer. */
  async expect(command: string, expected: RegExp, payload?: string): Promise<string> {
    return expectAnswer(command, await this.run(command, payload), expected);
  }
}

/** `answer` if it matches `expected`; otherwise an error that quotes it, redacted. */
export function expectAnswer(command: string, answer: string, expected: RegExp): string {
  if (!expected.test(answer)) {
    const said = redactKeyMaterial(answer.trim()).replace(/\s+/g, ' ').slice(0, 200) || 'nothing';
    throw new HaproxyError('ERR_HAPROXY_COMMAND_FAILED', `HAProxy refused "${command}": ${said}`);
  }
  return answer;
}

/**
 * Each command's answer in a chained reply: the lines up to the empty line that ends it
 * (an empty answer is that line alone). Undefined when the reply does not end an answer.
 */
export function splitAnswers(reply: string): string[] | undefined {
  if (reply === '' || !reply.endsWith('\n')) return undefined;
  const answers: string[] = [];
  let lines: string[] = [];
  for (const line of reply.slice(0, -1).split('\n')) {
    if (line !== '') {
      lines.push(line);
      continue;
    }
    answers.push(lines.join('\n'));
    lines = [];
  }
  return lines.length === 0 ? answers : undefined;
}
