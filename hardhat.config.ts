import { createRequire } from "node:module";
import hardhatKeystore from "@nomicfoundation/hardhat-keystore";
import hardhatNodeTestRunner from "@nomicfoundation/hardhat-node-test-runner";
import hardhatViem from "@nomicfoundation/hardhat-viem";
import { configVariable, defineConfig } from "hardhat/config";

const require = createRequire(import.meta.url);

// Compiler downloads are not allowed: the compiler is the npm package `solc`.
const SOLC_VERSION: string = require("solc/package.json").version;
const SOLJSON_PATH = require.resolve("solc/soljson.js");

// Fuzzing is configured, not left at the runner's default (256): every fuzz and invariant test runs
// FUZZ_RUNS cases in `npm test`; `npm run fuzz:deep` selects the `deep` profile (100,000 each, or
// ATTESTMESH_FUZZ_DEEP_RUNS for a shorter deep run on a small machine). Invariant runs are sequences
// of INVARIANT_DEPTH handler calls, each followed by every invariant. 1,000 keeps the Solidity step of
// `npm test` near 90 s on a 2-core machine (2,000 took 180 s, nearly all of it fuzzing); depth is the
// deep profile's job.
const FUZZ_RUNS = 1_000;
const DEEP_RUNS = Number(process.env.ATTESTMESH_FUZZ_DEEP_RUNS ?? 100_000);
const INVARIANT_DEPTH = 20;

export default defineConfig({
  plugins: [hardhatViem, hardhatNodeTestRunner, hardhatKeystore],
  paths: {
    sources: "contracts/src",
    // One tree of contract tests: Solidity (*.t.sol) and TypeScript (*.test.ts) side by side.
    tests: { solidity: "contracts/test", nodejs: "contracts/test" },
  },
  solidity: {
    version: SOLC_VERSION,
    path: SOLJSON_PATH,
    // The ERC-4337 EntryPoint v0.7 is deployed from the audited npm sources (devnet, tests).
    npmFilesToBuild: ["@account-abstraction/contracts/core/EntryPoint.sol"],
    settings: {
      evmVersion: "cancun",
      optimizer: { enabled: true, runs: 10_000 },
      viaIR: false,
    },
  },
  test: {
    solidity: {
      profiles: {
        default: {
          fuzz: { runs: FUZZ_RUNS },
          invariant: { runs: FUZZ_RUNS, depth: INVARIANT_DEPTH },
        },
        deep: {
          fuzz: { runs: DEEP_RUNS },
          invariant: { runs: DEEP_RUNS, depth: INVARIANT_DEPTH },
        },
      },
    },
  },
  networks: {
    // Tests run on an in-process chain with Base's rules: Base is an OP-stack chain, and its EVM
    // prices some precompiles (modexp) differently from Ethereum L1.
    default: {
      type: "edr-simulated",
      chainType: "op",
    },
    devnet: {
      type: "http",
      chainType: "op",
      url: "http://127.0.0.1:8545",
    },
    baseSepolia: {
      type: "http",
      chainType: "op",
      chainId: 84532,
      url: configVariable("BASE_SEPOLIA_RPC_URL"),
    },
    base: {
      type: "http",
      chainType: "op",
      chainId: 8453,
      url: configVariable("BASE_RPC_URL"),
    },
  },
});
