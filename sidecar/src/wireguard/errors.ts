// The WireGuard backend's errors, each saying what to do next: invalid input (nothing was run), WireGuard
// missing (install it), and a command that failed (retryable).
import { AttestmeshError } from "@attestmesh/shared/errors.ts";

const INSTALL_HINT =
  "install wireguard-tools (wg) and wireguard-go (e.g. `apt-get install wireguard-tools wireguard-go`), " +
  "or load the kernel module (`modprobe wireguard`)";

export function invalid(what: string, details: Record<string, unknown>): AttestmeshError {
  return new AttestmeshError(`Invalid WireGuard configuration: ${what}.`, {
    code: "WireGuardInvalidConfig",
    details,
  });
}

export function unavailable(what: string, details: Record<string, unknown>): AttestmeshError {
  return new AttestmeshError(`WireGuard is not available: ${what}; ${INSTALL_HINT}.`, {
    code: "WireGuardUnavailable",
    details,
  });
}

export function commandFailed(
  command: string,
  what: string,
  details: Record<string, unknown>,
  cause?: unknown,
): AttestmeshError {
  return new AttestmeshError(
    `\`${command}\` ${what}; retry, and if it keeps failing check ip(8)/wg(8) by hand.`,
    {
      code: "WireGuardCommandFailed",
      retryable: true,
      details: { command, ...details },
      cause,
    },
  );
}

/** The first line of a command's output, for an error message. */
export function firstLine(text: string): string {
  return text.trim().split("\n")[0] || "(no output)";
}
