// Runs ip(8) and wg(8) as argv arrays (never a shell), optionally inside a network namespace, with a
// time limit; secrets handed to a command are cut out of anything kept from its output.
import { spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { commandFailed, unavailable } from "./errors.ts";

/** The pino methods the backend uses; a pino logger fits. */
export interface WgLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
  /** pino's; at "trace" wireguard-go logs verbosely (each handshake message) into the debug lines. */
  isLevelEnabled?(level: string): boolean;
}

const noop = (): void => {};
export const silentLogger: WgLogger = { debug: noop, info: noop, warn: noop, error: noop };

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  /** A descriptor to use as the command's stdin. */
  readonly stdin?: number;
  /** Text written to the command's stdin through a pipe (no secret: it is logged at debug level). */
  readonly input?: string;
  /** Strings replaced in anything kept from the command's output. */
  readonly secrets?: readonly string[];
}

export type CommandRunner = (argv: readonly string[], options?: RunOptions) => Promise<RunResult>;

/** Commands run behind `prefix` (e.g. `ip netns exec <netns>`), killed after `timeoutMs`. */
export function createCommandRunner(options: {
  readonly prefix: readonly string[];
  readonly netns: string | undefined;
  readonly timeoutMs: number;
  readonly logger: WgLogger;
}): CommandRunner {
  const { prefix, netns, logger } = options;
  const commandTimeoutMs = options.timeoutMs;
  return function exec(argv: readonly string[], runOptions: RunOptions = {}): Promise<RunResult> {
    const full = [...prefix, ...argv];
    const command = argv.join(" ");
    const started = Date.now();
    return new Promise<RunResult>((resolve, reject) => {
      const { input } = runOptions;
      const child = spawn(full[0]!, full.slice(1), {
        stdio: [input !== undefined ? "pipe" : (runOptions.stdin ?? "ignore"), "pipe", "pipe"],
        timeout: commandTimeoutMs,
        killSignal: "SIGKILL",
      });
      // A command that exits (or never starts) before reading all of it closes the pipe: its exit
      // code and stderr tell what happened, not the EPIPE.
      child.stdin?.on("error", noop);
      child.stdin?.end(input);
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      child.stdout?.on("data", (chunk: Buffer) => stdout.push(chunk));
      child.stderr?.on("data", (chunk: Buffer) => stderr.push(chunk));
      child.on("error", (error: NodeJS.ErrnoException) => {
        if (error.code === "ENOENT") {
          reject(unavailable(`${full[0]} is not installed or not in PATH`, { command }));
        } else {
          reject(commandFailed(command, `could not start: ${error.message}`, {}, error));
        }
      });
      child.on("close", (code, signal) => {
        const errText = redact(Buffer.concat(stderr).toString("utf8"), runOptions.secrets);
        logger.debug(
          { command, ...(input === undefined ? {} : { input }), code, signal, ms: Date.now() - started },
          "wireguard command finished",
        );
        if (signal !== null) {
          reject(commandFailed(command, `killed by ${signal} (limit ${commandTimeoutMs} ms)`, { signal }));
          return;
        }
        const missing = /exec of "([^"]+)" failed: No such file or directory/.exec(errText);
        if (netns !== undefined && missing !== null) {
          reject(unavailable(`${missing[1]} is not installed or not in PATH`, { command }));
          return;
        }
        resolve({ code: code ?? -1, stdout: Buffer.concat(stdout).toString("utf8"), stderr: errText });
      });
    });
  };
}

/** Waits for `promise` at most `ms`; true if it settled in time. Leaves no timer behind. */
export async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const timer = new AbortController();
  try {
    return await Promise.race([
      promise.then(() => true),
      sleep(ms, false, { signal: timer.signal }).catch(() => false),
    ]);
  } finally {
    timer.abort();
  }
}

function redact(text: string, secrets: readonly string[] | undefined): string {
  let result = text;
  for (const secret of secrets ?? []) result = result.split(secret).join("[redacted]");
  return result;
}
