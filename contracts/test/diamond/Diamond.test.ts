// The cluster diamond with only its three base facets: routing, cut rules, loupe, ERC-165 and two-step
// ownership, exercised through viem the way the sidecar and the owner CLI reach it.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { artifacts, network } from "hardhat";
import {
  type Abi,
  type AbiFunction,
  type Address,
  BaseError,
  decodeErrorResult,
  encodeAbiParameters,
  encodeFunctionData,
  getContract,
  type Hex,
  isHex,
  keccak256,
  parseEventLogs,
  toFunctionSelector,
  toHex,
  zeroAddress,
} from "viem";

// `network.connect()` is deprecated since Hardhat 3.18; `create()` is the same fresh in-process chain.
const { viem } = await network.create();
const publicClient = await viem.getPublicClient();
const testClient = await viem.getTestClient();
const wallets = await viem.getWalletClients();
function walletAt(index: number) {
  const wallet = wallets[index];
  if (wallet === undefined) throw new Error(`the Hardhat network has no account #${index}; it needs three`);
  return wallet;
}
const ownerWallet = walletAt(0);
const strangerWallet = walletAt(1);
const nextOwnerWallet = walletAt(2);
const owner = ownerWallet.account.address;
const stranger = strangerWallet.account.address;
const nextOwner = nextOwnerWallet.account.address;

/**
 * Errors are decoded with the artifacts of the contracts under test rather than `clusterAbi`, because the
 * diamond's own errors (`FunctionNotFound`, `EtherNotAccepted`, `OwnerIsZero`) are not on any facet interface.
 */
const DIAMOND_ERRORS_ABI: Abi = (
  await Promise.all(
    ["Diamond", "DiamondCutFacet", "DiamondLoupeFacet", "OwnershipFacet"].map((name) =>
      artifacts.readArtifact(name),
    ),
  )
).flatMap((artifact) => artifact.abi as Abi);

const Action = { Add: 0, Replace: 1, Remove: 2 } as const;
type FacetCut = {
  facetAddress: Address;
  action: (typeof Action)[keyof typeof Action];
  functionSelectors: readonly Hex[];
};

/** One step of a cut: `action` on `functionSelectors` with `facetAddress` (zero to remove). */
function step(facetAddress: Address, action: FacetCut["action"], ...functionSelectors: Hex[]): FacetCut {
  return { facetAddress, action, functionSelectors };
}

const UNKNOWN_SELECTOR: Hex = "0xdeadbeef";
const OWNER_SELECTOR = toFunctionSelector("owner()");

function clusterAt(address: Address) {
  return getContract({ address, abi: clusterAbi, client: { public: publicClient, wallet: ownerWallet } });
}

function selectorsOf(abi: Abi): Hex[] {
  return abi
    .filter((item): item is AbiFunction => item.type === "function")
    .map((item) => toFunctionSelector(item));
}

/** Lowercases every hex string inside `value`, so addresses compare equal whatever their checksum casing. */
function canonical(value: unknown): unknown {
  if (typeof value === "string" && isHex(value)) return value.toLowerCase();
  if (Array.isArray(value)) return value.map(canonical);
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, canonical(inner)]));
  }
  return value;
}

function assertSameValues(actual: unknown, expected: unknown, message?: string): void {
  assert.deepEqual(canonical(actual), canonical(expected), message);
}

/** The arguments of every `eventName` event the transaction `hash` emitted, once it is mined. */
async function emitted(
  hash: Hex,
  eventName: "DiamondCut" | "OwnershipTransferStarted" | "OwnershipTransferred",
) {
  const receipt = await publicClient.waitForTransactionReceipt({ hash });
  return parseEventLogs({ abi: clusterAbi, logs: receipt.logs, eventName }).map((event) => event.args);
}

function assertSameSet(actual: readonly string[], expected: readonly string[]): void {
  assertSameValues(
    [...actual].map((value) => value.toLowerCase()).sort(),
    [...expected].map((value) => value.toLowerCase()).sort(),
  );
}

function erc7201(namespace: string): Hex {
  const inner = BigInt(keccak256(toHex(namespace))) - 1n;
  const outer = BigInt(keccak256(encodeAbiParameters([{ type: "uint256" }], [inner])));
  return toHex(outer & ~0xffn, { size: 32 });
}

