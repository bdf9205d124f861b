// `attestmesh attest <member id | app id | URL | file>`: fetch a member's attestation with a fresh nonce
// (from the dstack gateway, `https://<app-id>-<health port>.<domain>/attestation`, the running
// devnet's node, a URL, or a saved file), verify it and print one verification report. Exit code 0
// only when every check passes, 2 when one fails (1 stays "the command itself failed").

import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import {
  type CollateralSource,
  DEFAULT_PCCS_URL,
  fileCollateral,
  fixedCollateral,
  pccsCollateral,
} from "@attestmesh/shared/attestation/collateral.ts";
import {
  type AttestationFile,
  parseAttestationDocument,
  parseAttestationFile,
} from "@attestmesh/shared/attestation/document.ts";
import { parseEventLog } from "@attestmesh/shared/attestation/eventLog.ts";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import type { Command } from "commander";
import { type Address, getAddress } from "viem";
import { badArgument, parseAddress } from "../../owner/args.ts";
import { formatReport, type VerificationReport, verificationReport } from "../../owner/attest.ts";
import {
  type ChainCommandOptions,
  type ClusterContext,
  clusterContext,
  DEVNET_STATE_FILE,
  readCluster,
} from "../../owner/context.ts";
import { type CliIo, toJson } from "../../owner/io.ts";
import { ExitCode } from "../exitCode.ts";
import { chainOptions } from "./options.ts";

export type EvidenceOptions = ChainCommandOptions & {
  collateral?: string;
  pccs?: string;
  at?: string;
};

type AttestOptions = EvidenceOptions & {
  gateway?: string;
  healthPort?: string;
  save?: string;
};

/** `--collateral`, `--pccs`, `--at`: where Intel's collateral comes from and the verification time. */
export function evidenceOptions(command: Command): Command {
  return command
    .option("--collateral <file>", "Intel collateral from a JSON file instead of a PCCS")
    .option(
      "--pccs <url>",
      `PCCS for Intel's collateral (default: ATTESTMESH_PCCS_URL, else ${DEFAULT_PCCS_URL})`,
    )
    .option("--at <time>", "verify at this time (unix seconds or ISO 8601) instead of now");
}

/** The verification time: `--at`, a file's own `verifyAt`, or now. */
export function verificationTime(options: EvidenceOptions, file?: AttestationFile): number {
  if (options.at !== undefined) {
    const seconds = /^\d+$/.test(options.at) ? Number(options.at) : Date.parse(options.at) / 1000;
    if (!Number.isFinite(seconds))
      throw badArgument(`--at must be unix seconds or ISO 8601, got "${options.at}"`);
    return Math.floor(seconds);
  }
  return file?.verifyAt ?? Math.floor(Date.now() / 1000);
}

/** `--collateral`, the file's own collateral, or the PCCS. */
export function collateralSource(
  io: CliIo,
  options: EvidenceOptions,
  file?: AttestationFile,
): CollateralSource {
  if (options.collateral !== undefined) return fileCollateral(options.collateral);
  if (file?.collateral !== undefined)
    return fixedCollateral(file.collateral, "the attestation file's collateral");
  return pccsCollateral({ url: options.pccs ?? io.env.ATTESTMESH_PCCS_URL ?? DEFAULT_PCCS_URL });
}

export async function readAttestationFile(path: string): Promise<AttestationFile> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    throw badArgument(`cannot read ${path}: give a member id, an app id, a URL or an attestation file`, {
      cause: String(cause),
    });
  }
  try {
    return parseAttestationFile(JSON.parse(text));
  } catch (cause) {
    if (cause instanceof AttestmeshError) throw cause;
    throw badArgument(`${path} is not JSON`);
  }
}

/** Prints the report (text or JSON) and exits 2 unless it passed. */
export function printReport(ctx: ClusterContext, report: VerificationReport): void {
  ctx.io.stdout.write(ctx.json ? toJson(report) : formatReport(report));
  if (!report.ok) throw new ExitCode(2);
}

