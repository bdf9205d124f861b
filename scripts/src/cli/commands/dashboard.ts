// `attestmesh dashboard`: the owner's read-only web page (scripts/src/dashboard/). It holds no key and
// offers no write; each suggested action is shown as the CLI command that performs it.

import type { Command } from "commander";
import { DEFAULT_PORT, isLoopback } from "../../dashboard/server.ts";
import { startDashboard } from "../../dashboard/start.ts";
import { badArgument, parseAddress, parseInteger } from "../../owner/args.ts";
import type { CliIo } from "../../owner/io.ts";

interface DashboardFlags {
  rpc: string[];
  quorum?: string;
  pccs?: string;
  network?: string;
  cluster?: string;
  host: string;
  port: string;
  listenAny?: boolean;
  healthUrls?: string;
  fromBlock?: string;
  entryPoint?: string;
  paymaster?: string;
  accountFactory?: string;
}

export function registerDashboardCommand(program: Command, io: CliIo): void {
  program
    .command("dashboard")
    .description("serve a read-only web page of the cluster: mesh, members, CSK epochs, policy, sponsorship")
    .option(
      "--rpc <url>",
      "JSON-RPC endpoint (default: ATTESTMESH_RPC_URL); give it more than once for quorum reads",
      (url: string, urls: string[]) => [...urls, url],
      [] as string[],
    )
    .option("--quorum <n>", "with several --rpc: matching answers a read needs (default: a strict majority)")
    .option("--pccs <url>", "PCCS for the collateral of members' TDX quotes (default: ATTESTMESH_PCCS_URL)")
    .option("--network <name>", "a network from hardhat.config.ts: devnet, baseSepolia, base")
    .option("--cluster <address>", "the cluster diamond (default: ATTESTMESH_CLUSTER)")
    .option("--host <address>", "address to listen on", "127.0.0.1")
    .option("--port <n>", "port to listen on (0 picks a free one)", String(DEFAULT_PORT))
    .option("--listen-any", "allow a non-loopback --host: anyone who reaches the port sees the cluster")
    .option("--health-urls <file>", "JSON file of app id → member /healthz URL, re-read on every poll")
    .option("--from-block <n>", "the cluster's deployment block (default: found with eth_getCode)")
    .option("--entry-point <address>", "ERC-4337 EntryPoint, for the sponsorship spend")
    .option("--paymaster <address>", "the cluster's paymaster, for the sponsorship spend")
    .option("--account-factory <address>", "the member-account factory, to attribute spend to members")
    .action(async (flags: DashboardFlags) => {
      const port = parseInteger(flags.port, "--port", 0, 65_535);
      if ((flags.entryPoint === undefined) !== (flags.paymaster === undefined)) {
        throw badArgument("give --entry-point and --paymaster together");
      }
      const [rpc, ...moreRpcs] = flags.rpc;
      const quorum =
        flags.quorum === undefined
          ? undefined
          : parseInteger(flags.quorum, "--quorum", 1, Math.max(1, flags.rpc.length));
      if (flags.quorum !== undefined && flags.rpc.length < 2) {
        throw badArgument("--quorum needs --rpc given more than once");
      }
      const controller = new AbortController();
      const server = await startDashboard(
        io,
        {
          ...(rpc === undefined ? {} : { rpc }),
          ...(moreRpcs.length === 0 ? {} : { moreRpcs }),
          ...(quorum === undefined ? {} : { quorum }),
          ...(flags.pccs === undefined ? {} : { pccs: flags.pccs }),
          ...(flags.network === undefined ? {} : { network: flags.network }),
          ...(flags.cluster === undefined ? {} : { cluster: flags.cluster }),
          host: flags.host,
          port,
          listenAny: flags.listenAny === true,
          ...(flags.healthUrls === undefined ? {} : { healthUrls: flags.healthUrls }),
          ...(flags.fromBlock === undefined
            ? {}
            : {
                fromBlock: BigInt(parseInteger(flags.fromBlock, "--from-block", 0, Number.MAX_SAFE_INTEGER)),
              }),
          ...(flags.entryPoint === undefined || flags.paymaster === undefined
            ? {}
            : {
                sponsorship: {
                  entryPoint: parseAddress(flags.entryPoint, "--entry-point"),
                  paymaster: parseAddress(flags.paymaster, "--paymaster"),
                  ...(flags.accountFactory === undefined
                    ? {}
                    : { accountFactory: parseAddress(flags.accountFactory, "--account-factory") }),
                },
              }),
        },
        controller.signal,
      );
      if (!isLoopback(flags.host)) {
        io.stderr.write(
          `warning: the dashboard listens on ${flags.host}: anyone who reaches it sees the whole cluster\n`,
        );
      }
      io.stdout.write(`dashboard: ${server.url} (read-only; Ctrl-C stops it)\n`);
      await new Promise<void>((resolve) => {
        process.once("SIGINT", resolve);
        process.once("SIGTERM", resolve);
      });
      controller.abort();
      await server.close();
    });
}
