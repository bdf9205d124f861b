// "No secret in any log": the soak collects, in memory only, every secret it can reach from outside —
// each node's member, identity and WireGuard private keys (derived through its dstack simulator, as the
// sidecar derives them) and every CSK the application API hands out — and at the end searches every
// devnet log for each one, as hex and as base64. It reports where one was found, never the secret.
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { createDstackKeySource, deriveNodeKeys } from "@attestmesh/sidecar/keys.ts";
import { DEVNET_DIR, type DevnetNode } from "../orchestration/state.ts";

interface Known {
  readonly label: string;
  readonly forms: readonly string[];
}

const formsOf = (bytes: Uint8Array) => [
  Buffer.from(bytes).toString("hex"),
  Buffer.from(bytes).toString("base64"),
];

async function logFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await logFiles(path)));
    else if (entry.name.endsWith(".log")) out.push(path);
  }
  return out;
}

export function createSecretWatch() {
  const known = new Map<string, Known>();
  const add = (key: string, label: string, bytes: Uint8Array) => {
    if (!known.has(key)) known.set(key, { label, forms: formsOf(bytes) });
  };
  return {
    /** Derives `node`'s private keys through its simulator (once per node). */
    async addNode(node: DevnetNode) {
      if (known.has(`${node.name}/member`)) return;
      const keys = await deriveNodeKeys(createDstackKeySource(node.socketPath));
      add(
        `${node.name}/member`,
        `${node.name} member key`,
        Buffer.from(keys.member.secret.reveal().slice(2), "hex"),
      );
      add(
        `${node.name}/identity`,
        `${node.name} identity key`,
        Uint8Array.from(keys.identity.secret.reveal()),
      );
      add(
        `${node.name}/wireguard`,
        `${node.name} WireGuard key`,
        Uint8Array.from(keys.wireguard.privateKey.reveal()),
      );
    },
    /** A CSK as `GET /v1/cluster-shared-key` returns it ({epoch, key: 0x…}). */
    addCsk(epoch: string, keyHex: string) {
      add(`csk/${epoch}`, `CSK of epoch ${epoch}`, Buffer.from(keyHex.replace(/^0x/, ""), "hex"));
    },
    get count() {
      return known.size;
    },
    /** Every (log file, secret label) where a secret appears; and what was searched. */
    async scan(): Promise<{ files: number; bytes: number; found: string[] }> {
      const files = await logFiles(DEVNET_DIR);
      const found: string[] = [];
      let bytes = 0;
      for (const file of files) {
        bytes += (await stat(file)).size;
        const text = await readFile(file, "utf8");
        const lower = text.toLowerCase();
        for (const k of known.values())
          if (lower.includes(k.forms[0]!) || text.includes(k.forms[1]!)) found.push(`${k.label} in ${file}`);
      }
      return { files: files.length, bytes, found };
    },
  };
}
