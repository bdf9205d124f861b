// Runs the system tools the devnet needs (ip, apt-get) without a shell.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";

const execFileAsync = promisify(execFile);

export async function run(cmd: string, args: readonly string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync(cmd, args, { maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (cause) {
    const stderr = (cause as { stderr?: string }).stderr?.trim() ?? "";
    throw new AttestmeshError(`${cmd} ${args.join(" ")} failed: ${stderr || String(cause)}`, {
      code: "DevnetCommandFailed",
      cause,
    });
  }
}

/** Like `run`, but a failure is expected and ignored (cleanup of things that may not exist). */
export async function tryRun(cmd: string, args: readonly string[]): Promise<boolean> {
  try {
    await run(cmd, args);
    return true;
  } catch {
    return false;
  }
}

export async function which(cmd: string): Promise<boolean> {
  return tryRun("sh", ["-c", 'command -v "$0" >/dev/null', cmd]);
}
