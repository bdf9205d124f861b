// The one path every state-changing owner command takes:
//   plan → (--calldata: print to/data/value for a multisig) → simulate with eth_call and estimate gas
//   → (--dry-run: print the result, send nothing) → show the change and confirm (TTY prompt, or --yes)
//   → send → wait for the receipt with a progress indicator → print the hash and the decoded events.
// A revert at any step is decoded into the cluster's custom error (chainErrors.ts) before anything is sent.

import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import {
  type Abi,
  type Account,
  type Address,
  createWalletClient,
  encodeFunctionData,
  type Hex,
  parseEventLogs,
} from "viem";
import { decodeChainError } from "./chainErrors.ts";
import type { ClusterContext } from "./context.ts";
import { toJson } from "./io.ts";
import { loadOwnerAccount } from "./ownerKey.ts";
import { startProgress } from "./progress.ts";

export interface TxFlags {
  readonly yes?: boolean;
  readonly dryRun?: boolean;
  readonly calldata?: boolean;
}

/** One owner call on the cluster diamond, and what it changes in words. */
export interface TxPlan {
  /** The command, e.g. "allow compose". */
  readonly action: string;
  readonly functionName: string;
  readonly args: readonly unknown[];
  /** What will change, label → value, shown before confirming and echoed in the output. */
  readonly changes: Readonly<Record<string, string>>;
  /** Who may make the call, for --calldata's check (default: the owner; accepting ownership: the pending owner). */
  readonly caller?: "owner" | "pendingOwner";
  /** Another contract to call instead of the cluster diamond (e.g. dstack's KMS contract), with its ABI. */
  readonly target?: { readonly address: Address; readonly abi: Abi };
}

export interface DecodedEvent {
  readonly name: string;
  readonly args: Readonly<Record<string, unknown>>;
}

/** The output of a state-changing command; every key is always present (null where it does not apply). */
export interface TxOutcome {
  readonly action: string;
  readonly mode: "calldata" | "dry-run" | "sent";
  readonly chainId: number;
  readonly cluster: Address;
  readonly from: Address | null;
  readonly to: Address;
  readonly value: string;
  readonly data: Hex;
  readonly function: string;
  readonly changes: Readonly<Record<string, string>>;
  readonly gas: string | null;
  readonly result: unknown;
  readonly transactionHash: Hex | null;
  readonly blockNumber: string | null;
  readonly gasUsed: string | null;
  readonly events: readonly DecodedEvent[];
}

/** Plain JSON data: bigints as decimal strings, nested through arrays and objects. */
export function jsonSafe(value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) return value.map(jsonSafe);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonSafe(v)]));
  }
  return value;
}

function formatEvent(event: DecodedEvent): string {
  const args = Object.entries(event.args).map(([k, v]) => `${k}: ${String(jsonSafe(v))}`);
  return `${event.name}(${args.join(", ")})`;
}

function renderChanges(plan: TxPlan): string {
  const width = Math.max(0, ...Object.keys(plan.changes).map((k) => k.length));
  return Object.entries(plan.changes)
    .map(([label, value]) => `  ${label.padEnd(width)}  ${value}`)
    .join("\n");
}

export function printOutcome(ctx: ClusterContext, outcome: TxOutcome, note?: string): void {
  const { stdout } = ctx.io;
  if (ctx.json) {
    stdout.write(toJson(outcome));
    return;
  }
  const changes = Object.entries(outcome.changes)
    .map(([k, v]) => `  ${k}: ${v}`)
    .join("\n");
  switch (outcome.mode) {
    case "calldata":
      stdout.write(
        `${outcome.action} — transaction for the owner (e.g. a Safe) to execute on chain ${outcome.chainId}:\n${changes}\n` +
          `to:    ${outcome.to}\nvalue: ${outcome.value}\ndata:  ${outcome.data}\n`,
      );
      break;
    case "dry-run":
      stdout.write(
        `${outcome.action} — dry run, nothing sent: the call would succeed from ${outcome.from}\n${changes}\n` +
          `gas estimate: ${outcome.gas}${outcome.result === null ? "" : `\nreturns: ${String(jsonSafe(outcome.result))}`}\n`,
      );
      break;
    case "sent":
      stdout.write(
        `${outcome.action} — done in block ${outcome.blockNumber} (gas used ${outcome.gasUsed})\n${changes}\n` +
          `transaction: ${outcome.transactionHash}\n` +
          (outcome.events.length === 0
            ? "events: none (nothing changed)\n"
            : `events:\n${outcome.events.map((e) => `  ${formatEvent(e)}`).join("\n")}\n`),
      );
      break;
  }
  if (note) stdout.write(`${note}\n`);
}

