// `attestmesh devnet …`: a whole cluster on this machine, with real WireGuard in network namespaces.

import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import type { GuestApi } from "@attestmesh/shared/service/pinned.ts";
import { type Command, InvalidArgumentError, Option } from "commander";
import { devnetClients, evictApp } from "../orchestration/chain.ts";
import { startDevnetDashboard } from "../orchestration/dashboard.ts";
import { devnetDown } from "../orchestration/down.ts";
import { devnetStatus, nodeStatus, renderTable } from "../orchestration/health.ts";
import { type DevnetTransport, readState, TRANSPORTS } from "../orchestration/state.ts";
import { addNodeToState, devnetUp, waitHealthy } from "../orchestration/up.ts";

const progress = (json: boolean) => (message: string) => {
  // Progress goes to stderr so `--json` output on stdout stays parseable.
  process.stderr.write(`${json ? "" : "› "}${message}\n`);
};

async function requireState() {
  const state = await readState();
  if (!state) {
    throw new AttestmeshError(
      "no devnet is running here; start one with `npm run devnet` (or `attestmesh devnet up`)",
      {
        code: "DevnetNotRunning",
      },
    );
  }
  return state;
}

/** A commander parser for an integer option from `min` to `max`. */
function integerIn(name: string, min: number, max: number) {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new Error(`${name} must be an integer from ${min} to ${max}, got "${value}"`);
    return n;
  };
}

const positiveInt = (name: string) => integerIn(name, 1, 200);
const nonNegativeInt = (name: string) => integerIn(name, 0, 64);

function seed(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff)
    throw new InvalidArgumentError(`--seed must be an integer from 0 to 4294967295, got "${value}"`);
  return n;
}

/** Report phase changes while the devnet runs in the foreground, until SIGINT or SIGTERM. */
async function watchUntilSignal(): Promise<void> {
  const phases = new Map<string, string>();
  const report = async () => {
    const state = await readState();
    if (!state) return;
    for (const node of await Promise.all(state.nodes.map((node) => nodeStatus(node)))) {
      if (phases.get(node.name) !== node.phase) {
        if (phases.has(node.name))
          process.stderr.write(`› ${node.name}: ${phases.get(node.name)} -> ${node.phase}\n`);
        phases.set(node.name, node.phase);
      }
    }
  };
  await report();
  // The interval also keeps the event loop alive while we wait for the signal.
  const timer = setInterval(() => void report().catch(() => {}), 5_000);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  clearInterval(timer);
}

/** `devnet up` flags (commander sets `indexer` false for `--no-indexer`). */
type UpFlags = {
  nodes: number;
  detach?: boolean;
  json?: boolean;
  timeout: number;
  indexer: boolean;
  indexers?: number;
  fundedKeys?: boolean;
  transport: DevnetTransport;
  blockUdp?: boolean;
  indexerSuppressNode?: string[];
  guestApi: GuestApi;
  confirmations: number;
};