async function deployDiamondFixture() {
  const cutFacet = await viem.deployContract("DiamondCutFacet");
  const loupeFacet = await viem.deployContract("DiamondLoupeFacet");
  const ownershipFacet = await viem.deployContract("OwnershipFacet");
  const baseCuts: FacetCut[] = [cutFacet, loupeFacet, ownershipFacet].map((facet) => ({
    facetAddress: facet.address,
    action: Action.Add,
    functionSelectors: selectorsOf(facet.abi),
  }));
  const { contract: diamond, deploymentTransaction } = await viem.sendDeploymentTransaction("Diamond", [
    owner,
    baseCuts,
    zeroAddress,
    "0x",
  ]);
  const deployReceipt = await publicClient.waitForTransactionReceipt({ hash: deploymentTransaction.hash });
  return {
    cutFacet: cutFacet.address,
    loupeFacet: loupeFacet.address,
    ownershipFacet: ownershipFacet.address,
    baseCuts,
    diamond: diamond.address,
    deployReceipt,
    cluster: clusterAt(diamond.address),
  };
}

type DiamondFixture = Awaited<ReturnType<typeof deployDiamondFixture>>;
let fixture: DiamondFixture | undefined;
let fixtureSnapshot: Hex | undefined;

/**
 * Deploys once, then hands every later test the chain exactly as it was right after that deployment.
 * The project does not register hardhat-network-helpers, so this is its `loadFixture` done by hand.
 */
async function deployed(): Promise<DiamondFixture> {
  if (fixture === undefined) {
    fixture = await deployDiamondFixture();
  } else if (fixtureSnapshot !== undefined) {
    await testClient.revert({ id: fixtureSnapshot });
  }
  // Reverting consumes a snapshot, so every call takes a fresh one.
  fixtureSnapshot = await testClient.snapshot();
  return fixture;
}

/** The raw revert data anywhere in a viem error chain: decoded-call errors keep it as `raw`, RPC errors as `data`. */
function revertDataOf(error: unknown): Hex | undefined {
  if (!(error instanceof BaseError)) return undefined;
  let found: Hex | undefined;
  error.walk((inner) => {
    const { raw, data } = inner as { raw?: unknown; data?: unknown };
    const nested = typeof data === "object" && data !== null ? (data as { data?: unknown }).data : undefined;
    for (const candidate of [raw, data, nested]) {
      if (found === undefined && typeof candidate === "string" && isHex(candidate)) found = candidate;
    }
    return false;
  });
  return found;
}

/** Awaits `action`, which must revert, and checks the custom error's name and arguments. */
async function expectCustomError(
  action: Promise<unknown>,
  errorName: string,
  args: readonly unknown[] = [],
): Promise<void> {
  let error: unknown;
  try {
    await action;
  } catch (caught) {
    error = caught;
  }
  assert.ok(error !== undefined, `expected a revert with ${errorName}, but the call succeeded`);
  const data = revertDataOf(error);
  assert.ok(
    data !== undefined && data !== "0x",
    `expected ${errorName}, got no revert data: ${String(error)}`,
  );
  const decoded = decodeErrorResult({ abi: DIAMOND_ERRORS_ABI, data });
  assert.equal(decoded.errorName, errorName);
  assertSameValues(decoded.args ?? [], args, `arguments of ${errorName}`);
}

