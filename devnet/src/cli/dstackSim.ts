/**
 * `attestmesh dstack-sim`: serves a simulated dstack guest agent on a unix
 * socket until SIGINT or SIGTERM, then removes the socket. Development only:
 * by default it signs with the public devnet KMS root, and its quotes carry no
 * hardware signature.
 */
import { readFile, stat } from "node:fs/promises";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { bytesToHex, hexToBytes } from "@noble/hashes/utils";
import { type Command, InvalidArgumentError, Option } from "commander";
import pino, { type Logger } from "pino";
import { type GuestApis, startDstackSimulator } from "../dstack-sim/server.ts";
import {
  type CvmIdentityOptions,
  createKmsRoot,
  createSimulatedCvm,
  DEVNET_KMS_ROOT_SECRET,
  loadDstackAppKeys,
  type SimulatedCvm,
} from "../dstack-sim/simulator.ts";

export type DstackSimOptions = {
  readonly socket: string;
  readonly appId: Uint8Array;
  readonly composeHash?: Uint8Array;
  readonly instanceId?: Uint8Array;
  readonly deviceId?: Uint8Array;
  readonly appName?: string;
  readonly kmsRootSecretFile?: string;
  readonly appkeys?: string;
  /** File holding the app-compose.json document Info returns (verbatim). */
  readonly appCompose?: string;
  /** "v0+v1" (default, dstack 0.6) or "v0" (an agent before 0.6: no /v1 mount). */
  readonly guestApis?: GuestApis;
  /** false: reproduce dstack before 0.5.6 (GetKey ignores algorithm; no Ed25519 chains). */
  readonly ed25519Chains?: boolean;
};

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? String(error);
}

/** A commander parser for `0x`-prefixed (or bare) hex of exactly `length` bytes. */
export function hexBytesArgument(length: number): (value: string) => Uint8Array {
  return (value) => {
    const digits = value.trim().replace(/^0x/i, "");
    if (digits.length !== length * 2 || !/^[0-9a-fA-F]*$/.test(digits)) {
      throw new InvalidArgumentError(
        `expected ${length} bytes of hex (0x followed by ${length * 2} digits).`,
      );
    }
    return hexToBytes(digits.toLowerCase());
  };
}

/**
 * A 32-byte secret from a file: 64 hex digits (optionally `0x`, surrounding
 * whitespace ignored) or exactly 32 raw bytes. Never taken from argv, where
 * every local user could read it.
 */
export async function readSecretFile(file: string, logger: Logger): Promise<Uint8Array> {
  let content: Buffer;
  try {
    content = await readFile(file);
  } catch (cause) {
    throw new AttestmeshError(
      `cannot read the KMS root secret file ${file} (${errorCode(cause)}); check the path.`,
      {
        code: "SecretFileUnreadable",
        details: { file },
        cause,
      },
    );
  }
  const mode = (await stat(file)).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    logger.warn({ file, mode: mode.toString(8) }, "KMS root secret file is readable by others; chmod 600 it");
  }
  const digits = content.toString("latin1").trim().replace(/^0x/i, "");
  if (/^[0-9a-fA-F]{64}$/.test(digits)) return hexToBytes(digits.toLowerCase());
  if (content.length === 32) return new Uint8Array(content);
  throw new AttestmeshError(
    `${file} must hold a 32-byte KMS root secret as 64 hex digits (optionally 0x-prefixed) or as 32 raw bytes.`,
    { code: "InvalidSecretFile", details: { file, length: content.length } },
  );
}

async function identityOptions(options: DstackSimOptions): Promise<CvmIdentityOptions> {
  let appCompose: string | undefined;
  if (options.appCompose !== undefined) {
    try {
      appCompose = await readFile(options.appCompose, "utf8");
    } catch (cause) {
      throw new AttestmeshError(
        `cannot read the app-compose file ${options.appCompose} (${errorCode(cause)}); check the path.`,
        { code: "AppComposeFileUnreadable", details: { file: options.appCompose }, cause },
      );
    }
  }
  return {
    ...(appCompose === undefined ? {} : { appCompose }),
    ...(options.ed25519Chains === false ? { ed25519Chains: false } : {}),
    ...(options.composeHash === undefined ? {} : { composeHash: options.composeHash }),
    ...(options.instanceId === undefined ? {} : { instanceId: options.instanceId }),
    ...(options.deviceId === undefined ? {} : { deviceId: options.deviceId }),
    ...(options.appName === undefined ? {} : { appName: options.appName }),
  };
}