export function registerDevnetCommand(program: Command): void {
  const devnet = program
    .command("devnet")
    .description(
      "run a local cluster: Hardhat node, cluster contract, N nodes with real WireGuard in network namespaces",
    );

  const up = devnet
    .command("up", { isDefault: true })
    .description("start the devnet and wait until every node is healthy (foreground; Ctrl-C tears it down)")
    .option("--nodes <n>", "number of nodes", positiveInt("--nodes"), 3)
    .option("--detach", "return once healthy and leave the devnet running")
    .option("--json", "print the status as JSON")
    .option("--timeout <seconds>", "how long to wait for health", positiveInt("--timeout"), 180)
    .addOption(
      new Option(
        "--transport <mode>",
        "how nodes reach each other: gateway (TLS through the devnet's SNI gateway), udp (direct), auto (gateway, upgraded to direct UDP)",
      )
        .choices(TRANSPORTS)
        .default("auto"),
    )
    .addOption(
      new Option(
        "--guest-api <version>",
        "the dstack guest API the cluster's compose pins: v0 (/GetKey, dstack >= 0.5.6) or v1 (/v1/*, dstack >= 0.6)",
      )
        .choices(["v0", "v1"])
        .default("v0"),
    )
    .option(
      "--confirmations <n>",
      "the sidecars' ATTESTMESH_CONFIRMATIONS; above 0, Hardhat also mines a block every second so the confirmed head moves",
      nonNegativeInt("--confirmations"),
      0,
    )
    .option("--block-udp", "drop UDP between node namespaces, as dstack does (only the gateway path works)")
    .option("--no-indexer", "run without the indexer: sidecars poll the chain only")
    .option("--indexers <n>", "how many indexers to start and register (sidecars subscribe to two)", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 8) throw new InvalidArgumentError("--indexers takes 1 to 8");
      return n;
    })
    .option("--funded-keys", "nodes pay gas with funded keys instead of sponsored ERC-4337 operations")
    // Tests only: the indexer lies by omission, dropping every log of the named (future) node, e.g. node4.
    .addOption(new Option("--indexer-suppress-node <name...>").hideHelp())
    .action(async (options: UpFlags) => {
      const status = await devnetUp({
        nodes: options.nodes,
        indexer: options.indexer,
        ...(options.indexers === undefined ? {} : { indexers: options.indexers }),
        ...(options.indexerSuppressNode === undefined
          ? {}
          : { indexerSuppressNodes: options.indexerSuppressNode }),
        sponsored: !options.fundedKeys,
        transport: options.transport,
        blockUdp: Boolean(options.blockUdp),
        guestApi: options.guestApi,
        confirmations: options.confirmations,
        timeoutMs: options.timeout * 1000,
        progress: progress(Boolean(options.json)),
      });
      process.stdout.write(
        options.json ? `${JSON.stringify(status, null, 2)}\n` : `${renderTable(status)}\n`,
      );
      if (options.detach) return;
      process.stderr.write("devnet running; press Ctrl-C to tear it down\n");
      await startDevnetDashboard(progress(false));
      await watchUntilSignal();
      await devnetDown(progress(false));
    });
  void up;

  devnet
    .command("status")
    .description("show every node: namespace, app id, mesh IP, phase, peers with handshakes")
    .option("--json", "print JSON")
    .action(async (options: { json?: boolean }) => {
      const status = await devnetStatus(await requireState());
      process.stdout.write(
        options.json ? `${JSON.stringify(status, null, 2)}\n` : `${renderTable(status)}\n`,
      );
    });

  devnet
    .command("add-node")
    .description("start one more node and wait until it is healthy")
    .option("--json", "print the new node's entry as JSON")
    .option("--timeout <seconds>", "how long to wait for health", positiveInt("--timeout"), 120)
    // Tests only: run another sidecar entry point (e.g. a member that serves a bogus CSK).
    .addOption(new Option("--sidecar-entry <path>").hideHelp())
    // Tests only: print its entry once started, without waiting for health (a member its peers refuse
    // never becomes healthy).
    .addOption(new Option("--no-wait").hideHelp())
    .option(
      "--device-id <hex>",
      "the device id its simulated guest agent reports, 32 bytes (default: the one every node shares)",
    )
    .option(
      "--compose-variant <label>",
      "run a compose of its own (its app name carries the label), whose hash the owner allows first (default: the compose every node runs)",
    )
    .action(
      async (options: {
        json?: boolean;
        timeout: number;
        sidecarEntry?: string;
        wait: boolean;
        deviceId?: string;
        composeVariant?: string;
      }) => {
        let state = await requireState();
        const clients = devnetClients(state.rpcUrl, state.chainId);
        const index = Math.max(0, ...state.nodes.map((n) => n.index)) + 1;
        progress(Boolean(options.json))(`starting node${index}`);
        if (options.deviceId !== undefined && !/^0x[0-9a-fA-F]{64}$/.test(options.deviceId)) {
          throw new Error(`--device-id must be 0x and 64 hex digits, got ${options.deviceId}`);
        }
        if (options.composeVariant !== undefined && !/^[a-z0-9-]{1,32}$/.test(options.composeVariant)) {
          throw new Error(`--compose-variant must be 1-32 of a-z, 0-9 and -, got ${options.composeVariant}`);
        }
        state = await addNodeToState(
          clients,
          state,
          index,
          options.sidecarEntry,
          options.deviceId as `0x${string}` | undefined,
          options.composeVariant,
        );
        const node = state.nodes.at(-1)!;
        if (options.wait) {
          await waitHealthy(state, [node], options.timeout * 1000, progress(Boolean(options.json)));
        }
        const entry = await nodeStatus(node);
        process.stdout.write(
          options.json
            ? `${JSON.stringify(entry, null, 2)}\n`
            : options.wait
              ? `${node.name} healthy at ${entry.meshIp}\n`
              : `${node.name} started (${entry.phase})\n`,
        );
      },
    );

  devnet
    .command("evict <node>")
    .description("evict a node's member (as the cluster owner)")
    .option("--reason <code>", "eviction reason code (0-254)", "1")
    .action(async (name: string, options: { reason: string }) => {
      const state = await requireState();
      const node = state.nodes.find((n) => n.name === name);
      if (!node)
        throw new Error(
          `no devnet node named "${name}"; known: ${state.nodes.map((n) => n.name).join(", ")}`,
        );
      const reason = Number(options.reason);
      if (!Number.isInteger(reason) || reason < 0 || reason > 254)
        throw new Error(`--reason must be 0-254, got "${options.reason}"`);
      const memberId = await evictApp(
        devnetClients(state.rpcUrl, state.chainId),
        state.diamond,
        node.appId,
        reason,
      );
      process.stdout.write(`evicted ${name} (member ${memberId})\n`);
    });

  devnet
    .command("soak")
    .description(
      "a fresh devnet under a seeded schedule of faults while traffic flows; invariants checked every second, then a report",
    )
    .option("--nodes <n>", "nodes to start and keep the mesh around", positiveInt("--nodes"), 8)
    .option("--minutes <m>", "how long the fault schedule runs", positiveInt("--minutes"), 60)
    .option("--seed <s>", "the schedule's seed (same seed, same schedule)", seed, 1)
    .option("--out <dir>", "where the report (JSON, Markdown) and the resource CSV go", "test-artifacts/soak")
    .option("--keep", "leave the devnet running afterwards")
    .option("--json", "print the report as JSON")
    .action(
      async (options: {
        nodes: number;
        minutes: number;
        seed: number;
        out: string;
        keep?: boolean;
        json?: boolean;
      }) => {
        const { renderReport, runSoak } = await import("../soak/soak.ts");
        if (options.nodes < 3)
          throw new InvalidArgumentError("--nodes takes at least 3 (two anchors and one to disturb)");
        const report = await runSoak({
          nodes: options.nodes,
          minutes: options.minutes,
          seed: options.seed,
          outDir: options.out,
          progress: progress(Boolean(options.json)),
          ...(options.keep ? { keep: true } : {}),
        });
        process.stdout.write(
          options.json ? `${JSON.stringify(report, null, 2)}\n` : `${renderReport(report)}\n`,
        );
        if (report.violations.length > 0) process.exitCode = 1;
      },
    );

  devnet
    .command("down")
    .description("remove every namespace, process and interface the devnet created")
    .action(async () => {
      await devnetDown(progress(false));
      process.stdout.write("devnet removed\n");
    });
}
