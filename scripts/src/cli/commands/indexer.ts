// `attestmesh indexer list|add|remove|set|show|clear`: the cluster's indexer records. Sidecars subscribe
// to several at once, so `add` the new indexer, then `remove` the old one, rotates without a gap.

import type { Command } from "commander";
import { badArgument } from "../../owner/args.ts";
import { composeHashArgument } from "../../owner/composeHash.ts";
import { type ChainCommandOptions, clusterContext, readCluster } from "../../owner/context.ts";
import { readIndexerProof } from "../../owner/indexerProof.ts";
import { type CliIo, toJson } from "../../owner/io.ts";
import { registerFixedCallCommand } from "./calls.ts";
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

function checkSigningKey(key: string): `0x${string}` {
  if (!/^0x[0-9a-fA-F]{64}$/.test(key)) {
    throw badArgument(
      `an indexer signing key is 32 bytes of 0x-hex (see \`attestmesh indexer list\`), got "${key}"`,
    );
  }
  return key.toLowerCase() as `0x${string}`;
}

export function registerIndexerCommand(program: Command, io: CliIo): void {
  const indexer = program.command("indexer").description("the cluster's indexer records");

  /** `set` and `add`: one record from an endpoint and the indexer CVM's proof file. */
  const recordCommand = (name: "set" | "add", description: string) =>
    txOptions(indexer.command(`${name} <endpoint>`))
      .description(description)
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
          action: `indexer ${name}`,
          functionName: name === "set" ? "setIndexer" : "addIndexer",
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

  recordCommand(
    "add",
    "add an indexer beside those registered (sidecars subscribe to several): its endpoint, code id and dstack-proven signing key",
  );
  recordCommand(
    "set",
    "replace every registered indexer by one: its push endpoint, code id and dstack-proven signing key",
  );

  txOptions(indexer.command("remove <signingKey>"))
    .description("retire one indexer by its signing key; the others keep pushing")
    .action(async (signingKey: string, options: TxCommandOptions) => {
      const key = checkSigningKey(signingKey);
      await runPlan(io, options, () => ({
        action: "indexer remove",
        functionName: "removeIndexer",
        args: [key],
        changes: { "signing key": key },
      }));
    });

  chainOptions(indexer.command("list"))
    .description("list every registered indexer, oldest first")
    .action(async (options: ChainCommandOptions) => {
      const ctx = await clusterContext(io, options);
      const records = await readCluster(ctx).read.indexers();
      const indexers = records.map((r) => ({
        endpoint: r.endpoint,
        codeId: r.codeId,
        signingKey: r.signingKey,
        appId: r.appId,
        kmsRoot: r.kmsRoot,
        updatedAt: new Date(r.updatedAt * 1000).toISOString(),
      }));
      if (ctx.json) {
        io.stdout.write(toJson({ cluster: ctx.cluster, chainId: ctx.net.chain.id, indexers }));
        return;
      }
      if (indexers.length === 0) {
        io.stdout.write("no indexer registered\n");
        return;
      }
      for (const v of indexers) {
        io.stdout.write(
          `${v.signingKey}  ${v.endpoint}\n  code id ${v.codeId}  app id ${v.appId}  KMS root ${v.kmsRoot}  added ${v.updatedAt}\n`,
        );
      }
    });

  registerFixedCallCommand(
    indexer.command("clear"),
    io,
    "remove every indexer record (sidecars keep polling the chain)",
    { action: "indexer clear", functionName: "clearIndexer", args: [], changes: { indexer: "cleared" } },
  );

  chainOptions(indexer.command("show"))
    .description("show the first (oldest) indexer record")
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
