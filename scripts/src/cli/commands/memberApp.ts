// `attestmesh member-app create`: a node's own dstack app contract from the cluster's factory. Its
// address is the app id to deploy the node with; the cluster allows it at once.

import { randomBytes } from "node:crypto";
import type { Command } from "commander";
import { bytesToHex, type Hex, keccak256, stringToHex } from "viem";
import { badArgument, parseBytes32 } from "../../owner/args.ts";
import { readCluster } from "../../owner/context.ts";
import type { CliIo } from "../../owner/io.ts";
import { runPlan, type TxCommandOptions, txOptions } from "./options.ts";

type CreateOptions = TxCommandOptions & { salt?: string; label?: string };

export function registerMemberAppCommand(program: Command, io: CliIo): void {
  const memberApp = program.command("member-app").description("per-node dstack app contracts");

  txOptions(memberApp.command("create"))
    .description("create a node's app contract; prints the app id for the node's dstack deployment")
    .option("--salt <bytes32>", "CREATE2 salt (default: random); the same salt predicts the same app id")
    .option("--label <text>", "derive the salt from a label, e.g. the node's name (keccak256 of it)")
    .action(async (options: CreateOptions) => {
      let salt: Hex;
      if (options.salt !== undefined && options.label !== undefined) {
        throw badArgument("give --salt or --label, not both");
      }
      if (options.salt !== undefined) salt = parseBytes32(options.salt, "--salt");
      else if (options.label !== undefined) salt = keccak256(stringToHex(options.label));
      else salt = bytesToHex(randomBytes(32));
      let predicted = "";
      await runPlan(
        io,
        options,
        async (ctx) => {
          predicted = await readCluster(ctx).read.predictMemberApp([salt]);
          return {
            action: "member-app create",
            functionName: "createMemberApp",
            args: [salt],
            changes: { "new app id": predicted, salt },
          };
        },
        (outcome) =>
          outcome.mode === "sent"
            ? `app id: ${predicted}\nput it in the node's dstack deployment (its KMS auth contract is this app; the cluster already allows it)`
            : undefined,
      );
    });
}
