// `attestmesh check <appId>`: is this app allowed to boot and to join, and if not, why. Exit code 0 when
// it is, 2 when it is not (1 stays "the check itself failed"). `attestmesh check <file>`: the same answer
// for a quote given as a file (a saved attestation or a quote bundle): the quote verified, then the
// policy, revocation before any allowlist.

import type { Command } from "commander";
import { badArgument, parseAddress, parseBytes32 } from "../../owner/args.ts";
import { checkApp } from "../../owner/check.ts";
import { composeArgument, composeFormNote } from "../../owner/composeHash.ts";
import { type ChainCommandOptions, clusterContext } from "../../owner/context.ts";
import { assertDstackKms, parseKmsContract } from "../../owner/dstackKms.ts";
import { type CliIo, toJson } from "../../owner/io.ts";
import { ExitCode } from "../exitCode.ts";
import {
  collateralSource,
  type EvidenceOptions,
  evidenceOptions,
  printReport,
  readAttestationFile,
  verificationTime,
} from "./attest.ts";
import { NORMALISED_OPTION } from "./composeOptions.ts";
import { chainOptions } from "./options.ts";

type CheckOptions = ChainCommandOptions &
  EvidenceOptions & {
    compose?: string;
    device?: string;
    normalised?: boolean;
    kmsContract?: string;
    osImage?: string;
  };

export function registerCheckCommand(program: Command, io: CliIo): void {
  evidenceOptions(chainOptions(program.command("check <appIdOrFile>")))
    .description(
      "may this app boot and join, or is this quote file's CVM allowed? prints why not; exit code 0 yes, 2 no",
    )
    .option(
      "--compose <fileOrHash>",
      "also ask the boot gate (isAppAllowed) about this compose hash (an app-compose.json: sha256 of its bytes)",
    )
    .option("--normalised", NORMALISED_OPTION)
    .option("--device <deviceId>", "the device id for the boot gate (default: zero, i.e. allow-any-device)")
    .option(
      "--kms-contract <address|base>",
      "also check the app is registered with dstack's KMS contract (DstackKms; `base`: Phala's on Base), without which its KMS refuses to boot it",
    )
    .option(
      "--os-image <hash>",
      "with --kms-contract and --compose: also ask the KMS contract's own isAppAllowed for this OS image hash",
    )
    .action(async (value: string, options: CheckOptions) => {
      if (!/^0x/i.test(value)) {
        // A quote file: verify it, then judge it against the policy (revocation first).
        const file = await readAttestationFile(value);
        const ctx = await clusterContext(io, options);
        const { verificationReport } = await import("../../owner/attest.ts");
        const report = await verificationReport(ctx, file.evidence, {
          collateral: collateralSource(io, options, file),
          at: verificationTime(options, file),
        });
        printReport(ctx, report);
        return;
      }
      const appId = parseAddress(value, "app id");
      const normalised = options.normalised === true;
      if (normalised && options.compose === undefined)
        throw badArgument("--normalised goes with --compose <file>");
      const compose =
        options.compose === undefined ? undefined : composeArgument(options.compose, { normalised });
      const composeHash = compose?.hash;
      const deviceId = options.device === undefined ? undefined : parseBytes32(options.device, "--device");
      const osImageHash =
        options.osImage === undefined ? undefined : parseBytes32(options.osImage, "--os-image");
      if (osImageHash !== undefined && (options.kmsContract === undefined || composeHash === undefined)) {
        throw badArgument("--os-image goes with --kms-contract and --compose");
      }
      if (options.kmsContract !== undefined && options.kmsContract.toLowerCase() !== "base") {
        parseAddress(options.kmsContract, "--kms-contract");
      }
      const ctx = await clusterContext(io, options);
      let kmsContract: `0x${string}` | undefined;
      if (options.kmsContract !== undefined) {
        kmsContract = parseKmsContract(options.kmsContract, ctx.net.chain.id);
        await assertDstackKms(ctx.net, kmsContract);
      }
      const result = await checkApp(ctx, appId, {
        ...(composeHash === undefined ? {} : { composeHash }),
        ...(deviceId === undefined ? {} : { deviceId }),
        ...(kmsContract === undefined ? {} : { kmsContract }),
        ...(osImageHash === undefined ? {} : { osImageHash }),
      });
      const kmsOk =
        result.kms === null ||
        (result.kms.registered && (result.kms.boot === null || result.kms.boot.allowed));
      const ok = result.join.allowed && (result.boot === null || result.boot.allowed) && kmsOk;
      if (ctx.json) {
        io.stdout.write(
          toJson({
            ...result,
            ...(compose?.file === undefined ? {} : { composeFile: compose.file }),
            allowed: ok,
          }),
        );
      } else {
        const boot =
          result.boot === null
            ? "boot: not checked (pass --compose <app-compose.json|hash>)"
            : `boot: ${result.boot.allowed ? "yes" : "no"}${result.boot.reason ? ` — ${result.boot.reason}` : ""}${
                !result.boot.composeRoles.includes(result.role) && result.boot.composeRoles.length > 0
                  ? ` (the compose hash is allowed for the ${result.boot.composeRoles.join(", ")} role, this app id is a ${result.role} app id)`
                  : ""
              }`;
        const join = `join: ${result.join.allowed ? "yes" : `no — ${result.join.reasons.join("; ")}`}`;
        const member =
          result.member === null
            ? "member: none yet"
            : `member: ${result.member.memberId} (${result.member.active ? "active" : "ended"})`;
        const kms =
          result.kms === null
            ? "kms: not checked (pass --kms-contract <address|base>)"
            : result.kms.registered
              ? `kms: registered with ${result.kms.contract}` +
                (result.kms.boot === null
                  ? ""
                  : `; its isAppAllowed: ${result.kms.boot.allowed ? "yes" : `no — ${result.kms.boot.reason}`}`)
              : `kms: no — not registered with dstack's KMS contract ${result.kms.contract}, so its KMS refuses to boot the app; fix: ${result.kms.fix}`;
        const note = compose?.file === undefined ? undefined : composeFormNote(compose.file, normalised);
        if (note) io.stderr.write(`${note.join("\n  ")}\n`);
        io.stdout.write(
          `${appId}${result.memberApp ? " (member app of this cluster)" : ""}, ${result.role} role\n${boot}\n${kms}\n${join}\n${member}\n${ok ? "allowed" : "NOT allowed"}\n`,
        );
      }
      if (!ok) throw new ExitCode(2);
    });
}
