// `attestmesh ownership show|transfer|accept`: the cluster's two-step ownership (ERC-173), e.g. to hand
// a cluster deployed from a hot key to a Safe, or to rotate the owner key.

import type { Command } from "commander";
import { parseAddress } from "../../owner/args.ts";
import { type ChainCommandOptions, clusterContext, readCluster } from "../../owner/context.ts";
import { type CliIo, toJson } from "../../owner/io.ts";
import { registerFixedCallCommand } from "./calls.ts";
import { chainOptions, runPlan, type TxCommandOptions, txOptions } from "./options.ts";

const ZERO = "0x0000000000000000000000000000000000000000";

export function registerOwnershipCommand(program: Command, io: CliIo): void {
  const ownership = program
    .command("ownership")
    .description("the cluster owner and two-step ownership transfer");

  chainOptions(ownership.command("show"))
    .description("the owner and the pending owner, if a transfer is under way")
    .action(async (options: ChainCommandOptions) => {
      const ctx = await clusterContext(io, options);
      const cluster = readCluster(ctx);
      const [owner, pending] = await Promise.all([cluster.read.owner(), cluster.read.pendingOwner()]);
      const view = {
        cluster: ctx.cluster,
        chainId: ctx.net.chain.id,
        owner,
        pendingOwner: pending === ZERO ? null : pending,
      };
      io.stdout.write(
        ctx.json
          ? toJson(view)
          : `owner          ${owner}\npending owner  ${view.pendingOwner ?? "(none)"}\n`,
      );
    });

  txOptions(ownership.command("transfer <newOwner>"))
    .description("start handing the cluster to a new owner, who must then `ownership accept`")
    .action(async (value: string, options: TxCommandOptions) => {
      const newOwner = parseAddress(value, "new owner");
      await runPlan(
        io,
        options,
        () => ({
          action: "ownership transfer",
          functionName: "transferOwnership",
          args: [newOwner],
          changes: { "pending owner": newOwner },
        }),
        (outcome) =>
          outcome.mode === "sent"
            ? "the new owner must now run `attestmesh ownership accept` (or its --calldata)"
            : undefined,
      );
    });

  registerFixedCallCommand(
    ownership.command("accept"),
    io,
    "accept a pending transfer, as the pending owner (its key, or --calldata for a Safe)",
    {
      action: "ownership accept",
      functionName: "acceptOwnership",
      args: [],
      changes: { owner: "the pending owner" },
      caller: "pendingOwner",
    },
  );
}
