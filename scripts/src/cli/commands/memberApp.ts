// `attestmesh member-app create`: a node's own dstack app contract from the cluster's factory. Its
// address is the app id to deploy the node with; the cluster allows it at once. With `--kms-contract`,
// it is also registered with dstack's KMS contract (DstackKms), whose KMS boots no unregistered app.
// `member-app register` registers an existing app id there.

import { randomBytes } from "node:crypto";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import type { Command } from "commander";
import { type Address, bytesToHex, type Hex, keccak256, stringToHex } from "viem";
import { badArgument, parseAddress, parseBytes32 } from "../../owner/args.ts";
import { clusterContext, readCluster } from "../../owner/context.ts";
import {
  assertDstackKms,
  isRegisteredWithKms,
  parseKmsContract,
  registerAppPlan,
  registerCommand,
} from "../../owner/dstackKms.ts";
import { type CliIo, toJson } from "../../owner/io.ts";
import { runPlan, type TxCommandOptions, txOptions } from "./options.ts";

type CreateOptions = TxCommandOptions & { salt?: string; label?: string; kmsContract?: string };
type RegisterOptions = TxCommandOptions & { kmsContract?: string };

const KMS_OPTION =
  "dstack's KMS contract (DstackKms) to register the app with; `base` is Phala's on Base (0x2f83172A49584C017F2B256F0FB2Dca14126Ba9C)";

/** An app id sent with dstack's KMS: where the node goes next. */
const deployNote = (appId: string, registered: boolean) =>
  `app id: ${appId}\nput it in the node's dstack deployment (its KMS auth contract is this app; the cluster already allows it)` +
  (registered
    ? ""
    : "\nregister it with your KMS's DstackKms before deploying (dstack's KMS boots no unregistered app): attestmesh member-app register <app id> --kms-contract <address|base>");

export function registerMemberAppCommand(program: Command, io: CliIo): void {
  const memberApp = program.command("member-app").description("per-node dstack app contracts");

  txOptions(memberApp.command("create"))
    .description("create a node's app contract; prints the app id for the node's dstack deployment")
    .option("--salt <bytes32>", "CREATE2 salt (default: random); the same salt predicts the same app id")
    .option("--label <text>", "derive the salt from a label, e.g. the node's name (keccak256 of it)")
    .option("--kms-contract <address|base>", KMS_OPTION)
    .action(async (options: CreateOptions) => {
      let salt: Hex;
      if (options.salt !== undefined && options.label !== undefined) {
        throw badArgument("give --salt or --label, not both");
      }
      if (options.salt !== undefined) salt = parseBytes32(options.salt, "--salt");
      else if (options.label !== undefined) salt = keccak256(stringToHex(options.label));
      else salt = bytesToHex(randomBytes(32));
      if (options.kmsContract !== undefined && options.kmsContract.toLowerCase() !== "base") {
        parseAddress(options.kmsContract, "--kms-contract");
      }
      const { printOutcome, transact } = await import("../../owner/transact.ts");
      const ctx = await clusterContext(io, options);
      // The KMS contract is checked before anything is sent: a wrong one must not leave an app half set up.
      let kms: Address | undefined;
      if (options.kmsContract !== undefined) {
        kms = parseKmsContract(options.kmsContract, ctx.net.chain.id);
        await assertDstackKms(ctx.net, kms);
      }
      const predicted = await readCluster(ctx).read.predictMemberApp([salt]);
      const created = await transact(
        ctx,
        {
          action: "member-app create",
          functionName: "createMemberApp",
          args: [salt],
          changes: { "new app id": predicted, salt },
        },
        options,
      );
      const sent = created.mode === "sent";
      // registerApp accepts any address, so a dry run or --calldata can plan it before the app exists.
      let registered: Awaited<ReturnType<typeof transact>> | undefined;
      if (kms !== undefined) {
        try {
          registered = await transact(ctx, registerAppPlan(kms, predicted, false), options);
        } catch (error) {
          if (!sent) throw error;
          // The app exists now: say so, and how to finish, rather than only why the second step failed.
          throw new AttestmeshError(
            `created app ${predicted}, but did not register it with the KMS contract: ${(error as Error).message}; finish with: ${registerCommand(predicted, kms)}`,
            { code: "KmsRegistrationFailed", details: { appId: predicted, kmsContract: kms }, cause: error },
          );
        }
      }
      if (ctx.json) {
        io.stdout.write(toJson({ ...created, kmsRegistration: registered ?? null }));
        return;
      }
      printOutcome(ctx, created, sent && registered === undefined ? deployNote(predicted, false) : undefined);
      if (registered !== undefined) {
        printOutcome(ctx, registered, sent ? deployNote(predicted, true) : undefined);
      }
    });

  txOptions(memberApp.command("register <appId>"))
    .description(
      "register an app id with dstack's KMS contract (DstackKms), which its KMS requires to boot it",
    )
    .requiredOption("--kms-contract <address|base>", KMS_OPTION)
    .action(async (value: string, options: RegisterOptions) => {
      const appId = parseAddress(value, "app id");
      if (BigInt(appId) === 0n)
        throw badArgument("app id must not be the zero address (DstackKms refuses it)");
      const given = options.kmsContract ?? "";
      if (given.toLowerCase() !== "base") parseAddress(given, "--kms-contract");
      await runPlan(io, options, async (ctx) => {
        const kms = parseKmsContract(given, ctx.net.chain.id);
        await assertDstackKms(ctx.net, kms);
        return registerAppPlan(kms, appId, await isRegisteredWithKms(ctx.net, kms, appId));
      });
    });
}