/** The CVM the options describe: from dstack's appkeys.json, a KMS root secret file, or the devnet root. */
export async function loadCvm(options: DstackSimOptions, logger: Logger): Promise<SimulatedCvm> {
  const identity = await identityOptions(options);
  if (options.appkeys !== undefined) {
    let text: string;
    try {
      text = await readFile(options.appkeys, "utf8");
    } catch (cause) {
      throw new AttestmeshError(
        `cannot read the appkeys file ${options.appkeys} (${errorCode(cause)}); check the path.`,
        {
          code: "AppKeysFileUnreadable",
          details: { file: options.appkeys },
          cause,
        },
      );
    }
    return loadDstackAppKeys(text, options.appId, identity);
  }
  const secret =
    options.kmsRootSecretFile === undefined
      ? DEVNET_KMS_ROOT_SECRET
      : await readSecretFile(options.kmsRootSecretFile, logger);
  const kmsRoot = createKmsRoot(secret);
  if (options.kmsRootSecretFile === undefined) {
    logger.warn(
      { kmsRootAddress: kmsRoot.address },
      "signing with the PUBLIC devnet KMS root: its evidence proves nothing outside devnet",
    );
  }
  return createSimulatedCvm({ kmsRoot, appId: options.appId, ...identity });
}

/** Serves until `signal` aborts (the CLI aborts it on SIGINT/SIGTERM), then removes the socket. */
export async function runDstackSim(
  options: DstackSimOptions,
  logger: Logger,
  signal: AbortSignal,
): Promise<void> {
  const cvm = await loadCvm(options, logger);
  const info = cvm.info();
  logger.info(
    {
      appId: `0x${bytesToHex(info.appId)}`,
      composeHash: `0x${bytesToHex(info.composeHash)}`,
      instanceId: `0x${bytesToHex(info.instanceId)}`,
      appName: info.appName,
      kmsRootAddress: info.kmsRootAddress,
      appPublicKey: `0x${bytesToHex(info.appPublicKey)}`,
    },
    "simulated CVM",
  );
  const simulator = await startDstackSimulator({
    socketPath: options.socket,
    cvm,
    logger,
    ...(options.guestApis === undefined ? {} : { guestApis: options.guestApis }),
  });
  try {
    if (!signal.aborted) {
      await new Promise((stopped) => signal.addEventListener("abort", stopped, { once: true }));
    }
  } finally {
    await simulator.close();
  }
}

export function registerDstackSimCommand(program: Command): void {
  program
    .command("dstack-sim")
    .summary("serve a simulated dstack guest agent on a unix socket (development only)")
    .description(
      "Serve the dstack guest agent's API (/GetKey, /GetQuote, /Info, /Version, /EmitEvent) on a " +
        "unix socket, with dstack's key derivation and a clearly marked simulated quote, until SIGINT " +
        "or SIGTERM; then remove the socket. Point the SDK at it with DSTACK_SIMULATOR_ENDPOINT=<socket>. " +
        "Development only: by default it signs with the public devnet KMS root.",
    )
    .requiredOption("--socket <path>", "unix socket to listen on (created with mode 0600)")
    .requiredOption("--app-id <hex>", "the app id, 20 bytes (0x + 40 hex digits)", hexBytesArgument(20))
    .option(
      "--compose-hash <hex>",
      "compose hash, 32 bytes (default: a fixed placeholder)",
      hexBytesArgument(32),
    )
    .option(
      "--instance-id <hex>",
      "instance id, 20 bytes (default: derived from the app id)",
      hexBytesArgument(20),
    )
    .option("--device-id <hex>", "device id, 32 bytes (default: a fixed placeholder)", hexBytesArgument(32))
    .option("--app-name <name>", "app name reported by Info (default: attestmesh-simulated)")
    .addOption(
      new Option(
        "--kms-root-secret-file <file>",
        "file holding the KMS root secret (64 hex digits); default: the public devnet root",
      ).conflicts("appkeys"),
    )
    .option("--appkeys <file>", "serve dstack's own simulator key file (appkeys.json) for --app-id")
    .option(
      "--app-compose <file>",
      "app-compose.json document Info returns, verbatim (default: a minimal one)",
    )
    .addOption(
      new Option(
        "--guest-apis <surfaces>",
        "guest API surfaces served: v0+v1 (dstack 0.6) or v0 (before 0.6)",
      )
        .choices(["v0", "v0+v1"])
        .default("v0+v1"),
    )
    .option(
      "--no-ed25519-chains",
      "behave like dstack before 0.5.6: GetKey ignores algorithm, so no Ed25519 key has a valid chain",
    )
    .addHelpText(
      "after",
      "\nLogs are JSON lines on stdout (pino); LOG_LEVEL=debug also logs every request.\n" +
        "\nExample:\n  attestmesh dstack-sim --socket /tmp/dstack.sock --app-id 0x1111111111111111111111111111111111111111",
    )
    .action(async (options: DstackSimOptions) => {
      const logger = pino({ name: "dstack-sim", level: process.env.LOG_LEVEL ?? "info" });
      const shutdown = new AbortController();
      const onSignal = (signal: NodeJS.Signals) => {
        logger.info({ signal }, "shutting down");
        shutdown.abort(signal);
      };
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
      try {
        await runDstackSim(options, logger, shutdown.signal);
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
    });
}