describe("Diamond deployment", () => {
  test("routes every base facet selector and lists the facets in the loupe", async () => {
    const { cluster, baseCuts } = await deployed();
    const facets = await cluster.read.facets();
    assert.equal(facets.length, baseCuts.length);
    for (const [index, baseCut] of baseCuts.entries()) {
      const facet = facets[index];
      assert.ok(facet !== undefined);
      assertSameValues(facet.facetAddress, baseCut.facetAddress);
      assertSameSet(facet.functionSelectors, baseCut.functionSelectors);
      assertSameSet(
        await cluster.read.facetFunctionSelectors([baseCut.facetAddress]),
        baseCut.functionSelectors,
      );
      for (const selector of baseCut.functionSelectors) {
        assertSameValues(await cluster.read.facetAddress([selector]), baseCut.facetAddress);
      }
    }
    assertSameSet(
      await cluster.read.facetAddresses(),
      baseCuts.map((baseCut) => baseCut.facetAddress),
    );
  });

  test("emits OwnershipTransferred from zero and DiamondCut with the initial cut", async () => {
    const { deployReceipt, baseCuts, diamond } = await deployed();
    const transferred = parseEventLogs({
      abi: clusterAbi,
      logs: deployReceipt.logs,
      eventName: "OwnershipTransferred",
    });
    assert.equal(transferred.length, 1);
    assertSameValues(transferred[0]?.address, diamond);
    assertSameValues(transferred[0]?.args, { previousOwner: zeroAddress, newOwner: owner });

    const cuts = parseEventLogs({ abi: clusterAbi, logs: deployReceipt.logs, eventName: "DiamondCut" });
    assert.equal(cuts.length, 1);
    assertSameValues(cuts[0]?.args, { diamondCut: baseCuts, init: zeroAddress, initCalldata: "0x" });
  });

  test("sets the owner with no pending transfer", async () => {
    const { cluster } = await deployed();
    assertSameValues(await cluster.read.owner(), owner);
    assert.equal(await cluster.read.pendingOwner(), zeroAddress);
  });

  test("refuses a zero owner with OwnerIsZero", async () => {
    const { baseCuts } = await deployed();
    await expectCustomError(
      viem.deployContract("Diamond", [zeroAddress, baseCuts, zeroAddress, "0x"]),
      "OwnerIsZero",
    );
  });

  test("stores the owner at the ERC-7201 slot of attestmesh.storage.Ownership", async () => {
    const { diamond } = await deployed();
    const slot = erc7201("attestmesh.storage.Ownership");
    assert.equal(slot, "0x5ea8e53650e51b155e7a4ae6a959d255267912f385e08934948a03cb55846f00");
    const stored = await publicClient.getStorageAt({ address: diamond, slot });
    assertSameValues(stored, toHex(BigInt(owner), { size: 32 }));
  });

  test("keeps the routing table at the ERC-7201 slot of attestmesh.storage.Diamond", async () => {
    const { diamond, baseCuts } = await deployed();
    const slot = erc7201("attestmesh.storage.Diamond");
    assert.equal(slot, "0x7885fd47cb615b4cf484cff093fe090dcd08af42df05770921074bffafbb1400");
    // facetAddresses is the third field of the layout, so its length sits at slot + 2.
    const lengthSlot = toHex(BigInt(slot) + 2n, { size: 32 });
    const stored = await publicClient.getStorageAt({ address: diamond, slot: lengthSlot });
    assert.equal(stored, toHex(baseCuts.length, { size: 32 }));
  });
});

describe("Diamond fallback", () => {
  test("reverts FunctionNotFound for an unknown selector", async () => {
    const { diamond } = await deployed();
    await expectCustomError(
      publicClient.call({ to: diamond, data: `${UNKNOWN_SELECTOR}00` }),
      "FunctionNotFound",
      [UNKNOWN_SELECTOR],
    );
  });

  test("refuses plain ETH with EtherNotAccepted", async () => {
    const { diamond } = await deployed();
    await expectCustomError(ownerWallet.sendTransaction({ to: diamond, value: 1n }), "EtherNotAccepted", [
      1n,
    ]);
    assert.equal(await publicClient.getBalance({ address: diamond }), 0n);
  });

  test("refuses ETH sent along with a routed call", async () => {
    const { diamond } = await deployed();
    await expectCustomError(
      ownerWallet.sendTransaction({
        to: diamond,
        value: 5n,
        data: encodeFunctionData({ abi: clusterAbi, functionName: "owner" }),
      }),
      "EtherNotAccepted",
      [5n],
    );
  });
});

