// The owner's signing key: `ATTESTMESH_OWNER_KEY` in the environment (automation), else the entry of that
// name in Hardhat's encrypted keystore (`npx hardhat keystore set ATTESTMESH_OWNER_KEY`; the development
// keystore first, then the password-protected one, which prompts). The key never reaches argv, a log
// line or an error message; only the address it controls is shown.

import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import type { PrivateKeyAccount } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { loadHardhat } from "./hardhat.ts";

export const OWNER_KEY_VARIABLE = "ATTESTMESH_OWNER_KEY";

function toAccount(secret: string, source: string): PrivateKeyAccount {
  const hex = secret.trim().startsWith("0x") ? secret.trim() : `0x${secret.trim()}`;
  if (!/^0x[0-9a-fA-F]{64}$/.test(hex)) {
    // Never quote the value: it may be a real key with a typo.
    throw new AttestmeshError(`${OWNER_KEY_VARIABLE} from ${source} is not a 32-byte hex private key`, {
      code: "OwnerKeyMalformed",
    });
  }
  try {
    return privateKeyToAccount(hex as `0x${string}`);
  } catch {
    throw new AttestmeshError(`${OWNER_KEY_VARIABLE} from ${source} is not a valid secp256k1 private key`, {
      code: "OwnerKeyMalformed",
    });
  }
}

export async function loadOwnerAccount(
  env: Readonly<Record<string, string | undefined>>,
): Promise<PrivateKeyAccount> {
  const fromEnv = env[OWNER_KEY_VARIABLE];
  if (fromEnv !== undefined && fromEnv !== "") return toAccount(fromEnv, "the environment");
  const hre = await loadHardhat();
  const { configVariable } = await import("hardhat/config");
  const secret = await hre.hooks.runHandlerChain(
    "configurationVariables",
    "fetchValue",
    [configVariable(OWNER_KEY_VARIABLE)],
    async () => {
      throw new AttestmeshError(
        `no owner key: set ${OWNER_KEY_VARIABLE}, store it with \`npx hardhat keystore set ${OWNER_KEY_VARIABLE}\`, or use --calldata to print the transaction for a multisig`,
        { code: "OwnerKeyMissing" },
      );
    },
  );
  return toAccount(secret, "Hardhat's keystore");
}
