// Where a CLI run reads and writes: the process's streams by default, captured buffers in tests. Commands
// never touch `process.stdout` or `process.env` directly, so `runCli` can run many times in one process.

/** A stream the CLI writes to; `isTTY` decides spinners and prompts. */
export interface OutStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

export interface CliIo {
  readonly stdout: OutStream;
  readonly stderr: OutStream;
  /** True when a person can answer a confirmation prompt on stdin. */
  readonly interactive: boolean;
  readonly env: Readonly<Record<string, string | undefined>>;
}

export function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    interactive: Boolean(process.stdin.isTTY && process.stderr.isTTY),
    env: process.env,
  };
}

/** JSON with bigints as decimal strings, two-space indented, one trailing newline. */
export function toJson(value: unknown): string {
  return `${JSON.stringify(value, (_key, v) => (typeof v === "bigint" ? v.toString() : v), 2)}\n`;
}