describe("DiamondCutFacet through the diamond", () => {
  test("replaces the loupe facet and emits DiamondCut", async () => {
    const { cluster, loupeFacet } = await deployed();
    const upgraded = await viem.deployContract("DiamondLoupeFacet");
    const upgradedSelectors = selectorsOf(upgraded.abi);
    const steps = [step(upgraded.address, Action.Replace, ...upgradedSelectors)];
    const hash = await cluster.write.diamondCut([steps, zeroAddress, "0x"]);
    assertSameValues(await emitted(hash, "DiamondCut"), [
      { diamondCut: steps, init: zeroAddress, initCalldata: "0x" },
    ]);

    for (const selector of upgradedSelectors) {
      assertSameValues(await cluster.read.facetAddress([selector]), upgraded.address);
    }
    assert.deepEqual(await cluster.read.facetFunctionSelectors([loupeFacet]), []);
    const addresses = (await cluster.read.facetAddresses()).map((address) => address.toLowerCase());
    assert.ok(addresses.includes(upgraded.address.toLowerCase()));
    assert.ok(!addresses.includes(loupeFacet.toLowerCase()));
  });

  test("removes selectors so that calling them reverts FunctionNotFound", async () => {
    const { cluster } = await deployed();
    const pendingOwnerSelector = toFunctionSelector("pendingOwner()");
    await cluster.write.diamondCut([
      [step(zeroAddress, Action.Remove, pendingOwnerSelector)],
      zeroAddress,
      "0x",
    ]);
    await expectCustomError(cluster.read.pendingOwner(), "FunctionNotFound", [pendingOwnerSelector]);
    assertSameValues(await cluster.read.owner(), owner);
  });

  test("delegatecalls the initializer in the diamond's context", async () => {
    // A facet serves as the initializer here: it runs on the diamond's storage with the owner as msg.sender.
    const { cluster, ownershipFacet } = await deployed();
    const initCalldata = encodeFunctionData({
      abi: clusterAbi,
      functionName: "transferOwnership",
      args: [nextOwner],
    });
    const hash = await cluster.write.diamondCut([[], ownershipFacet, initCalldata]);
    assertSameValues(await emitted(hash, "DiamondCut"), [
      { diamondCut: [], init: ownershipFacet, initCalldata },
    ]);
    assertSameValues(await emitted(hash, "OwnershipTransferStarted"), [
      { previousOwner: owner, newOwner: nextOwner },
    ]);
    assertSameValues(await cluster.read.pendingOwner(), nextOwner);
    assert.equal(await clusterAt(ownershipFacet).read.pendingOwner(), zeroAddress);
  });

  // Refused cuts, one row each: the call the owner (or a stranger) makes, and the custom error with its
  // values. Each must also leave the routing exactly as the deployment made it.
  const refusals: readonly {
    readonly name: string;
    readonly cut: (fx: DiamondFixture) => {
      readonly steps: readonly FacetCut[];
      readonly init?: Address;
      readonly initCalldata?: Hex;
      readonly fromStranger?: boolean;
    };
    readonly error: string;
    readonly args: (fx: DiamondFixture) => readonly unknown[];
  }[] = [
    {
      name: "refuses a non-owner with NotOwner",
      cut: (fx) => ({
        steps: [step(fx.loupeFacet, Action.Add, UNKNOWN_SELECTOR)],
        fromStranger: true,
      }),
      error: "NotOwner",
      args: () => [stranger],
    },
    {
      name: "refuses adding a selector that is already routed with SelectorAlreadyAdded",
      cut: (fx) => ({ steps: [step(fx.loupeFacet, Action.Add, OWNER_SELECTOR)] }),
      error: "SelectorAlreadyAdded",
      args: (fx) => [OWNER_SELECTOR, fx.ownershipFacet],
    },
    {
      name: "refuses replacing with the same facet with ReplaceWithSameFacet",
      cut: (fx) => ({ steps: [step(fx.ownershipFacet, Action.Replace, OWNER_SELECTOR)] }),
      error: "ReplaceWithSameFacet",
      args: (fx) => [OWNER_SELECTOR, fx.ownershipFacet],
    },
    {
      name: "refuses removing with a facet address with RemoveFacetAddressNotZero",
      cut: (fx) => ({ steps: [step(fx.ownershipFacet, Action.Remove, OWNER_SELECTOR)] }),
      error: "RemoveFacetAddressNotZero",
      args: (fx) => [fx.ownershipFacet],
    },
    {
      name: "refuses removing an unknown selector with SelectorNotFound",
      cut: () => ({ steps: [step(zeroAddress, Action.Remove, UNKNOWN_SELECTOR)] }),
      error: "SelectorNotFound",
      args: () => [UNKNOWN_SELECTOR],
    },
    {
      name: "refuses a facet without code with FacetHasNoCode",
      cut: () => ({ steps: [step(stranger, Action.Add, UNKNOWN_SELECTOR)] }),
      error: "FacetHasNoCode",
      args: () => [stranger],
    },
    {
      name: "refuses an empty step with NoSelectorsInCut",
      cut: (fx) => ({ steps: [step(fx.ownershipFacet, Action.Add)] }),
      error: "NoSelectorsInCut",
      args: (fx) => [fx.ownershipFacet],
    },
    {
      name: "bubbles up the initializer's custom error unchanged",
      cut: (fx) => ({
        steps: [],
        init: fx.ownershipFacet,
        initCalldata: encodeFunctionData({ abi: clusterAbi, functionName: "acceptOwnership" }),
      }),
      error: "NotPendingOwner",
      args: () => [owner],
    },
    {
      name: "reverts InitializationFailed when the initializer reverts without data",
      cut: (fx) => ({ steps: [], init: fx.loupeFacet, initCalldata: UNKNOWN_SELECTOR }),
      error: "InitializationFailed",
      args: (fx) => [fx.loupeFacet, UNKNOWN_SELECTOR],
    },
    {
      name: "refuses an initializer without code with InitHasNoCode",
      cut: () => ({ steps: [], init: stranger, initCalldata: "0x01" }),
      error: "InitHasNoCode",
      args: () => [stranger],
    },
    {
      name: "refuses calldata without an initializer with InitCalldataWithoutInit",
      cut: () => ({ steps: [], init: zeroAddress, initCalldata: "0x01" }),
      error: "InitCalldataWithoutInit",
      args: () => ["0x01"],
    },
  ];

  for (const { name, cut, error, args } of refusals) {
    test(name, async () => {
      const fx = await deployed();
      const { steps, init = zeroAddress, initCalldata = "0x", fromStranger = false } = cut(fx);
      const routingBefore = await fx.cluster.read.facets();
      await expectCustomError(
        fx.cluster.write.diamondCut(
          [steps, init, initCalldata],
          fromStranger ? { account: strangerWallet.account } : {},
        ),
        error,
        args(fx),
      );
      assertSameValues(await fx.cluster.read.facets(), routingBefore, "a refused cut changes no route");
      assertSameValues(await fx.cluster.read.pendingOwner(), zeroAddress, "nor the owner's state");
    });
  }
});

