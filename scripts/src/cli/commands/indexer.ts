// `attestmesh indexer set|show|clear`: the cluster's indexer record.

import type { Command } from "commander";
import { badArgument } from "../../owner/args.ts";
import { composeHashArgument } from "../../owner/composeHash.ts";
import { type ChainCommandOptions, clusterContext, readCluster } from "../../owner/context.ts";
import { readIndexerProof } from "../../owner/indexerProof.ts";
import { type CliIo, toJson } from "../../owner/io.ts";
import { chainOptions, runPlan, type TxCommandOptions, txOptions } from "./options.ts";

function checkEndpoint(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw badArgument(`indexer endpoint must be a ws:// or wss:// URL, got "${endpoint}"`);
  }
  if (url.protocol !== "wss:" && url.protocol !== "ws:") {
    throw badArgument(`indexer endpoint must be a ws:// or wss:// URL, got "${endpoint}"`);
  }
  return endpoint;
}

export function registerIndexerCommand(program: Command, io: CliIo): void {
  const indexer = program.command("indexer").description("the cluster's indexer record");

  txOptions(indexer.command("set <endpoint>"))
    .description("set (or rotate) the indexer: its push endpoint, code id and dstack-proven signing key")
    .requiredOption(
      "--proof <file>",
      "JSON from the indexer CVM: appId, signingKey, appPubkey, appSignature, kmsSignature[, codeId]",
    )
    .option(
      "--code-id <fileOrHash>",
      "the indexer's compose hash (its app-compose.json, sha256 of its bytes, or a 0x hash); overrides the proof file's",
    )
    .action(async (endpoint: string, options: TxCommandOptions & { proof: string; codeId?: string }) => {
      checkEndpoint(endpoint);
      const proof = readIndexerProof(options.proof);
      const codeId = options.codeId !== undefined ? composeHashArgument(options.codeId) : proof.codeId;
      if (codeId === undefined)
        throw badArgument("no code id: pass --code-id or put codeId in the proof file");
      await runPlan(io, options, () => ({
        action: "indexer set",
        functionName: "setIndexer",
        args: [
          endpoint,
          codeId,
          proof.signingKey,
          {
            appId: proof.appId,
            appPubkey: proof.appPubkey,
            appSignature: proof.appSignature,
            kmsSignature: proof.kmsSignature,
            guestApiVersion: proof.guestApiVersion,
          },
        ],
        changes: { endpoint, "code id": codeId, "signing key": proof.signingKey, "app id": proof.appId },
      }));
    });

  txOptions(indexer.command("clear"))
    .description("remove the indexer record (sidecars keep polling the chain)")
    .action(async (options: TxCommandOptions) => {
      await runPlan(io, options, () => ({
        action: "indexer clear",
        functionName: "clearIndexer",
        args: [],
        changes: { indexer: "cleared" },
      }));
    });

  chainOptions(indexer.command("show"))
    .description("show the indexer record")
    .action(async (options: ChainCommandOptions) => {
      const ctx = await clusterContext(io, options);
      const record = await readCluster(ctx).read.indexer();
      const set = record.updatedAt !== 0;
      const view = {
        cluster: ctx.cluster,
        chainId: ctx.net.chain.id,
        set,
        endpoint: set ? record.endpoint : null,
        codeId: set ? record.codeId : null,
        signingKey: set ? record.signingKey : null,
        appId: set ? record.appId : null,
        kmsRoot: set ? record.kmsRoot : null,
        updatedAt: set ? new Date(record.updatedAt * 1000).toISOString() : null,
      };
      if (ctx.json) {
        io.stdout.write(toJson(view));
        return;
      }
      if (!set) {
        io.stdout.write("no indexer set\n");
        return;
      }
      io.stdout.write(
        `endpoint     ${view.endpoint}\ncode id      ${view.codeId}\nsigning key  ${view.signingKey}\napp id       ${view.appId}\nKMS root     ${view.kmsRoot}\nupdated at   ${view.updatedAt}\n`,
      );
    });
}
