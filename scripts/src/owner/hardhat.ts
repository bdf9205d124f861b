// A Hardhat runtime built from the repository's hardhat.config.ts, loaded only when a command needs it
// (a named network's URL, a key from Hardhat's encrypted keystore), whatever the working directory.

import { fileURLToPath } from "node:url";
import type { HardhatRuntimeEnvironment } from "hardhat/types/hre";

const CONFIG_PATH = fileURLToPath(new URL("../../../hardhat.config.ts", import.meta.url));

let cached: Promise<HardhatRuntimeEnvironment> | undefined;

export function loadHardhat(): Promise<HardhatRuntimeEnvironment> {
  cached ??= (async () => {
    const { createHardhatRuntimeEnvironment, importUserConfig } = await import("hardhat/hre");
    const config = await importUserConfig(CONFIG_PATH);
    return createHardhatRuntimeEnvironment(
      config,
      { config: CONFIG_PATH },
      fileURLToPath(new URL("../../..", import.meta.url)),
    );
  })();
  return cached;
}
