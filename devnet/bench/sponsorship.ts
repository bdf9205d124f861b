// Figures for gas sponsorship, on a Hardhat node with Pimlico's Alto and the sponsorship service:
// gas per sponsored registration (the node's first UserOperation, which also deploys its account)
// against a direct registration paid by a funded key, and the latency from submitting the
// UserOperation to the bundler until its inclusion. `node devnet/bench/sponsorship.ts [--runs N]`
import { performance } from "node:perf_hooks";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { toMemberAccount } from "@attestmesh/sidecar/chain/memberAccount.ts";
import type { NodeKeys } from "@attestmesh/sidecar/keys.ts";
import { encodeFunctionData, http } from "viem";
import { createBundlerClient, createPaymasterClient } from "viem/account-abstraction";
import { privateKeyToAccount } from "viem/accounts";
import { SIMULATED_CLAIMS } from "../../test/helpers/cluster.ts";
import { setupSponsorship } from "../../test/helpers/sponsorship.ts";

const runsArg = process.argv.indexOf("--runs");
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 5;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const fx = await setupSponsorship();
try {
  const sponsor = await fx.startSponsor();
  const chain = await fx.chainContext();

  async function registerArgs(keys: NodeKeys) {
    const signature = await fx.signRegister(keys, 0n);
    return [
      keys.member.proof,
      keys.wireguard.publicKey,
      keys.identity.publicKey,
      SIMULATED_CLAIMS,
      signature,
    ] as const;
  }

  const sponsoredLeave: bigint[] = [];
  const directLeave: bigint[] = [];
  const sponsored: Array<{ opGas: bigint; txGas: bigint; prepareMs: number; inclusionMs: number }> = [];
  for (let i = 0; i < RUNS; i++) {
    const keys = await fx.node();
    const account = await toMemberAccount({
      client: chain.publicClient,
      owner: privateKeyToAccount(keys.member.secret.reveal()),
      entryPoint: fx.sponsorship.entryPoint,
      factory: fx.sponsorship.accountFactory,
    });
    const bundler = createBundlerClient({
      client: chain.publicClient,
      account,
      transport: http(fx.bundler.url),
      paymaster: createPaymasterClient({ transport: http(sponsor.url) }),
      pollingInterval: 50,
    });
    const data = encodeFunctionData({
      abi: clusterAbi,
      functionName: "register",
      args: await registerArgs(keys),
    });
    const t0 = performance.now();
    const prepared = await bundler.prepareUserOperation({ calls: [{ to: fx.cluster.diamond, data }] });
    const signature = await account.signUserOperation(prepared);
    const t1 = performance.now();
    const hash = await bundler.sendUserOperation({ ...prepared, signature } as never);
    const receipt = await bundler.waitForUserOperationReceipt({ hash, pollingInterval: 50 });
    const t2 = performance.now();
    if (!receipt.success) throw new Error(`sponsored registration ${hash} failed`);
    sponsored.push({
      opGas: receipt.actualGasUsed,
      txGas: receipt.receipt.gasUsed,
      prepareMs: t1 - t0,
      inclusionMs: t2 - t1,
    });
    // A second operation from the now-deployed account: leaving, without the deployment.
    const [memberId] = await chain.publicClient.readContract({
      address: fx.cluster.diamond,
      abi: clusterAbi,
      functionName: "memberOfApp",
      args: [keys.appId],
    });
    const leaveHash = await bundler.sendUserOperation({
      calls: [{ to: fx.cluster.diamond, data: await fx.leaveCall(keys, memberId) }],
    });
    const leaveReceipt = await bundler.waitForUserOperationReceipt({ hash: leaveHash, pollingInterval: 50 });
    if (!leaveReceipt.success) throw new Error(`sponsored leave ${leaveHash} failed`);
    sponsoredLeave.push(leaveReceipt.actualGasUsed);
  }

  const direct: bigint[] = [];
  for (let i = 0; i < RUNS; i++) {
    const keys = await fx.node();
    const hash = await fx.relayer.writeContract({
      address: fx.cluster.diamond,
      abi: clusterAbi,
      functionName: "register",
      args: await registerArgs(keys),
    });
    direct.push((await chain.publicClient.waitForTransactionReceipt({ hash })).gasUsed);
    const [memberId] = await chain.publicClient.readContract({
      address: fx.cluster.diamond,
      abi: clusterAbi,
      functionName: "memberOfApp",
      args: [keys.appId],
    });
    const leaveHash = await fx.relayer.sendTransaction({
      to: fx.cluster.diamond,
      data: await fx.leaveCall(keys, memberId),
    });
    directLeave.push((await chain.publicClient.waitForTransactionReceipt({ hash: leaveHash })).gasUsed);
  }

  const med = (xs: bigint[]) => median(xs.map(Number));
  console.log(`sponsorship figures (${RUNS} runs each, medians; Hardhat node, automine, Alto 0.0.20)`);
  console.log("| figure | value |");
  console.log("|---|---|");
  console.log(`| direct registration, transaction gas | ${med(direct)} |`);
  console.log(
    `| sponsored registration, UserOperation actual gas (incl. account deployment) | ${med(sponsored.map((s) => s.opGas))} |`,
  );
  console.log(`| sponsored registration, bundle transaction gas | ${med(sponsored.map((s) => s.txGas))} |`);
  console.log(`| direct leaveCluster, transaction gas | ${med(directLeave)} |`);
  console.log(
    `| sponsored leaveCluster (account deployed), UserOperation actual gas | ${med(sponsoredLeave)} |`,
  );
  console.log(
    `| prepare (sponsor stub + bundler estimate + sponsor approval + sign), ms | ${median(sponsored.map((s) => s.prepareMs)).toFixed(0)} |`,
  );
  console.log(
    `| eth_sendUserOperation to receipt (inclusion), ms | ${median(sponsored.map((s) => s.inclusionMs)).toFixed(0)} |`,
  );
  console.log(
    `| inclusion, min / max ms | ${Math.min(...sponsored.map((s) => s.inclusionMs)).toFixed(0)} / ${Math.max(...sponsored.map((s) => s.inclusionMs)).toFixed(0)} |`,
  );
} finally {
  await fx.stop();
}