/** Where a member's sidecar serves /attestation: the devnet's node, or the dstack gateway. */
async function attestationUrl(appId: Address, options: AttestOptions): Promise<string> {
  if (options.gateway !== undefined) {
    const port = options.healthPort ?? "9090";
    if (!/^\d+$/.test(port)) throw badArgument(`--health-port must be a port number, got "${port}"`);
    return `https://${appId.slice(2).toLowerCase()}-${port}.${options.gateway}/attestation`;
  }
  if (options.network === "devnet") {
    const state = JSON.parse(await readFile(DEVNET_STATE_FILE, "utf8")) as {
      nodes?: { appId: string; healthUrl: string }[];
    };
    const node = state.nodes?.find((n) => n.appId.toLowerCase() === appId.toLowerCase());
    if (node === undefined) throw badArgument(`no devnet node runs app ${appId}`);
    return node.healthUrl.replace(/\/healthz$/, "/attestation");
  }
  throw badArgument(
    "how to reach the member? pass --gateway <dstack gateway domain> (and --health-port), or give its URL",
  );
}

async function fetchDocument(url: string, nonce: Uint8Array): Promise<AttestationFile> {
  const target = new URL(url);
  if (!target.pathname.endsWith("/attestation"))
    target.pathname = `${target.pathname.replace(/\/$/, "")}/attestation`;
  target.searchParams.set("nonce", `0x${Buffer.from(nonce).toString("hex")}`);
  let response: Response;
  try {
    response = await fetch(target, { signal: AbortSignal.timeout(30_000) });
  } catch (cause) {
    throw new AttestmeshError(`cannot reach ${target.origin}${target.pathname}: ${String(cause)}`, {
      code: "AttestationUnreachable",
      retryable: true,
    });
  }
  const body = await response.text();
  if (!response.ok) {
    throw new AttestmeshError(
      `${target.origin}${target.pathname} answered ${response.status}: ${body.slice(0, 200)}`,
      {
        code: "AttestationUnavailable",
        retryable: response.status === 429 || response.status >= 500,
      },
    );
  }
  const document = parseAttestationDocument(JSON.parse(body));
  return {
    document,
    evidence: {
      quote: Buffer.from(document.quote.slice(2), "hex"),
      eventLog: parseEventLog(document.eventLog),
      appCompose: document.appCompose,
    },
  };
}

export function registerAttestCommand(program: Command, io: CliIo): void {
  evidenceOptions(chainOptions(program.command("attest <target>")))
    .description(
      "verify a member's live attestation (member id, app id, URL or saved file) and print one verification report; exit code 0 only when every check passes",
    )
    .option("--gateway <domain>", "reach the member through the dstack gateway at this domain")
    .option("--health-port <port>", "the sidecar's health port behind the gateway (default: 9090)")
    .option("--save <file>", "also write the fetched attestation document to this file")
    .action(async (target: string, options: AttestOptions) => {
      const ctx = await clusterContext(io, options);
      const nonce = new Uint8Array(randomBytes(32));
      let file: AttestationFile;
      let memberId: bigint | undefined;
      let memberNonce = nonce;
      if (/^\d+$/.test(target) || /^0x[0-9a-fA-F]{40}$/.test(target)) {
        let appId: Address;
        if (/^\d+$/.test(target)) {
          memberId = BigInt(target);
          appId = (await readCluster(ctx).read.member([memberId])).appId;
        } else {
          appId = getAddress(parseAddress(target, "app id"));
          const [id] = await readCluster(ctx).read.memberOfApp([appId]);
          if (id === 0n) throw badArgument(`app ${appId} has no member in this cluster`);
          memberId = id;
        }
        file = await fetchDocument(await attestationUrl(appId, options), nonce);
      } else if (/^https?:\/\//.test(target)) {
        file = await fetchDocument(target, nonce);
        memberId = BigInt(file.document!.claims.memberId);
      } else {
        file = await readAttestationFile(target);
        if (file.document === undefined) {
          // A quote bundle claims no member: it is judged as `check <file>` judges it.
          io.stderr.write(`${target}: a bare quote claiming no member; judged against the policy alone\n`);
        } else {
          // A saved document is judged against the nonce it was made for; it proves nothing about now.
          memberId = BigInt(file.document.claims.memberId);
          memberNonce = Buffer.from(file.document.nonce.slice(2), "hex");
          io.stderr.write(
            `${target}: a saved attestation, made for nonce ${file.document.nonce}; freshness is not proven\n`,
          );
        }
      }
      if (options.save !== undefined && file.document !== undefined) {
        await writeFile(options.save, `${JSON.stringify(file.document, null, 2)}\n`);
      }
      const report = await verificationReport(ctx, file.evidence, {
        collateral: collateralSource(io, options, file),
        at: verificationTime(options, file),
        ...(memberId === undefined ? {} : { member: { memberId, nonce: memberNonce } }),
      });
      printReport(ctx, report);
    });
}