describe("DiamondLoupeFacet ERC-165", () => {
  test("claims ERC-165, never 0xffffffff, and nothing an initializer did not set", async () => {
    const { cluster } = await deployed();
    assert.equal(await cluster.read.supportsInterface(["0x01ffc9a7"]), true);
    assert.equal(await cluster.read.supportsInterface(["0xffffffff"]), false);
    assert.equal(await cluster.read.supportsInterface(["0x7f5828d0"]), false);
  });
});

describe("OwnershipFacet two-step transfer", () => {
  /** Expects `wallet`'s acceptOwnership to revert with NotPendingOwner naming it. */
  const refusedAccept = (cluster: DiamondFixture["cluster"], wallet: typeof ownerWallet) =>
    expectCustomError(cluster.write.acceptOwnership({ account: wallet.account }), "NotPendingOwner", [
      wallet.account.address,
    ]);

  test("transferOwnership only proposes; acceptOwnership completes it", async () => {
    const { cluster } = await deployed();
    const startHash = await cluster.write.transferOwnership([nextOwner]);
    assertSameValues(await emitted(startHash, "OwnershipTransferStarted"), [
      { previousOwner: owner, newOwner: nextOwner },
    ]);
    assertSameValues(await cluster.read.owner(), owner);
    assertSameValues(await cluster.read.pendingOwner(), nextOwner);

    const acceptHash = await cluster.write.acceptOwnership({ account: nextOwnerWallet.account });
    assertSameValues(await emitted(acceptHash, "OwnershipTransferred"), [
      { previousOwner: owner, newOwner: nextOwner },
    ]);
    assertSameValues(await cluster.read.owner(), nextOwner);
    assert.equal(await cluster.read.pendingOwner(), zeroAddress);

    await expectCustomError(cluster.write.transferOwnership([stranger]), "NotOwner", [owner]);
  });

  test("refuses transferOwnership from a non-owner with NotOwner", async () => {
    const { cluster } = await deployed();
    await expectCustomError(
      cluster.write.transferOwnership([stranger], { account: strangerWallet.account }),
      "NotOwner",
      [stranger],
    );
  });

  test("refuses acceptOwnership from anyone but the pending owner with NotPendingOwner", async () => {
    const { cluster } = await deployed();
    await refusedAccept(cluster, ownerWallet);
    await cluster.write.transferOwnership([nextOwner]);
    await refusedAccept(cluster, strangerWallet);
  });

  test("transferOwnership to zero cancels a pending transfer", async () => {
    const { cluster } = await deployed();
    await cluster.write.transferOwnership([nextOwner]);
    const hash = await cluster.write.transferOwnership([zeroAddress]);
    assertSameValues(await emitted(hash, "OwnershipTransferStarted"), [
      { previousOwner: owner, newOwner: zeroAddress },
    ]);
    assert.equal(await cluster.read.pendingOwner(), zeroAddress);
    await refusedAccept(cluster, nextOwnerWallet);
  });

  test("has no renounceOwnership", async () => {
    const { diamond } = await deployed();
    const renounce = toFunctionSelector("renounceOwnership()");
    await expectCustomError(publicClient.call({ to: diamond, data: renounce }), "FunctionNotFound", [
      renounce,
    ]);
  });
});