async function confirm(ctx: ClusterContext, plan: TxPlan, from: Address, gas: bigint): Promise<void> {
  const { io } = ctx;
  if (!ctx.json) {
    io.stderr.write(
      `${plan.action} on cluster ${ctx.cluster} (chain ${ctx.net.chain.id}), from ${from}, ~${gas} gas:\n${renderChanges(plan)}\n`,
    );
  }
  if (!io.interactive) {
    throw new AttestmeshError(
      "refusing to send without confirmation: no terminal to ask on; pass --yes (or --dry-run to only simulate)",
      { code: "ConfirmationRequired" },
    );
  }
  const { default: ask } = await import("@inquirer/confirm");
  const ok = await ask({ message: "Send this transaction?", default: false }, { output: process.stderr });
  if (!ok) throw new AttestmeshError("cancelled; nothing was sent", { code: "Cancelled" });
}

/** Runs `plan` through the whole flow and returns what happened (the caller prints it). */
export async function transact(
  ctx: ClusterContext,
  plan: TxPlan,
  flags: TxFlags,
  account?: Account,
): Promise<TxOutcome> {
  const { net, cluster } = ctx;
  const to = plan.target?.address ?? cluster;
  const abi: Abi = plan.target?.abi ?? clusterAbi;
  const call = { abi, functionName: plan.functionName, args: plan.args } as never;
  const data = encodeFunctionData(call);
  const base = {
    action: plan.action,
    chainId: net.chain.id,
    cluster,
    to,
    value: "0",
    data,
    function: plan.functionName,
    changes: plan.changes,
    transactionHash: null,
    blockNumber: null,
    gasUsed: null,
    events: [],
  } as const;

  if (flags.calldata) {
    // No key: check the call would pass from the owner's address (a Safe, say), then print it.
    const owner = await net.client.readContract({
      address: cluster,
      abi: clusterAbi,
      functionName: plan.caller ?? "owner",
    });
    try {
      await net.client.call({ account: owner, to, data });
    } catch (error) {
      throw decodeChainError(error, plan.functionName);
    }
    return { ...base, mode: "calldata", from: owner, gas: null, result: null };
  }

  const signer = account ?? (await loadOwnerAccount(ctx.io.env));
  let result: unknown;
  let gas: bigint;
  try {
    ({ result } = await net.client.simulateContract({
      ...(call as object),
      address: to,
      account: signer,
    } as never));
    gas = await net.client.estimateGas({ account: signer, to, data });
  } catch (error) {
    throw decodeChainError(error, plan.functionName);
  }
  /** What the simulation found, reported by a dry run and by a sent transaction alike. */
  const simulated = { from: signer.address, gas: gas.toString(), result: jsonSafe(result ?? null) };
  if (flags.dryRun) {
    return { ...base, mode: "dry-run", ...simulated };
  }

  if (!flags.yes) await confirm(ctx, plan, signer.address, gas);
  const wallet = createWalletClient({ account: signer, chain: net.chain, transport: net.transport });
  const progress = startProgress(ctx.io, ctx.json, `${plan.action}: sending`);
  let hash: Hex;
  try {
    hash = await wallet.sendTransaction({
      to,
      data,
      gas: (gas * 12n) / 10n,
      chain: net.chain,
      account: signer,
    });
  } catch (error) {
    progress.fail(`${plan.action}: not sent`);
    throw decodeChainError(error, plan.functionName);
  }
  progress.update(`${plan.action}: waiting for ${hash}`);
  let receipt: Awaited<ReturnType<typeof net.client.waitForTransactionReceipt>>;
  try {
    receipt = await net.client.waitForTransactionReceipt({ hash, timeout: 180_000 });
  } catch (error) {
    progress.fail(`${plan.action}: no receipt for ${hash}`);
    throw new AttestmeshError(
      `sent ${hash} but saw no receipt: ${(error as Error).message.split("\n")[0]}; look it up before sending again`,
      { code: "ReceiptTimeout", retryable: true, cause: error },
    );
  }
  if (receipt.status !== "success") {
    progress.fail(`${plan.action}: reverted`);
    throw new AttestmeshError(`transaction ${hash} reverted in block ${receipt.blockNumber}`, {
      code: "Reverted",
    });
  }
  progress.succeed(`${plan.action}: mined in block ${receipt.blockNumber}`);
  const events = parseEventLogs({ abi, logs: receipt.logs }).map((log) => ({
    name: log.eventName,
    args: jsonSafe(log.args) as Record<string, unknown>,
  }));
  return {
    ...base,
    mode: "sent",
    ...simulated,
    transactionHash: hash,
    blockNumber: receipt.blockNumber.toString(),
    gasUsed: receipt.gasUsed.toString(),
    events,
  };
}
