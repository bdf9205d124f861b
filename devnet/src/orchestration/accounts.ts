// The devnet's well-known development accounts: Hardhat's default mnemonic. Account 0 owns the
// cluster; accounts 1.. pay gas for the nodes. Development keys only, funded on the devnet alone.
import { type HDAccount, mnemonicToAccount } from "viem/accounts";

export const DEVNET_MNEMONIC = "test test test test test test test test test test test junk";

export function devnetAccount(index: number): HDAccount {
  return mnemonicToAccount(DEVNET_MNEMONIC, { addressIndex: index });
}

/** The private key of a devnet account, for a child process's environment (never argv). */
export function devnetPrivateKey(index: number): `0x${string}` {
  const key = devnetAccount(index).getHdKey().privateKey;
  if (!key) throw new Error(`no private key for devnet account ${index}`);
  return `0x${Buffer.from(key).toString("hex")}`;
}
